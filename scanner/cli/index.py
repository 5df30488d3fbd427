"""`scanner index`: build and inspect the per-detector indexes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from scanner.cli.common import console, esc, handle_errors, open_scanner, out, progress_bar, settings_from

if TYPE_CHECKING:
    from scanner.api import Scanner

app = typer.Typer(help="Build and inspect the search indexes.", no_args_is_help=True)


@app.command("build")
@handle_errors
def build(
    ctx: typer.Context,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-embed every reference from scratch "
                                                           "(needed after a model change).")] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="Farm task K/N: embed only this shard's "
                                                 "references into OUT/shard-K-of-N (then `scanner index merge OUT`).")]
    = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for --shard parts.")] = None,
) -> None:
    """Bring indexes in line with the catalog (incremental: only new and removed works)."""
    from scanner.jobs.shards import Shard, in_shard

    scanner = open_scanner(settings_from(ctx))
    if shard:
        part = Shard.parse(shard)
        if out is None:
            raise typer.BadParameter("--shard needs --out (a folder shared by all parts)", param_hint="--out")
        with progress_bar("indexing shard", scanner.catalog.count()) as advance:
            reports = scanner.build_index_part(out / part.folder, lambda i: in_shard(str(i), part), advance)
        _table(scanner, reports)
        return
    n_refs = scanner.catalog.count()
    console.print("loading models: " + ", ".join(scanner.settings.detectors))
    detectors = scanner.detectors
    work = n_refs * len(detectors) if rebuild else scanner.pending_references() * len(detectors)
    with progress_bar("indexing", max(work, 1)) as advance:
        reports = scanner.build_index(rebuild=rebuild, progress=advance)
    _table(scanner, reports)
    console.print(f"indexes in {scanner.settings.index_dir}")


@app.command("merge")
@handle_errors
def merge(ctx: typer.Context, folder: Annotated[Path, typer.Argument(help="The --out folder of "
                                                                     "`scanner index build --shard`.")]) -> None:
    """Merge index parts built by farm tasks into the live indexes."""
    from scanner.jobs.shards import shard_folders

    scanner = open_scanner(settings_from(ctx))
    _table(scanner, scanner.merge_index_parts(shard_folders(folder, "manifest.json")))
    console.print(f"indexes in {scanner.settings.index_dir}")


def _table(scanner: "Scanner", reports) -> None:
    from rich.table import Table

    table = Table("detector", "model", "added", "removed", "indexed", "not indexed")
    for r in reports:
        table.add_row(r.detector, esc(scanner.detectors[r.detector].model_label), str(r.added), str(r.removed),
                      str(r.count), str(len(r.skipped)))
    out.print(table)
    for r in reports:
        for ref_id, why in sorted(r.skipped.items(), key=lambda kv: int(kv[0])):
            console.print(f"[yellow]note[/] {r.detector}: reference #{ref_id} not indexed: {esc(why)}")


@app.command("status")
@handle_errors
def status(ctx: typer.Context) -> None:
    """Show each index's manifest and how far it is behind the catalog."""
    from rich.table import Table

    scanner = open_scanner(settings_from(ctx))
    table = Table("detector", "model", "count", "not indexed", "dim", "metric", "created", "checksum")
    for name in scanner.settings.detectors:
        m = scanner.store.manifest(name)
        if m is None:
            table.add_row(name, "-", "not built", "", "", "", "", "")
        else:
            table.add_row(name, esc(m.model), str(m.count), str(len(m.skipped)), str(m.dim), m.metric, m.created,
                          m.checksum[:12])
    out.print(table)
    pending = scanner.pending_references()
    console.print(f"{scanner.catalog.count()} works in catalog; "
                  + (f"{pending} not yet indexed (run `scanner index build`)" if pending else "indexes are current"))
