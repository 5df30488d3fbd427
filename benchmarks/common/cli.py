"""Flags every benchmark spells the same way, and the one way to run a benchmark.

Run benchmarks from the repository root as modules, ``.venv/bin/python -m benchmarks.<name>``: the
root is then on ``sys.path`` (no path edits in the scripts) and ``benchmarks.common`` imports. A
benchmark's usage line in its module docstring says exactly that.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from benchmarks.common.data import SHARED_DATA


def parser(doc: str | None, raw: bool = False) -> argparse.ArgumentParser:
    """An ArgumentParser described by the docstring's first paragraph (``raw``: the whole docstring,
    formatting kept, for benchmarks whose docstring is their manual)."""
    if raw:
        return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    return argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])


def add_data(p: argparse.ArgumentParser, flag: str = "--data", sub: str = "", help: str | None = None) -> None:
    """``flag DIR``, default ``../shared/data`` (``/sub`` appended when given)."""
    default = SHARED_DATA / sub if sub else SHARED_DATA
    p.add_argument(flag, type=Path, default=default, help=help or f"data folder (default {default})")


def add_seed(p: argparse.ArgumentParser, default: int = 0) -> None:
    """``--seed N``: the split and every random draw."""
    p.add_argument("--seed", type=int, default=default, help=f"seed of the split and the draws (default {default})")


def add_quick(p: argparse.ArgumentParser, help: str = "smoke run: smaller sizes") -> None:
    """``--quick``."""
    p.add_argument("--quick", action="store_true", help=help)


def add_write_calibration(p: argparse.ArgumentParser) -> None:
    """``--write-calibration [PATH]``: merge thresholds into PATH, by default the package calibration."""
    from scanner.config import Settings

    default = Settings().calibration
    p.add_argument("--write-calibration", type=Path, nargs="?", const=default, default=None, metavar="PATH",
                   help=f"merge thresholds into PATH (default {default})")


def names(value: str) -> tuple[str, ...]:
    """A comma-separated flag value as a tuple of names (``"a, b,"`` -> ``("a", "b")``)."""
    return tuple(s.strip() for s in value.split(",") if s.strip())



def frame_size(value: str) -> tuple[int, int]:
    """A ``WxH`` flag value (``"1920x1080"``) as ``(1920, 1080)``; anything else is a usage error."""
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1920x1080, not {value!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"a frame of at least 16x16 px, not {value!r}")
    return w, h
