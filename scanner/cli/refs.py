"""`scanner refs`: register, import, list and remove reference works."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, List, Optional

import typer

from scanner.cli.common import console, esc, handle_errors, open_scanner, out, progress_bar, settings_from
from scanner.catalog.url import describe
from scanner.types import Clearance

if TYPE_CHECKING:
    from scanner.api import AddOutcome

app = typer.Typer(help="Register the works assets are checked against.", no_args_is_help=True)


def _report(outcomes: "list[AddOutcome]") -> None:
    added = sum(1 for o in outcomes if o.created)
    present = sum(1 for o in outcomes if o.reference and not o.created)
    failed = [o for o in outcomes if o.error]
    for o in outcomes:
        if o.created:
            out.print(f"added   #{o.reference.id}  {esc(o.reference.title)}  ({o.reference.sha256[:12]})")
        elif o.reference:
            out.print(f"present #{o.reference.id}  {esc(o.reference.title)}  (same sha256 already registered)")
    for o in failed:
        console.print(f"[red]failed[/]  {esc(o.path)}: {esc(o.error)}")
    console.print(f"{added} added, {present} already present, {len(failed)} failed")
    if failed:
        raise typer.Exit(2)


@app.command("add")
@handle_errors
def add(
    ctx: typer.Context,
    files: Annotated[List[Path], typer.Argument(help="Image files of the work.", show_default=False)],
    title: Annotated[Optional[str], typer.Option(help="Title (default: the file name).")] = None,
    rights_holder: Annotated[str, typer.Option("--rights-holder", "--owner", help="Who holds the rights.")] = "unknown",
    clearance: Annotated[Clearance, typer.Option(help="Rights status for this production.")] = Clearance.UNCLEARED,
) -> None:
    """Register one or more files as a work (idempotent by sha256)."""
    scanner = open_scanner(settings_from(ctx))
    _report(scanner.add_reference(files, title=title, rights_holder=rights_holder, clearance=clearance))


@app.command("import")
@handle_errors
def import_(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Argument(help="CSV with a 'path' column and optional title/label, "
                                                  "rights_holder/owner, clearance.")],
) -> None:
    """Bulk-register works from a CSV manifest."""
    from scanner.api import read_manifest

    scanner = open_scanner(settings_from(ctx))
    total = len(read_manifest(manifest))
    with progress_bar("importing", total) as advance:
        outcomes = scanner.import_manifest(manifest, progress=advance)
    failed = [o for o in outcomes if o.error]
    for o in failed:
        console.print(f"[red]failed[/]  {esc(o.path)}: {esc(o.error)}")
    added = sum(1 for o in outcomes if o.created)
    console.print(f"{added} added, {len(outcomes) - added - len(failed)} already present, {len(failed)} failed")
    if failed:
        raise typer.Exit(2)


@app.command("list")
@handle_errors
def list_(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="JSON lines output.")] = False) -> None:
    """List registered works."""
    from rich.table import Table

    scanner = open_scanner(settings_from(ctx))
    works = scanner.catalog.works()
    if as_json:
        for w in works:
            out.print(json.dumps({**w.__dict__, "clearance": w.clearance.value}), markup=False)
        return
    table = Table("id", "title", "rights holder", "clearance", "size", "sha256", "path")
    for w in works:
        table.add_row(str(w.id), esc(w.title), esc(w.rights_holder), w.clearance.value, f"{w.width}x{w.height}",
                      w.sha256[:12], esc(w.path))
    out.print(table)
    console.print(f"{len(works)} works in {esc(describe(scanner.settings.catalog))}")


@app.command("remove")
@handle_errors
def remove(ctx: typer.Context, keys: Annotated[List[str], typer.Argument(help="Reference ids or sha256 (prefixes).")]) -> None:
    """Remove works; indexes drop them at the next build or scan."""
    scanner = open_scanner(settings_from(ctx))
    for ref in scanner.remove_references(keys):
        out.print(f"removed #{ref.id}  {esc(ref.title)}")
    console.print("indexes are updated at the next `scanner index build` or scan")
