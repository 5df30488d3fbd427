"""Shared CLI plumbing: settings options, settings from them, error handling, progress bars.

Kept light on purpose: ``scanner --help`` imports this module, so nothing heavy (numpy, FAISS,
torch, the scanner API) is imported here; commands import what they need when they run.
"""

from __future__ import annotations

import functools
import inspect
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape as esc  # noqa: F401 - re-exported for commands

from scanner.config import Settings, load_settings
from scanner.errors import ScannerError
from scanner.reports.summary import ExitCode
from scanner.types import Stage

if TYPE_CHECKING:
    from scanner.api import Scanner

console = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

SETTINGS_PANEL = "Settings (accepted before or after the command)"

ProjectOpt = Annotated[Optional[str], typer.Option("--project", help="Production the assets belong to "
                                                   "(talent consent is checked for this project).")]
StageOpt = Annotated[Optional[Stage], typer.Option("--stage", help="Delivery stage: thresholds differ for ideation "
                                                   "and final.", rich_help_panel=SETTINGS_PANEL)]


def _model_options() -> dict[str, Any]:
    """``--<kind>-model`` for every detector the model registry has models for (``--sscd-model`` sets
    ``image.sscd``'s ``Options.model``), so a new detector's model option needs no CLI edit.

    Read from the registry's JSON files, not the detector classes: ``scanner --help`` imports no detector.
    """
    from scanner.errors import ConfigError
    from scanner.models.weights import model_flag, registry

    try:
        specs = list(registry(Settings()).values())
    except ConfigError:  # a broken registry file: the commands that need it say so
        specs = []
    opts = {}
    for detector in sorted({s.detector for s in specs}):
        names = sorted(s.name for s in specs if s.detector == detector)
        flag = model_flag(detector)
        opts[flag[2:].replace("-", "_")] = Annotated[Optional[str], typer.Option(
            flag, help=f"Model for {detector}: {', '.join(names)} (its default: `scanner detectors`).",
            rich_help_panel=SETTINGS_PANEL, show_default=False)]
    return opts


# The options that shape a run. Every command accepts them (see ``accept_settings``) and so does
# the root, so `scanner --catalog c.db scan x` and `scanner scan x --catalog c.db` are the same.
SETTINGS_OPTIONS: dict[str, Any] = {
    "config": Annotated[Optional[Path], typer.Option(
        "--config", "-c", help="TOML settings file (default: ./scanner.toml if present).",
        rich_help_panel=SETTINGS_PANEL, show_default=False)],
    "catalog": Annotated[Optional[str], typer.Option(  # str: a postgresql:// URL is no path
        "--catalog", help=f"Catalog file or postgresql:// URL (default: {Settings().catalog}).",
        rich_help_panel=SETTINGS_PANEL, show_default=False)],
    "index_dir": Annotated[Optional[Path], typer.Option(
        "--index-dir", help=f"Index folder (default: {Settings().index_dir}).", rich_help_panel=SETTINGS_PANEL,
        show_default=False)],
    "detectors": Annotated[Optional[str], typer.Option(
        "--detectors", help=f"Comma-separated detectors (default: {', '.join(Settings().detectors)}; "
                            "see `scanner detectors`).", rich_help_panel=SETTINGS_PANEL, show_default=False)],
    **_model_options(),
    "device": Annotated[Optional[str], typer.Option(
        "--device", help=f"auto, cpu or cuda[:N] (default: {Settings().device}).", rich_help_panel=SETTINGS_PANEL,
        show_default=False)],
    "stage": StageOpt,
}


def remember_settings(ctx: typer.Context, values: dict[str, Any]) -> None:
    """Record settings options given on the command line; later ones (after the command) win."""
    root = ctx.find_root()
    root.obj = {**(root.obj or {}), **{k: v for k, v in values.items() if v is not None}}


def accept_settings(fn: Callable) -> Callable:
    """Let the command ``fn`` (which takes a ``typer.Context``) accept every ``SETTINGS_OPTIONS`` option.

    typer reads a command's options from its signature, so the wrapper's signature is ``fn``'s plus
    the settings options ``fn`` does not declare itself; their values go to ``remember_settings``
    and ``settings_from`` sees them. Options ``fn`` declares (e.g. ``stage`` on ``scan``) stay its own.
    """
    sig = inspect.signature(fn, eval_str=True)
    ctx_name = next((n for n, p in sig.parameters.items() if p.annotation is typer.Context), None)
    if ctx_name is None:
        return fn
    added = {name: ann for name, ann in SETTINGS_OPTIONS.items() if name not in sig.parameters}

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name, None) for name in added}
        ctx = kwargs.get(ctx_name) or next(a for a in args if isinstance(a, typer.Context))
        remember_settings(ctx, given)
        return fn(*args, **kwargs)

    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=None)
             for name, ann in added.items()]
    wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), *extra])  # type: ignore[attr-defined]
    return wrapper


def settings_from(ctx: typer.Context, **overrides: Any) -> Settings:
    """Settings from the settings options (``ctx.obj``) plus command-specific ``overrides``."""
    root = dict(ctx.find_root().obj or {})
    config: Path | None = root.pop("config", None)
    root.update({k: v for k, v in overrides.items() if v is not None})
    # typer hands enum options over as members; settings are coerced from their plain values.
    values = {k: v.value if isinstance(v, Enum) else v for k, v in root.items()}
    return load_settings(config, **values)


def open_scanner(settings: Settings, **kwargs: Any) -> "Scanner":
    """A ``scanner.api.Scanner``, imported on first use (it pulls in numpy, FAISS and the detectors)."""
    from scanner.api import Scanner

    return Scanner(settings, **kwargs)


def cli_caller() -> str:
    """Audit-trail caller id for commands run by a person."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli"


def handle_errors(fn: Callable) -> Callable:
    """Turn user-facing errors into one line on stderr and an exit code (4: could not run), never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ScannerError as exc:
            # soft_wrap: one line in logs and CI output, however narrow the terminal
            console.print(f"[bold red]error:[/] {esc(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(getattr(exc, "exit_code", ExitCode.CANNOT_RUN)) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields an ``advance(n)`` callable."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False,
        disable=not sys.stderr.isatty(),
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
