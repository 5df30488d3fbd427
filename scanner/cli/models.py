"""`scanner models`: list, download and install model weights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from scanner.cli.common import console, esc, handle_errors, out, settings_from

if TYPE_CHECKING:
    from scanner.config import Settings
    from scanner.models.weights import ModelSpec

app = typer.Typer(help="Model registry: which models exist and whether their weights are installed.",
                  no_args_is_help=True)


def installed_weights(spec: "ModelSpec", settings: "Settings") -> Path | None:
    """Where ``spec``'s weights are installed (model cache, registry folder or a pinned package), or None."""
    from scanner.models.package_weights import main_weights
    from scanner.models.weights import find_weights
    from scanner.errors import ScannerError

    path = find_weights(spec, settings)
    if path is None and spec.config.get("package"):
        try:
            path = main_weights(spec, settings)[0]
        except ScannerError:
            path = None
    return path


def install_state(spec: "ModelSpec", settings: "Settings") -> str:
    """Rich text saying whether ``spec`` can run here: its weights path, "not installed" or "test model"."""
    if spec.test_only:
        return "test model (random weights)"
    path = installed_weights(spec, settings)
    return esc(str(path)) if path else "[red]not installed[/]"


@app.command("list")
@handle_errors
def list_(ctx: typer.Context) -> None:
    """List registered models and their install state."""
    from rich.table import Table

    from scanner.models.weights import registry

    settings = settings_from(ctx)
    table = Table("name", "detector", "installed", "dim", "description")
    for spec in registry(settings).values():
        table.add_row(spec.name, spec.detector, install_state(spec, settings), str(spec.dim), esc(spec.description))
    out.print(table)


@app.command("pull")
@handle_errors
def pull(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Model name from `scanner models list`.")]) -> None:
    """Download a model's weights (needs network access)."""
    from scanner.models.weights import get_spec, pull_weights

    settings = settings_from(ctx)
    path = pull_weights(get_spec(settings, name), settings)
    console.print(f"installed {name} at {path}")


@app.command("import")
@handle_errors
def import_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name from `scanner models list`.")],
    file: Annotated[Path, typer.Argument(help="Weights file obtained elsewhere.")],
) -> None:
    """Install a weights file (checked against the registry's sha256 when one is known)."""
    from scanner.models.weights import get_spec, import_weights

    settings = settings_from(ctx)
    path = import_weights(get_spec(settings, name), settings, file)
    console.print(f"installed {name} at {path}")
