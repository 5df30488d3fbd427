"""Shared CLI plumbing: settings from the root options, error handling, progress bars."""

from __future__ import annotations

import functools
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape as esc  # noqa: F401 - re-exported for commands
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from scanner.config import Settings, load_settings
from scanner.errors import ScannerError
from scanner.types import Stage

console = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

ProjectOpt = Annotated[Optional[str], typer.Option("--project", help="Production the assets belong to "
                                                   "(talent consent is checked for this project).")]
StageOpt = Annotated[Optional[Stage], typer.Option("--stage", help="Delivery stage: thresholds differ for ideation and final.")]


def settings_from(ctx: typer.Context, **overrides: Any) -> Settings:
    """Settings from root options (``ctx.obj``) plus command-specific ``overrides``."""
    root = dict(ctx.find_root().obj or {})
    config: Path | None = root.pop("config", None)
    root.update({k: v for k, v in overrides.items() if v is not None})
    return load_settings(config, **root)


def cli_caller() -> str:
    """Audit-trail caller id for commands run by a person."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli"


def handle_errors(fn: Callable) -> Callable:
    """Turn user-facing errors into one line on stderr and an exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ScannerError as exc:
            console.print(f"[bold red]error:[/] {esc(str(exc))}", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields an ``advance(n)`` callable."""
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False,
        disable=not sys.stderr.isatty(),
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
