"""The calibration entry a benchmark writes, and the write itself.

Every calibrating benchmark stores, per (detector, model), two thresholds per stage: ``final`` blocks
at the strict (0.1 % FPR) level and reviews at the loose (1 % FPR) one; ``ideation`` blocks at the
strict level and reviews at ``ideation_review`` (the strict level unless a benchmark says otherwise:
at ideation only confident copies are flagged). ``measured`` carries the benchmark's evidence. The
file itself is merged by ``scanner.policy.calibration.merge_calibration`` (locked, other entries kept,
``version`` recomputed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scanner.policy.calibration import merge_calibration


def levels_entry(metric: str, block: float, review: float, measured: dict[str, Any], *,
                 ideation_review: float | None = None, **extra: Any) -> dict[str, Any]:
    """``{"metric", "final", "ideation", "measured", **extra}`` for one detector model (see module doc)."""
    return {"metric": metric,
            "final": {"block": block, "review": review},
            "ideation": {"block": block, "review": block if ideation_review is None else ideation_review},
            "measured": measured, **extra}


def write_calibration(path: Path, detector: str, model_id: str, entry: dict[str, Any], benchmark: str,
                      source: str) -> str:
    """Merge ``entry`` as ``detectors[detector][model_id]`` into the file at ``path``; ``benchmark`` names
    the writer in ``version`` and ``source`` says what data it ran on. Prints and returns the version."""
    version = merge_calibration(Path(path), {(detector, model_id): entry}, benchmark, source)
    print(f"Calibration: {path} version {version} ({detector} [{model_id}]: block {entry['final']['block']:g}, "
          f"review {entry['final']['review']:g})")
    return version
