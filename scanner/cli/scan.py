"""`scanner scan` and `scanner check`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.table import Table

from scanner.api import Scanner
from scanner.cli.common import ProjectOpt, StageOpt, cli_caller, console, esc, handle_errors, out, progress_bar, settings_from
from scanner.reports import FailOn, JsonlWriter, exit_code, summarize
from scanner.reports.html import COLOURS, write_html

FailOnOpt = Annotated[FailOn, typer.Option("--fail-on", help="Verdicts that make the exit code 1 "
                                                             "(assets that could not be checked always give 2).")]


def run_scan(scanner: Scanner, paths: list[Path], out_dir: Path, fail_on: FailOn, html: bool = True) -> int:
    """Scan ``paths`` into ``out_dir`` (results.jsonl, report.html), print a summary, return the exit code."""
    candidates = scanner.list_assets(paths)
    if not candidates:
        console.print(f"[yellow]no media files found under {esc(', '.join(map(str, paths)))}[/]")
        return 0
    console.print(f"{len(candidates)} assets to check; detectors: "
                  + esc(", ".join(d.describe() for d in scanner.detectors.values())))
    pending = scanner.pending_references()
    if pending:
        with progress_bar("updating indexes", pending * len(scanner.detectors)) as advance:
            scanner.build_index(progress=advance)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    with JsonlWriter(out_dir / "results.jsonl") as jsonl, progress_bar("scanning", len(candidates)) as advance:
        for result in scanner.scan(candidates, progress=advance, thumb_dir=out_dir / "thumbs"):
            jsonl.write(result)
            records.append(result.to_dict())
    summary = summarize(records)
    _print_summary(records)
    if html:
        meta = {"stage": scanner.settings.stage.value, "calibration": scanner.calibration.version,
                "generated": datetime.now().isoformat(timespec="seconds")}
        page = write_html(records, out_dir / "report.html", scanner.reference_thumbnail, "Scan report", meta)
        console.print(f"HTML report: {esc(str(page))}")
    console.print(f"JSON lines:  {esc(str(out_dir / 'results.jsonl'))}")
    return exit_code(summary, fail_on)


def _print_summary(records: list[dict]) -> None:
    flagged = [r for r in records if r["verdict"] != "pass"]
    if flagged:
        table = Table("verdict", "asset", "evidence")
        for r in flagged[:30]:
            if r["verdict"] == "error":
                evidence = r["error"]
            else:
                f = r["findings"][0]
                evidence = (f"{f['reference_title']} (#{f['reference_id']}, {f['rights_holder']}) via {f['detector']} "
                            f"score {f['score']}")
            table.add_row(f"[{COLOURS[r['verdict']]}]{r['verdict']}[/]", esc(r["path"]), esc(evidence))
        out.print(table)
        if len(flagged) > 30:
            out.print(f"... and {len(flagged) - 30} more in the report")
    s = summarize(records)
    out.print(f"[bold]{s.total} assets:[/] [red]{s['block']} block[/], [dark_orange]{s['review']} review[/], "
              f"[purple]{s['error']} error[/], [green]{s['pass']} pass[/]")


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
) -> None:
    """Scan deliverables against the catalog; write JSON lines + HTML; exit 0 pass, 1 flagged, 2 unchecked."""
    scanner = Scanner(settings_from(ctx, stage=stage, project=project), caller=cli_caller())
    out_dir = out_dir or Path("reports") / datetime.now().strftime("scan-%Y%m%d-%H%M%S")
    raise typer.Exit(run_scan(scanner, paths, out_dir, fail_on, html))


def check(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="One asset.", show_default=False)],
    stage: StageOpt = None,
    project: ProjectOpt = None,
    fail_on: FailOnOpt = FailOn.REVIEW,
) -> None:
    """Check one asset and print its JSON result (same exit codes as scan)."""
    scanner = Scanner(settings_from(ctx, stage=stage, project=project), caller=cli_caller())
    result = scanner.check(file)
    out.print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False), markup=False, highlight=False)
    raise typer.Exit(exit_code(summarize([result]), fail_on))


scan = handle_errors(scan)
check = handle_errors(check)
