"""`scanner scan`, `scanner check` and `scanner merge`.

The scanner API (numpy, FAISS, models) is imported when a command runs, not when the CLI loads.
"""

from __future__ import annotations

import json
import os
import shlex
from enum import Enum
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable, List, Optional

import typer

from scanner.cli.common import ProjectOpt, StageOpt, cli_caller, console, esc, handle_errors, out, progress_bar, settings_from
from scanner.errors import ConfigError
from scanner.reports.summary import ExitCode, FailOn, exit_code, shorten_middle, summarize
from scanner.types import ConsentAction

if TYPE_CHECKING:
    from scanner.api import Scanner
    from scanner.jobs.shards import Shard

class Engine(str, Enum):
    LOCAL = "local"
    RAY = "ray"


FailOnOpt = Annotated[FailOn, typer.Option("--fail-on", help="Verdicts that make the exit code 1 "
                                                             "(assets that could not be checked always give 2).")]


def run_scan(scanner: Scanner, paths: list[Path], out_dir: Path, fail_on: FailOn, html: bool = True,
             shard: Shard | None = None, resume: bool = True, engine: str = "local", address: str | None = None,
             actors: int | None = None) -> int:
    """Scan ``paths`` into ``out_dir`` (results.jsonl, report.html), print a summary, return the exit code.

    With ``shard``, only that shard's assets are scanned, into ``out_dir/shard-K-of-N``. With
    ``resume``, results already in the folder for unchanged assets and configuration are reused.
    Nothing to scan writes an empty report and returns ``ExitCode.NOTHING_TO_SCAN`` (an empty or
    mistyped folder is not "all clear"); an empty shard returns 0, and `merge` judges the whole set.
    ``actors``: model-holding Ray actors for ``engine="ray"`` (default: one per GPU, or per two CPUs).
    """
    from scanner.jobs import shards
    from scanner.jobs.integrity import ASSET_ID, RecordSigner, asset_id, clear_seal, write_seal
    from scanner.jobs.resume import previous_results
    from scanner.reports.jsonl import JsonlWriter, write_jsonl

    candidates = shards.select(scanner.list_assets(paths), [str(p) for p in paths], shard)
    if shard is not None:
        out_dir = out_dir / shard.folder
        console.print(f"shard {shard.index + 1}/{shard.count}: {len(candidates)} assets")
    if not candidates:
        console.print(f"[yellow]no media files found under {esc(', '.join(map(str, paths)))}: nothing was checked[/]")
        write_jsonl(out_dir / "results.jsonl", [])  # an empty shard still reports, so merge sees a complete set
        write_seal(out_dir, [], RecordSigner.for_settings(scanner.settings))
        if shard is not None:
            return ExitCode.PASS
        return _report(scanner, [], out_dir, fail_on, html)
    pending = scanner.pending_references()
    if pending:
        with progress_bar("updating indexes", pending * len(scanner.settings.detectors)) as advance:
            scanner.build_index(progress=advance)
    running = scanner.running_detectors()
    idle = [n for n in scanner.settings.detectors if n not in running]
    console.print(f"{len(candidates)} assets to check; detectors: "
                  + esc(", ".join(d.describe() for d in running.values()) or "none")
                  + (f"; idle (nothing registered for them): {esc(', '.join(idle))}" if idle else ""))
    results_path = out_dir / "results.jsonl"
    signer = RecordSigner.for_settings(scanner.settings)  # records are signed: an edited --out is never trusted
    reuse = previous_results(results_path, scanner.config_fingerprint(), signer) if resume else {}
    if getattr(reuse, "rejected", None):
        path, why = reuse.rejected[0]
        console.print(f"[yellow]{len(reuse.rejected)} earlier records in {esc(str(results_path))} do not verify "
                      f"(e.g. {esc(path)}: {why}): checked again[/]")
    if reuse:
        console.print(f"resuming: {len(reuse)} earlier results in {esc(str(out_dir))} can be reused")
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_seal(out_dir)  # sealed again when this run has written every record
    records = []
    thumbs = out_dir / "thumbs"
    with JsonlWriter(results_path) as jsonl, progress_bar("scanning", len(candidates)) as advance:
        if engine == "ray":
            from scanner.jobs.ray_engine import scan_with_ray

            results = scan_with_ray(scanner.settings, candidates, scanner.caller, address,
                                    os.path.abspath(thumbs), reuse, actors=actors)
        else:
            results = scanner.scan(candidates, progress=advance, thumb_dir=thumbs, reuse=reuse)
        for cand, result in zip(candidates, results):  # results come in candidate order
            record = signer.sign({**result.to_dict(), ASSET_ID: asset_id(cand.path, [str(p) for p in paths])})
            jsonl.write(record)
            records.append(record)
            if engine == "ray":
                advance(1)
    write_jsonl(results_path, records)  # the final file holds exactly this run's assets, in walk order
    write_seal(out_dir, records, signer)
    return _report(scanner, records, out_dir, fail_on, html)


def _report(scanner: "Scanner", records: list[dict], out_dir: Path, fail_on: FailOn, html: bool) -> int:
    from scanner.reports.html import write_html
    from scanner.reports.jsonl import write_scan_summary

    project = scanner.settings.project or ""
    _print_summary(records, project)
    code = exit_code(summarize(records), fail_on)
    head = scanner.catalog.audit_head()  # kept next to the results: a later `audit verify --expect-head` shows a cut chain
    generated = datetime.now().isoformat(timespec="seconds")
    if html:
        meta = {"stage": scanner.settings.stage.value, "calibration": scanner.calibration.version,
                "generated": generated}
        if project:
            meta["project"] = project
        footer = {"catalog": str(scanner.catalog),
                  "audit head": (f"{head} (check later: scanner audit verify --expect-head {head})" if head
                                 else "the audit trail is empty")}
        works, consents = _catalog_lookups(scanner)
        page = write_html(records, out_dir / "report.html", scanner.reference_thumbnail, "Scan report", meta,
                          work=works, consent=consents, footer=footer)
        console.print(f"HTML report: {esc(str(page))}")
    write_scan_summary(out_dir / "scan.json", records, exit_code=int(code), generated=generated,
                       stage=scanner.settings.stage.value, project=project, calibration=scanner.calibration.version,
                       audit_head=head)
    console.print(f"JSON lines:  {esc(str(out_dir / 'results.jsonl'))}")
    if head:
        console.print(f"audit head:  {head.id}:{head.hash[:16]}… (in {esc(str(out_dir / 'scan.json'))})")
    return code


def _catalog_lookups(scanner: "Scanner") -> "tuple[Callable[[int], dict | None], Callable[[int], dict | None]]":
    """``work(id)`` and ``consent(id)`` for the report: the catalog records cleared and consented matches
    rely on (a consent grant comes with the revocation that ended it, if one was recorded since)."""
    from dataclasses import asdict

    records = scanner.catalog.consents()
    by_id = {r.id: asdict(r) for r in records}
    for r in records:
        if r.action == ConsentAction.REVOKE and r.revokes in by_id:
            by_id[r.revokes]["revoked_by"] = asdict(r)
    cache: dict[int, dict | None] = {}

    def work(ref_id: int) -> dict | None:
        if ref_id not in cache:
            ref = scanner.catalog.get(ref_id)
            cache[ref_id] = None if ref is None else {**asdict(ref), "clearance": ref.clearance.value}
        return cache[ref_id]

    return work, by_id.get


def _common_folder(paths: list[str]) -> tuple[str, list[str]]:
    """The folder every path is under (said once above the table) and the paths relative to it, so the
    column shows the part that tells assets apart; ("", paths) when they share no folder."""
    parents = [os.path.dirname(p) for p in paths]
    try:
        root = os.path.commonpath(parents) if all(parents) else ""
    except ValueError:  # absolute mixed with relative
        root = ""
    if not root or root in (os.sep, "."):
        return "", paths
    return root + os.sep, [os.path.relpath(p, root) for p in paths]


def _print_summary(records: list[dict], project: str = "") -> None:
    """Flagged assets in a table that fits the terminal (80 columns too): long asset paths are cut in
    the middle, so names that share a long prefix still differ on screen; each row says what to do next."""
    from rich.table import Table

    from scanner.reports.actions import next_step
    from scanner.reports.html import COLOURS

    flagged = [r for r in records if r["verdict"] != "pass"]
    if flagged:
        # 6 columns for the verdict and 10 for borders and padding; the asset gets up to 45 % of the
        # rest (cut in the middle), the evidence and next step what is left (it wraps).
        root, names = _common_folder([str(r["path"]) for r in flagged[:30]])
        if root:
            out.print(f"flagged assets under {esc(shorten_middle(root, max(20, out.width - 22)))}:")
        longest = max(len(n) for n in names)
        name_width = max(12, min(longest, (out.width - 16) * 45 // 100))
        table = Table("verdict")
        table.add_column("asset", no_wrap=True, min_width=min(longest, name_width))
        table.add_column("evidence → next step", overflow="fold")
        for r, name in zip(flagged[:30], names):
            if r["verdict"] == "error":
                evidence = str(r["error"])
            elif r["findings"]:
                f = r["findings"][0]
                evidence = (f"{f['reference_title']} (#{f['reference_id']}, {f['rights_holder']}) via {f['detector']} "
                            f"score {f['score']}")
            else:
                evidence = ""
            table.add_row(f"[{COLOURS[r['verdict']]}]{r['verdict']}[/]", esc(shorten_middle(name, name_width)),
                          esc(evidence) + f"\n[bold]→ {esc(next_step(r, project))}[/]")
        out.print(table)
        if len(flagged) > 30:
            out.print(f"... and {len(flagged) - 30} more in the report")
    s = summarize(records)
    cleared = sum(1 for r in records if r["verdict"] == "pass" for f in r.get("findings") or [])
    out.print(f"[bold]{s.total} assets:[/] [red]{s['block']} block[/], [dark_orange]{s['review']} review[/], "
              f"[purple]{s['error']} error[/], [green]{s['pass']} pass[/]")
    if cleared:
        out.print(f"{cleared} cleared or consented matches (licence/consent shown in the report)")


def scan(
    ctx: typer.Context,
    paths: Annotated[List[Path], typer.Argument(help="Deliverables folders or files (walked recursively).",
                                                 show_default=False)],
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report folder "
                                                    " (default: reports/scan-<date>-<time>).")] = None,
    stage: StageOpt = None,
    project: ProjectOpt = None,
    fail_on: FailOnOpt = FailOn.REVIEW,
    html: Annotated[bool, typer.Option("--html/--no-html", help="Write report.html.")] = True,
    shard: Annotated[Optional[str], typer.Option("--shard", help="Scan only shard K of N (K/N, 1-based) into "
                                                 "OUT/shard-K-of-N; combine with `scanner merge OUT`.")] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Reuse results already in --out for "
                                         "unchanged assets and configuration.")] = True,
    engine: Annotated[Engine, typer.Option("--engine", help="local: this process; ray: a Ray cluster.")] =
    Engine.LOCAL,
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster address (default: start a "
                                                   "local Ray, or RAY_ADDRESS).")] = None,
    actors: Annotated[Optional[int], typer.Option("--actors", min=1, help="Ray engine: model-holding actors "
                                                  "(default: one per GPU, else one per 2 CPUs).")] = None,
) -> None:
    """Scan deliverables against the catalog; write JSON lines + HTML.

    Exit 0 pass, 1 flagged, 2 some asset could not be checked, 3 nothing to scan (empty report
    written), 4 could not run.
    """
    from scanner.api import Scanner
    from scanner.jobs.shards import Shard

    part = Shard.parse(shard) if shard else None
    if actors is not None and engine is not Engine.RAY:
        raise typer.BadParameter("--actors sets the Ray engine's actors: add --engine ray", param_hint="--actors")
    scanner = Scanner(settings_from(ctx, stage=stage, project=project), caller=cli_caller())
    if out_dir is None:
        if part is not None:
            raise typer.BadParameter("--shard needs an explicit --out shared by all shards", param_hint="--out")
        out_dir = Path("reports") / datetime.now().strftime("scan-%Y%m%d-%H%M%S")
    raise typer.Exit(run_scan(scanner, paths, out_dir, fail_on, html, part, resume, engine.value, address, actors))


def merge(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="The --out folder the shards wrote into.")],
    fail_on: FailOnOpt = FailOn.REVIEW,
    html: Annotated[bool, typer.Option("--html/--no-html", help="Write report.html.")] = True,
) -> None:
    """Combine shard results (FOLDER/shard-K-of-N) into one report and one exit code (as `scan`)."""
    from scanner.api import Scanner
    from scanner.jobs import shards
    from scanner.jobs.integrity import RecordSigner
    from scanner.reports.jsonl import write_jsonl

    scanner = Scanner(settings_from(ctx))
    folders = shards.shard_folders(folder)
    records = shards.merge_records(folders, RecordSigner.for_settings(scanner.settings))
    write_jsonl(folder / "results.jsonl", records)
    shards.copy_thumbs(folders, folder)
    console.print(f"merged {len(folders)} shards, {len(records)} assets")
    raise typer.Exit(_report(scanner, records, folder, fail_on, html))


def check(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="One asset file (for a folder use `scanner scan`).",
                                         show_default=False)],
    stage: StageOpt = None,
    project: ProjectOpt = None,
    fail_on: FailOnOpt = FailOn.REVIEW,
) -> None:
    """Check one asset file and print its JSON result (same exit codes as scan)."""
    from scanner.api import Scanner

    if file.is_dir():  # a folder is a scan: checking "the first file" would judge a delivery by one asset
        raise ConfigError(f"{file} is a folder; `scanner check` takes one file. "
                          f"Check a folder with: scanner scan {shlex.quote(str(file))}")
    scanner = Scanner(settings_from(ctx, stage=stage, project=project), caller=cli_caller())
    result = scanner.check(file)
    out.print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False), markup=False, highlight=False)
    raise typer.Exit(exit_code(summarize([result]), fail_on))


scan = handle_errors(scan)
merge = handle_errors(merge)
check = handle_errors(check)
