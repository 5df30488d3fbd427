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
    from scanner.api import AddOutcome, Scanner
    from scanner.types import Reference

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


def _visibility(scanner: "Scanner", works: "list[Reference]") -> tuple[dict[int, dict[str, str]],
                                                                       dict[int, list[str]], list[str]]:
    """Which configured detectors cannot see each work, and which still do, from the indexes' manifests.

    Returns ({work id: {detector: why it has no signal}}, {work id: detectors that indexed it},
    detectors of the works' media whose index is not built yet). A detector is asked through the
    registry what it reads (``modality``) and holds (``references``); the reason is the note its
    ``embed_references`` gave, as the manifest records it.
    """
    from scanner.detectors.base import detector_class
    from scanner.types import ReferenceKind

    unseen: dict[int, dict[str, str]] = {w.id: {} for w in works}
    seen: dict[int, list[str]] = {w.id: [] for w in works}
    unbuilt: list[str] = []
    for name in scanner.settings.detectors:
        cls = detector_class(name)
        if cls.references != ReferenceKind.WORK:
            continue
        mine = [w for w in works if w.media_type == cls.modality]
        if not mine:
            continue
        manifest = scanner.store.manifest(name)
        if manifest is None:
            unbuilt.append(name)
            continue
        for w in mine:
            why = manifest.skipped.get(str(w.id))
            if why is None:
                seen[w.id].append(name)
            else:
                unseen[w.id][name] = why
    return unseen, seen, unbuilt


@app.command("list")
@handle_errors
def list_(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="JSON lines output.")] = False) -> None:
    """List registered works, with a warning for works some detectors cannot see (flat, tiny, no texture)."""
    from rich.table import Table

    scanner = open_scanner(settings_from(ctx))
    works = scanner.catalog.works()
    unseen, seen, unbuilt = _visibility(scanner, works)
    if as_json:
        for w in works:
            out.print(json.dumps({**w.__dict__, "clearance": w.clearance.value, "unseen_by": unseen[w.id],
                                  "covered_by": seen[w.id]}), markup=False)
        return
    table = Table("id", "title", "rights holder", "clearance", "size", "sha256", "path", "unseen by")
    for w in works:
        table.add_row(str(w.id), esc(w.title), esc(w.rights_holder), w.clearance.value, f"{w.width}x{w.height}",
                      w.sha256[:12], esc(w.path), esc(", ".join(unseen[w.id])) or "-")
    out.print(table)
    blind = [w for w in works if unseen[w.id]]
    if blind:
        console.print(f"[yellow]warning[/] {len(blind)} work{'s' if len(blind) > 1 else ''} cannot be seen by "
                      "some detectors:")
        for w in blind:
            # detectors' notes usually start with their own name; say it once
            why = "; ".join(note if note.startswith(f"{name}:") else f"{name}: {note}"
                            for name, note in unseen[w.id].items())
            cover = (f"still covered by {', '.join(seen[w.id])}" if seen[w.id]
                     else "[red]no detector can see it[/]: a copy of it will not be found")
            console.print(f"  #{w.id} {esc(w.title)}: {cover} ({esc(why)})")
    if unbuilt:
        console.print(f"[yellow]note[/] indexes not built for {', '.join(unbuilt)}: run `scanner index build` to "
                      "learn which works they cannot see")
    console.print(f"{len(works)} works in {esc(describe(scanner.settings.catalog))}")


@app.command("remove")
@handle_errors
def remove(ctx: typer.Context, keys: Annotated[List[str], typer.Argument(help="Reference ids or sha256 (prefixes).")]) -> None:
    """Remove works; indexes drop them at the next build or scan."""
    scanner = open_scanner(settings_from(ctx))
    for ref in scanner.remove_references(keys):
        out.print(f"removed #{ref.id}  {esc(ref.title)}")
    console.print("indexes are updated at the next `scanner index build` or scan")
