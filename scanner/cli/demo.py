"""`scanner demo`: the whole job on the bundled sample, in a throw-away workspace."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from scanner.cli.common import cli_caller, console, esc, handle_errors, progress_bar, settings_from
from scanner.cli.scan import run_scan
from scanner.catalog.url import describe
from scanner.config import REPO_ROOT
from scanner.reports.summary import EXIT_CODE_MEANINGS, FailOn

SAMPLE = REPO_ROOT / "examples" / "sample"


@handle_errors
def demo(
    ctx: typer.Context,
    workspace: Annotated[Path, typer.Option(help="Where the demo catalog, indexes and report go "
                                                 "(recreated on each run).")] = Path("demo-workspace"),
) -> None:
    """Register the sample works, index them and scan the sample deliverables to a report.

    Runs the default detectors with their real models (all installed with the project, offline).
    """
    from scanner.api import Scanner  # here, not at the top: `scanner --help` must not load the scanner

    if not SAMPLE.is_dir():
        raise typer.BadParameter(f"sample data not found at {SAMPLE}")
    if workspace.exists():
        shutil.rmtree(workspace)
    settings = settings_from(ctx, catalog=workspace / "catalog.db", index_dir=workspace / "indexes")
    scanner = Scanner(settings, caller=cli_caller())
    manifest = SAMPLE / "catalog.csv"
    with progress_bar("registering sample works", sum(1 for _ in open(manifest)) - 1) as advance:
        outcomes = scanner.import_manifest(manifest, progress=advance)
    console.print(f"registered {sum(o.created for o in outcomes)} works in {esc(describe(settings.catalog))}")
    code = run_scan(scanner, [_short(SAMPLE / "deliverables")], workspace / "report", FailOn.REVIEW)
    console.print(f"a pipeline gating on `scanner scan` would get exit code {int(code)} here "
                  f"({EXIT_CODE_MEANINGS.get(code, 'see scanner --help')})")


def _short(path: Path) -> Path:
    """Path relative to the working directory when it is below it (shorter report paths)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
