"""Command line entry point: thin commands over ``scanner.api``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner import __version__
from scanner.cli import demo as demo_cmd
from scanner.cli import catalog as catalog_cli, index, models, refs, service, talent
from scanner.cli import scan as scan_cmd

app = typer.Typer(
    name="scanner",
    help="Similarity scanner for copyright and likeness risk in AI-generated media.\n\n"
         "Typical run: `scanner refs import works.csv`, `scanner index build`, `scanner scan DELIVERABLES/`.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.add_typer(refs.app, name="refs")
app.add_typer(catalog_cli.app, name="catalog")
app.add_typer(index.app, name="index")
app.add_typer(models.app, name="models")
app.add_typer(talent.app, name="talent")
app.add_typer(talent.consent_app, name="consent")
app.command("scan")(scan_cmd.scan)
app.command("check")(scan_cmd.check)
app.command("merge")(scan_cmd.merge)
app.command("demo")(demo_cmd.demo)
app.command("serve")(service.serve)
app.add_typer(service.keys_app, name="keys")
app.add_typer(service.audit_app, name="audit")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"scanner {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML settings file "
                                                   " (default: ./scanner.toml if present).")] = None,
    catalog: Annotated[Optional[str], typer.Option(help="Catalog file or postgresql:// URL (default: catalog.db).",
                                                    envvar=None)] = None,
    index_dir: Annotated[Optional[Path], typer.Option(help="Index folder (default: indexes).")] = None,
    clip_model: Annotated[Optional[str], typer.Option(help="image.clip model name (see `scanner models list`).")] = None,
    detectors: Annotated[Optional[str], typer.Option(help="Comma-separated detectors "
                                                     " (default: image.pdq,image.clip).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda[:N].")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Global options apply to every command (CLI > SCANNER_* environment > config file > defaults)."""
    ctx.obj = {"config": config, "catalog": catalog, "index_dir": index_dir, "clip_model": clip_model,
               "detectors": detectors, "device": device}


def main() -> None:
    """Console-script entry point."""
    app()
