"""`scanner detectors`: every registered detector, its model, whether it can run here, and what it finds."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from scanner.cli.common import esc, handle_errors, out, settings_from

if TYPE_CHECKING:
    from scanner.config import Settings


@dataclass(frozen=True)
class DetectorInfo:
    """One row of `scanner detectors`."""

    name: str
    enabled: bool  # in the settings' detector list (the default list unless changed)
    modality: str
    references: str
    model: str  # "" for detectors that are an algorithm with no weights
    installed: str  # "yes", "no", "test model", "no weights needed", or why it cannot be told
    finds: str
    options: dict[str, Any] = field(default_factory=dict)  # its Options as the settings make them


def _finds(cls: type) -> str:
    """What the detector finds: its own one-line summary (class docstring), else the first line of
    its module's docstring without the ``name``: prefix."""
    summary = getattr(cls, "summary", None)
    line = summary() if callable(summary) else ""
    if not line:
        doc = (sys.modules[cls.__module__].__doc__ or "").strip()
        line = doc.splitlines()[0] if doc else ""
    if line.startswith("``") and "``:" in line:
        line = line.split("``:", 1)[1]
    return line.strip()


def _model_of(name: str, settings: "Settings") -> str:
    """The registry model detector ``name`` runs under ``settings`` (its ``Options.model``; '' for none)."""
    from scanner.models import model_name

    return model_name(settings, name)


def detector_info(settings: "Settings") -> list[DetectorInfo]:
    """Rows for every registered detector. Imports each detector module (no model is loaded)."""
    from scanner.cli.models import installed_weights
    from scanner.detectors.base import detector_class, detector_names, options_for
    from scanner.errors import ScannerError
    from scanner.models import registry

    specs = registry(settings)
    rows = []
    for name in detector_names():
        try:
            cls = detector_class(name)
        except ImportError as exc:  # an optional dependency is missing: say so, keep listing
            rows.append(DetectorInfo(name, name in settings.detectors, "?", "?", "", f"no ({exc.name} missing)", ""))
            continue
        model = _model_of(name, settings)
        if not model:
            installed = "no weights needed"
        elif model not in specs:
            installed = f"no (model {model!r} is not in the registry)"
        elif specs[model].test_only:
            installed = "test model"
        else:
            try:
                installed = "yes" if installed_weights(specs[model], settings) else "no"
            except ScannerError as exc:
                installed = f"no ({exc})"
        rows.append(DetectorInfo(name, name in settings.detectors, cls.modality,
                                 getattr(cls, "references", "work"), model, installed, _finds(cls),
                                 asdict(options_for(cls, settings))))
    return rows


@handle_errors
def detectors(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    options: Annotated[bool, typer.Option("--options", help="List each detector's options: value, default, "
                                          "type, and how to set it.")] = False,
) -> None:
    """List every detector: enabled or not, its model, whether the weights are installed, what it finds."""
    settings = settings_from(ctx)
    rows = detector_info(settings)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(asdict(row)))
        return
    from rich.table import Table

    if options:
        out.print(option_table(rows))
        example = next(((r.name, k, v) for r in rows for k, v in r.options.items() if k != "model"), None)
        toml = (f'[detectors."{example[0]}"] {example[1]} = {json.dumps(example[2])}' if example
                else '[detectors."<name>"]')
        out.print(esc(f"set them in scanner.toml ({toml}), the environment variable shown, or --<kind>-model "
                      "for a model"))
        return

    table = Table("detector", "on", "model", "installed", "finds")
    for r in rows:
        colour = "green" if r.installed in ("yes", "no weights needed") else "yellow" if r.installed == "test model" \
            else "red"
        table.add_row(r.name, "yes" if r.enabled else "-", esc(r.model or "-"), f"[{colour}]{esc(r.installed)}[/]",
                      esc(r.finds))
    out.print(table)
    out.print(f"enabled: {','.join(settings.detectors)} (change with --detectors, SCANNER_DETECTORS or scanner.toml); "
              "install models with `scanner models pull NAME` or `scanner models import NAME FILE`")


def option_table(rows: list[DetectorInfo]):
    """A rich table of every detector option: its value under the settings, default, type and variable."""
    from dataclasses import fields

    from rich.table import Table

    from scanner.config import env_name
    from scanner.detectors.base import detector_class, option_types

    table = Table("detector", "option", "value", "default", "type", "environment")
    for r in rows:
        if not r.options:
            continue
        cls = detector_class(r.name)
        kinds = option_types(cls)
        for f in fields(cls.Options):
            if f.name not in kinds:
                continue
            value = r.options[f.name]
            shown = esc(repr(value)) if value == f.default else f"[bold]{esc(repr(value))}[/]"
            table.add_row(r.name, f.name, shown, esc(repr(f.default)), kinds[f.name].__name__,
                          env_name(r.name, f.name))
    return table
