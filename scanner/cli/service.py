"""`scanner serve`, `scanner keys` and `scanner audit`: the HTTP service, its API keys and the audit trail."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import deque
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, List, Optional

import typer
from rich.table import Table

from scanner.cli.common import ProjectOpt, StageOpt, console, esc, handle_errors, out, settings_from
from scanner.errors import CatalogError, ConfigError

if TYPE_CHECKING:  # the catalog is imported when a command runs, not when the CLI loads
    from scanner.catalog import Catalog
    from scanner.catalog.audit import AuditEntry

keys_app = typer.Typer(help="API keys for `scanner serve` (only a salted hash is stored).", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail of every check.", no_args_is_help=True)


class Scope(str, Enum):
    CHECK = "check"
    ADMIN = "admin"


class ExportFormat(str, Enum):
    JSONL = "jsonl"
    CSV = "csv"


def _catalog(ctx: typer.Context, must_exist: bool = False) -> "Catalog":
    from scanner.catalog import Catalog

    path = settings_from(ctx).catalog
    if must_exist and isinstance(path, Path) and not path.exists():  # a postgresql:// URL is checked on connect
        raise CatalogError(f"no catalog at {path} (use --catalog or run from the workspace)")
    return Catalog(path)


# ----- serve ----------------------------------------------------------------------------------
@handle_errors
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default; the API is plain HTTP: "
                                           "put TLS in front of it before exposing it).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    allow_root: Annotated[Optional[List[Path]], typer.Option(
        "--allow-root", help="Folder whose files may be checked by server-side path (JSON {\"path\": ...}); "
                             "repeat for several. Without it only uploads are accepted.")] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted (413 beyond).")] = 100.0,
    max_pixels: Annotated[Optional[int], typer.Option(help="Largest image accepted, in pixels (default: the "
                                                           "max_pixels setting, capped at 100 MP).")] = None,
    max_batch: Annotated[int, typer.Option(help="Most requests checked together in one model batch.")] = 16,
    batch_wait_ms: Annotated[float, typer.Option(help="How long the worker waits for a batch to fill.")] = 2.0,
    max_pending: Annotated[int, typer.Option(help="Most requests held at once (receiving, queued or being "
                                                  "checked); 503 with Retry-After beyond.")] = 64,
    timeout: Annotated[float, typer.Option(help="Seconds before a request is answered 504 (408 for a slow "
                                                "upload).")] = 60.0,
    auth: Annotated[bool, typer.Option("--auth/--no-auth", help="Require an API key (all but /v1/health). "
                                                                "--no-auth is for local experiments only.")] = True,
    stage: StageOpt = None,
    project: ProjectOpt = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve `POST /v1/check` over HTTP; models and indexes load once, rebuilt indexes are picked up live."""
    try:
        from scanner.service import Engine, ServiceConfig, create_app
        from scanner.service.config import MiB, SERVICE_MAX_PIXELS
        from scanner.service.server import serve as run_server
    except ImportError as exc:
        raise ConfigError(f"the service needs fastapi, uvicorn and python-multipart ({exc.name} is missing): "
                          "pip install fastapi uvicorn python-multipart") from None
    from scanner.catalog import Catalog

    settings = settings_from(ctx, stage=stage, project=project)
    settings = settings.with_overrides(max_pixels=max_pixels or min(settings.max_pixels, SERVICE_MAX_PIXELS))
    for name, value in (("--max-batch", max_batch), ("--max-pending", max_pending)):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1")
    if max_upload_mb <= 0 or timeout <= 0 or batch_wait_ms < 0:
        raise ConfigError("--max-upload-mb and --timeout must be positive, --batch-wait-ms not negative")
    config = ServiceConfig(
        host=host, port=port, allow_roots=tuple(allow_root or ()), require_auth=auth,
        max_upload_bytes=int(max_upload_mb * MiB), max_batch=max_batch, batch_wait_ms=batch_wait_ms,
        max_pending=max_pending, request_timeout_s=timeout,
    )
    catalog = Catalog(settings.catalog)
    active = [k for k in catalog.api_keys() if k.active]
    catalog.close()
    if auth and not active:
        console.print("[yellow]note[/] no active API key: every check will get 401 until you run "
                      "`scanner keys create --scope check`")
    if not auth:
        console.print("[yellow]warning[/] --no-auth: anyone who can reach the port can run checks")
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]warning[/] listening on {esc(host)}: the API is plain HTTP, keys travel in clear")
    engine = Engine(settings, config)
    app = create_app(settings, config, engine=engine)  # validates --allow-root
    console.print("loading models and indexes: " + ", ".join(settings.detectors))
    engine.start()  # start-up errors (missing weights, stale index) end here as one clean line
    roots = ", ".join(str(r) for r in config.allow_roots) or "none (uploads only)"
    console.print(f"serving on http://{esc(host)}:{port}  (docs: /docs; server-side paths: {esc(roots)}; "
                  f"uploads up to {max_upload_mb:g} MiB, images up to {settings.max_pixels / 1e6:g} MP)")
    try:
        run_server(app, config, log_level=log_level)
    finally:
        engine.stop()


# ----- keys -----------------------------------------------------------------------------------
@keys_app.command("create")
@handle_errors
def keys_create(
    ctx: typer.Context,
    scope: Annotated[List[Scope], typer.Option("--scope", help="check: POST /v1/check; admin: catalog statistics. "
                                                               "Repeat for both.")],
    name: Annotated[str, typer.Option("--name", help="What the key is for (shown in `keys list`).")] = "",
) -> None:
    """Create a key and print it once: it cannot be shown again."""
    catalog = _catalog(ctx)
    key, token = catalog.create_key([s.value for s in scope], name)
    console.print(f"created key [bold]{key.id}[/] ({', '.join(key.scopes)})"
                  + (f" '{esc(name)}'" if name else "") + "; it is shown once, store it now:")
    typer.echo(token)


@keys_app.command("revoke")
@handle_errors
def keys_revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="Key id (see `scanner keys list`).")]) -> None:
    """Revoke a key; requests with it get 401 from the next one on."""
    key = _catalog(ctx, must_exist=True).revoke_key(key_id)
    console.print(f"revoked key {key.id} at {key.revoked_at}")


@keys_app.command("list")
@handle_errors
def keys_list(ctx: typer.Context,
              json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False) -> None:
    """List keys (ids, names, scopes, created and revoked times; never secrets)."""
    keys = _catalog(ctx).api_keys()
    if json_out:
        for k in keys:
            typer.echo(json.dumps({"id": k.id, "name": k.name, "scopes": list(k.scopes), "created_at": k.created_at,
                                   "revoked_at": k.revoked_at}))
        return
    table = Table("id", "name", "scopes", "created", "revoked")
    for k in keys:
        table.add_row(k.id, esc(k.name), ",".join(k.scopes), k.created_at, k.revoked_at or "")
    out.print(table)


# ----- audit ----------------------------------------------------------------------------------
def _verdict(e: AuditEntry) -> str:
    """The verdict from the hashed record (the ``verdict`` column is a copy the chain does not cover)."""
    return str(e.record.get("verdict", e.verdict))


def _entry_dict(e: AuditEntry) -> dict[str, Any]:
    return {"id": e.id, "at": e.at, "caller": e.caller, "sha256": e.record.get("sha256"), "verdict": _verdict(e),
            "record": e.record, "prev_hash": e.prev_hash, "hash": e.hash}


@audit_app.command("list")
@handle_errors
def audit_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many records.")] = 50,
    since: Annotated[Optional[int], typer.Option("--since", min=0, help="Records after this id, oldest first "
                                                 "(default: the latest ones).")] = None,
) -> None:
    """Recent audit records: who asked, which asset, what verdict."""
    catalog = _catalog(ctx, must_exist=True)
    if since is None:
        entries = list(deque(catalog.audit_entries(), maxlen=limit))
    else:
        entries = list(catalog.audit_entries(since, limit))
    table = Table("id", "at", "caller", "verdict", "sha256", "asset", "stage", "project")
    for e in entries:
        r = e.record
        table.add_row(str(e.id), e.at, esc(e.caller), _verdict(e), (r.get("sha256") or "")[:12], esc(str(r.get("path", ""))),
                      str(r.get("stage", "")), esc(str(r.get("project") or "")))
    out.print(table)


@audit_app.command("show")
@handle_errors
def audit_show(ctx: typer.Context, entry_id: Annotated[int, typer.Argument(help="Audit record id.")]) -> None:
    """One record in full (result, models, weights, indexes, calibration, chain hashes) as JSON."""
    entry = _catalog(ctx, must_exist=True).audit_entry(entry_id)
    if entry is None:
        raise CatalogError(f"no audit record #{entry_id} (see `scanner audit list`)")
    typer.echo(json.dumps(_entry_dict(entry), indent=2, ensure_ascii=False))


CSV_COLUMNS = ["id", "at", "caller", "sha256", "verdict", "path", "media_type", "stage", "project", "calibration",
               "findings", "top_detector", "top_reference_id", "top_reference_title", "top_score", "error",
               "models", "indexes", "weights", "prev_hash", "hash"]


def _csv_row(e: AuditEntry) -> list[Any]:
    r = e.record
    findings = r.get("findings") or []
    top = findings[0] if findings else {}
    return [e.id, e.at, e.caller, r.get("sha256") or "", _verdict(e), r.get("path", ""), r.get("media_type") or "",
            r.get("stage", ""), r.get("project") or "", r.get("calibration", ""), len(findings),
            top.get("detector", ""), top.get("reference_id", ""), top.get("reference_title", ""), top.get("score", ""),
            r.get("error") or "", json.dumps(r.get("models") or {}, sort_keys=True),
            json.dumps(r.get("indexes") or {}, sort_keys=True), json.dumps(r.get("weights") or {}, sort_keys=True),
            e.prev_hash, e.hash]


@audit_app.command("export")
@handle_errors
def audit_export(
    ctx: typer.Context,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="jsonl: every record in full; csv: one "
                                              "flat row per record.")] = ExportFormat.JSONL,
    out_file: Annotated[Optional[Path], typer.Option("--out", "-o", help="File to write (default: stdout).")] = None,
    since: Annotated[int, typer.Option("--since", min=0, help="Only records after this id.")] = 0,
    anchor: Annotated[Optional[Path], typer.Option("--anchor", help="Also write the chain head (id and hash) to "
                                                   "this file, for `audit verify --anchor` later.")] = None,
) -> None:
    """Export the audit trail for compliance (with chain hashes, so the export can be verified later)."""
    catalog = _catalog(ctx, must_exist=True)
    head = catalog.audit_head()
    fh = open(out_file, "w", newline="", encoding="utf-8") if out_file else io.TextIOWrapper(
        sys.stdout.buffer, encoding="utf-8", newline="", write_through=True)
    n = 0
    try:
        writer = csv.writer(fh) if fmt is ExportFormat.CSV else None
        if writer:
            writer.writerow(CSV_COLUMNS)
        for e in catalog.audit_entries(since):
            if writer:
                writer.writerow(_csv_row(e))
            else:
                fh.write(json.dumps(_entry_dict(e), ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    finally:
        if out_file:
            fh.close()
        else:
            fh.flush()
            fh.detach()
    if out_file:
        console.print(f"exported {n} audit records to {esc(str(out_file))}")
    if head is not None:
        if anchor:
            anchor.write_text(head.to_json() + "\n", encoding="utf-8")
        console.print(f"audit head {head}" + (f" written to {esc(str(anchor))}" if anchor else ""))


@audit_app.command("verify")
@handle_errors
def audit_verify(
    ctx: typer.Context,
    expect_head: Annotated[Optional[str], typer.Option("--expect-head", help="A head recorded earlier, ID:HASH; "
                                                       "fails when the trail no longer contains it.")] = None,
    anchor: Annotated[Optional[Path], typer.Option("--anchor", help="File written by `audit export --anchor`.")] = None,
) -> None:
    """Check the hash chain, the id sequence and a recorded head: exit 0 when intact, 1 naming the first bad record."""
    from scanner.catalog.audit import parse_anchor, read_anchor

    expected = parse_anchor(expect_head) if expect_head else read_anchor(anchor) if anchor else None
    catalog = _catalog(ctx, must_exist=True)
    result = catalog.check_audit(expected)
    if not result.ok:
        console.print(f"[bold red]audit trail broken[/] at record #{result.broken} ({result.records} records read): "
                      f"{esc(result.reason)}")
        typer.echo(f"broken {result.broken}")
        raise typer.Exit(1)
    head = result.head
    console.print(f"audit trail intact: {result.records} records" + (
        f"; head {head} (keep a copy elsewhere, e.g. `audit export --anchor FILE`, to detect a cut or rewritten "
        "chain)" if head else "") + (f"; contains the anchor #{expected.id}" if expected and expected.id else ""))
    typer.echo("ok")

