"""Command line entry point: thin commands over ``scanner.api``.

Loading the CLI imports typer, rich and the settings only; each command imports the scanner API
(numpy, FAISS, model frameworks) when it runs, so `scanner --help` answers at once.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from scanner import __version__
from scanner.cli import demo as demo_cmd
from scanner.cli import catalog as catalog_cli, index, models, refs, service, talent
from scanner.cli import detectors as detectors_cmd
from scanner.cli import scan as scan_cmd
from scanner.cli.common import accept_settings
from scanner.reports.summary import ExitCode, exit_code_help

try:  # typer >= 0.20 ships its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - typer on the click package
    from click.exceptions import UsageError


class ScannerGroup(TyperGroup):
    """The root command group. Usage errors (unknown command or option, bad value, missing argument)
    exit 4, "could not run", instead of click's 2, which `scan` uses for "an asset could not be checked"."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except UsageError as exc:
            exc.exit_code = ExitCode.CANNOT_RUN
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:  # raised while parsing a subcommand, or by a command (typer.BadParameter)
            exc.exit_code = ExitCode.CANNOT_RUN
            raise


app = typer.Typer(
    name="scanner",
    cls=ScannerGroup,
    help="Similarity scanner for copyright and likeness risk in AI-generated media.\n\n"
         "Typical run: `scanner refs import works.csv`, `scanner index build`, `scanner scan DELIVERABLES/`.\n\n"
         "Settings options (--catalog, --detectors, --config, models, --device, --stage...) go before or after "
         "the command: CLI > SCANNER_* environment > config file > defaults.",
    epilog=exit_code_help(),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.add_typer(refs.app, name="refs")
app.add_typer(catalog_cli.app, name="catalog")
app.add_typer(index.app, name="index")
app.add_typer(models.app, name="models")
app.command("detectors")(detectors_cmd.detectors)
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


def root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Settings options given here apply to every command (CLI > SCANNER_* environment > config file > defaults)."""


def _accept_settings_everywhere(typer_app: typer.Typer) -> None:
    """Every command takes the settings options itself, so they work after the command name too
    (`scanner scan deliv --catalog c.db`), which is where users put them and where hints show them."""
    for info in typer_app.registered_commands:
        if info.callback is not None:
            info.callback = accept_settings(info.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _accept_settings_everywhere(group.typer_instance)


app.callback(epilog=exit_code_help())(accept_settings(root))
_accept_settings_everywhere(app)


def main() -> None:
    """Console-script entry point."""
    app()
