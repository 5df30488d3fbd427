"""`scanner talent` and `scanner consent`: real people, their samples and documented consent."""

from __future__ import annotations

import getpass
from datetime import date
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from scanner.cli.common import console, esc, handle_errors, open_scanner, out, progress_bar, settings_from
from scanner.types import ConsentScope

app = typer.Typer(help="Register real people (talent) whose likeness needs consent.", no_args_is_help=True)
consent_app = typer.Typer(help="Grant, revoke and list documented consent (append-only history).",
                          no_args_is_help=True)

PhotoOpt = Annotated[Optional[List[Path]], typer.Option("--photo", help="Reference photo with exactly one face "
                                                        "(repeat for several).")]
VoiceOpt = Annotated[Optional[List[Path]], typer.Option("--voice", help="Voice sample with speech (repeat).")]


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return ""


@app.command("add")
@handle_errors
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The person's name as it appears in contracts.")],
    photo: PhotoOpt = None,
    voice: VoiceOpt = None,
    union_covered: Annotated[bool, typer.Option("--union-covered", help="Covered by a union agreement: "
                                                "likeness always needs review, even with consent.")] = False,
) -> None:
    """Register a talent, or add samples to an existing one."""
    scanner = open_scanner(settings_from(ctx))
    if scanner.catalog.talent_by_name(name):
        added = scanner.add_talent_samples(name, photo or [], voice or [])
        console.print(f"{esc(name)}: {len(added)} new samples")
        return
    t = scanner.add_talent(name, photo or [], voice or [], union_covered)
    console.print(f"registered talent #{t.id} {esc(t.name)}" + (" (union-covered)" if t.union_covered else "")
                  + f" with {len(scanner.catalog.samples(talent_id=t.id))} samples")


@app.command("import")
@handle_errors
def import_(ctx: typer.Context, manifest: Annotated[Path, typer.Argument(help="CSV: name, photo, voice, "
                                                                          "union_covered (one sample per row).")]) -> None:
    """Bulk-register talent from a CSV."""
    from scanner.api import read_manifest

    scanner = open_scanner(settings_from(ctx))
    total = len({r["name"] for r in read_manifest(manifest, required="name")})
    with progress_bar("importing talent", total) as advance:
        outcomes = scanner.import_talent(manifest, progress=advance)
    failed = [(n, e) for n, e in outcomes if e]
    for n, e in failed:
        console.print(f"[red]failed[/]  {esc(n)}: {esc(e)}")
    console.print(f"{len(outcomes) - len(failed)} talent imported, {len(failed)} failed")
    if failed:
        raise typer.Exit(2)


@app.command("list")
@handle_errors
def list_(ctx: typer.Context) -> None:
    """List registered talent."""
    from rich.table import Table

    scanner = open_scanner(settings_from(ctx))
    table = Table("id", "name", "union", "photos", "voices", "consent records")
    for t in scanner.catalog.talents():
        samples = scanner.catalog.samples(talent_id=t.id)
        table.add_row(str(t.id), esc(t.name), "yes" if t.union_covered else "", str(sum(s.kind == "face" for s in samples)),
                      str(sum(s.kind == "voice" for s in samples)), str(len(scanner.catalog.consents(t.id))))
    out.print(table)


@app.command("show")
@handle_errors
def show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Talent name or id.")],
         project: Annotated[Optional[str], typer.Option(help="Project to evaluate consent for.")] = None) -> None:
    """Samples, consent history and today's consent status of one talent."""
    from scanner.detectors.base import likeness_detector
    from scanner.policy import consent_status

    settings = settings_from(ctx, project=project)
    scanner = open_scanner(settings)
    t = scanner.catalog.find_talent(name)
    out.print(f"[bold]#{t.id} {esc(t.name)}[/]" + (" (union-covered)" if t.union_covered else ""))
    for s in scanner.catalog.samples(talent_id=t.id):
        out.print(f"  {s.kind:5} sample #{s.id}  {esc(s.path)}  ({s.sha256[:12]})")
    records = scanner.catalog.consents(t.id)
    _consent_table(records)
    for det in (likeness_detector(kind) for kind in ("face", "voice")):
        status = consent_status(records, det.consent_scopes, settings.project, date.today())
        out.print(f"  {det.name} in project {settings.project or '(none)'}: "
                  + ("[green]covered[/] " if status.valid else "[red]not covered[/] ") + esc(status.reason))


@app.command("remove")
@handle_errors
def remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Talent name or id.")]) -> None:
    """Remove a talent's samples from matching (consent history is kept for audit)."""
    scanner = open_scanner(settings_from(ctx))
    t = scanner.catalog.find_talent(name)
    scanner.catalog.remove_talent(t.id)
    console.print(f"removed talent #{t.id} {esc(t.name)}; consent history kept; indexes update at the next build")


def _consent_table(records) -> None:
    from rich.table import Table

    table = Table("id", "action", "scope", "project", "from", "until", "document", "revokes", "recorded", "by")
    for r in records:
        table.add_row(str(r.id), r.action, r.scope, esc(r.project), r.valid_from, r.valid_until or "open",
                      esc(r.document), f"#{r.revokes}" if r.revokes else "", r.recorded_at, esc(r.recorded_by))
    out.print(table)


@consent_app.command("grant")
@handle_errors
def grant(
    ctx: typer.Context,
    talent: Annotated[str, typer.Argument(help="Talent name or id.")],
    scope: Annotated[ConsentScope, typer.Option(help="What the consent covers.")],
    project: Annotated[str, typer.Option(help="Project it applies to ('*' for all).")],
    document: Annotated[str, typer.Option(help="Reference to the signed consent (contract id, file).")],
    valid_from: Annotated[Optional[str], typer.Option("--from", help="First valid day, YYYY-MM-DD.")] = None,
    valid_until: Annotated[Optional[str], typer.Option("--until", help="Last valid day, YYYY-MM-DD.")] = None,
) -> None:
    """Record a documented consent grant."""
    scanner = open_scanner(settings_from(ctx))
    t = scanner.catalog.find_talent(talent)
    r = scanner.catalog.grant_consent(t.id, scope, project, valid_from, valid_until, document, _user())
    console.print(f"recorded consent #{r.id}: {esc(t.name)} {r.scope} for project {esc(r.project)} "
                  f"{r.valid_from or 'from now'} to {r.valid_until or 'open-ended'} ({esc(r.document)})")


@consent_app.command("revoke")
@handle_errors
def revoke(
    ctx: typer.Context,
    consent_id: Annotated[int, typer.Argument(help="Id of the grant to revoke (see `scanner consent list`).")],
    document: Annotated[str, typer.Option(help="Reference to the revocation notice.")] = "",
) -> None:
    """Revoke a grant (adds a revocation record; nothing is overwritten)."""
    scanner = open_scanner(settings_from(ctx))
    r = scanner.catalog.revoke_consent(consent_id, _user(), document)
    console.print(f"recorded revocation #{r.id} of consent #{consent_id}, effective {r.valid_from}")


@consent_app.command("list")
@handle_errors
def list_consent(ctx: typer.Context, talent: Annotated[Optional[str], typer.Argument(help="Talent name or id.")] = None) -> None:
    """Full consent history (all talent, or one)."""
    scanner = open_scanner(settings_from(ctx))
    tid = scanner.catalog.find_talent(talent).id if talent else None
    _consent_table(scanner.catalog.consents(tid))
