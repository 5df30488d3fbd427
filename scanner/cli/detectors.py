"""`scanner detectors`: every registered detector, its model, whether it can run here, and what it finds."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated

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


def _model_of(name: str, settings: "Settings", specs: dict) -> str:
    """The model detector ``name`` runs under ``settings``: its ``<kind>_model`` setting, else its only registry entry."""
    configured = getattr(settings, f"{name.split('.', 1)[-1]}_model", None)
    if configured:
        return str(configured)
    own = [s.name for s in specs.values() if s.detector == name and not s.test_only]
    return own[0] if len(own) == 1 else ""


def detector_info(settings: "Settings") -> list[DetectorInfo]:
    """Rows for every registered detector. Imports each detector module (no model is loaded)."""
    from scanner.cli.models import installed_weights
    from scanner.detectors.base import detector_class, detector_names
    from scanner.detectors.weights import registry
    from scanner.errors import ScannerError

    specs = registry(settings)
    rows = []
    for name in detector_names():
        try:
            cls = detector_class(name)
        except ImportError as exc:  # an optional dependency is missing: say so, keep listing
            rows.append(DetectorInfo(name, name in settings.detectors, "?", "?", "", f"no ({exc.name} missing)", ""))
            continue
        model = _model_of(name, settings, specs)
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
                                 getattr(cls, "references", "work"), model, installed, _finds(cls)))
    return rows


@handle_errors
def detectors(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List every detector: enabled or not, its model, whether the weights are installed, what it finds."""
    settings = settings_from(ctx)
    rows = detector_info(settings)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(asdict(row)))
        return
    from rich.table import Table

    table = Table("detector", "on", "model", "installed", "finds")
    for r in rows:
        colour = "green" if r.installed in ("yes", "no weights needed") else "yellow" if r.installed == "test model" \
            else "red"
        table.add_row(r.name, "yes" if r.enabled else "-", esc(r.model or "-"), f"[{colour}]{esc(r.installed)}[/]",
                      esc(r.finds))
    out.print(table)
    out.print(f"enabled: {','.join(settings.detectors)} (change with --detectors, SCANNER_DETECTORS or scanner.toml); "
              "install models with `scanner models pull NAME` or `scanner models import NAME FILE`")
