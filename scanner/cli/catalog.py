"""`scanner catalog`: which catalog is in use, and copying an SQLite catalog into PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scanner.catalog import Catalog
from scanner.catalog.url import describe
from scanner.cli.common import console, esc, handle_errors, out, settings_from

app = typer.Typer(help="The catalog itself: backend, schema version, migration to PostgreSQL.", no_args_is_help=True)


@app.command("info")
@handle_errors
def info(ctx: typer.Context) -> None:
    """Backend, schema version and row counts of the catalog in use."""
    settings = settings_from(ctx)
    with Catalog(settings.catalog) as cat:
        head = cat.audit_head()
        out.print(f"catalog   {esc(describe(settings.catalog))}")
        out.print(f"backend   {cat.backend}, schema version {cat.schema_version()}")
        out.print(f"works     {cat.count()}")
        out.print(f"talent    {len(cat.talents())}")
        out.print(f"audit     {cat.audit_count()} records" + (f", head {head}" if head else ""))


@app.command("migrate")
@handle_errors
def migrate(
    source: Annotated[Path, typer.Option("--from", help="SQLite catalog file to copy.", show_default=False)],
    target: Annotated[str, typer.Option("--to", help="Empty PostgreSQL catalog: postgresql://user@host/dbname.",
                                        show_default=False)],
) -> None:
    """Copy an SQLite catalog into an empty PostgreSQL one, verifying the audit chain before and after."""
    from scanner.catalog.migrate import migrate as run

    report = run(source, target)
    copied = ", ".join(f"{n} {table}" for table, n in report.copied.items())
    console.print(f"copied {esc(copied)} from {esc(str(source))} to {esc(describe(target))}")
    if report.head:
        console.print(f"audit chain verified before and after: head {report.head} "
                      "(keep it as an anchor: `scanner audit verify --expect-head ...`)")
    out.print("ok")
