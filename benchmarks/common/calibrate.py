"""The calibration entry a benchmark writes, and the write itself.

Every calibrating benchmark stores, per (detector, model), two thresholds per stage: ``final`` blocks
at the strict (0.1 % FPR) level and reviews at the loose (1 % FPR) one; ``ideation`` blocks at the
strict level and reviews at ``ideation_review`` (the strict level unless a benchmark says otherwise:
at ideation only confident copies are flagged). ``measured`` carries the benchmark's evidence. The
file itself is merged by ``scanner.policy.calibration.merge_calibration`` (locked, other entries kept,
``version`` recomputed).
"""

from __future__ import annotations

import json
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


def stricter_than_stored(entry: dict[str, Any], path: Path, detector: str, model_id: str, stored_as: str,
                         ours_as: str, stored_by: str) -> dict[str, Any]:
    """``entry`` with every level no looser than the one already stored for ``detector``/``model_id`` at
    ``path`` (two benchmarks calibrate the same detector on different negatives: each keeps the other's
    stricter level), the stored measurement kept under ``measured[stored_as]`` (``stored_by`` says whose;
    ``ours_as`` is where the other benchmark keeps ours, not copied back). ``entry`` unchanged when nothing
    is stored."""
    try:
        old = json.loads(Path(path).read_text())["detectors"][detector][model_id]
    except (OSError, KeyError, ValueError, TypeError):
        return entry
    lower = entry.get("metric") == "hamming"
    out = json.loads(json.dumps(entry))
    own = {stage: dict(out[stage]) for stage in ("final", "ideation")}
    measured = old.get("measured", {})
    # The stored entry is the other benchmark's, or ours from an earlier run (then the other's measurement is
    # inside it, under ``stored_as``).
    other = (measured[stored_as] if isinstance(measured.get(stored_as), dict)
             else {k: v for k, v in measured.items() if k not in (ours_as, "levels")})  # not its copy of ours
    # Compare with the other benchmark's own levels (kept as measured.own_levels), not the stored ones, which
    # may already hold ours: otherwise a level could only ever get stricter.
    theirs = other.get("own_levels") or old
    for stage in ("final", "ideation"):
        for level in ("review", "block"):
            stored = theirs.get(stage, {}).get(level)
            if stored is not None:
                mine = out[stage][level]
                out[stage][level] = min(mine, stored) if lower else max(mine, stored)
    out["measured"][stored_as] = other
    out["measured"]["levels"] = f"stricter of this benchmark and {stored_by} (measured.{stored_as})"
    out["measured"]["own_levels"] = own
    return out
