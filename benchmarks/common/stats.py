"""Operating points: the threshold a false-positive-rate target allows, and recall at it.

The rule every benchmark uses: with ``n`` negative scores (each negative query's best score) and a
target FPR ``f``, ``a = floor(f * n)`` negatives may pass. The *pivot* is the ``(a+1)``-th closest
negative, the first one that must not pass; the threshold is the loosest value on the stored grid
(integers for counts and Hamming distances, 4 decimals for similarities) strictly closer than the
pivot. A score passes a threshold when it is at least as close (``>=``, or ``<=`` when lower is
closer), the scanner's rule (``scanner.types.Metric.closer_or_equal``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

FPR_LEVELS = (0.01, 0.001)  # review, block: the per-query FPR targets of the calibration file


def allowed_negatives(fpr: float, n: int) -> int:
    """How many of ``n`` negatives may pass at FPR ``fpr``: ``floor(fpr * n)`` (a hair of slack so that
    ``0.01 * 300`` counts as 3 whatever the float rounding)."""
    return int(math.floor(fpr * n + 1e-9))


def fpr_pivot(negatives: np.ndarray, fpr: float, lower_is_closer: bool = False) -> float | None:
    """The closest negative score that must not pass at ``fpr``; None when every negative may pass."""
    neg = np.asarray(negatives, np.float64)
    allowed = allowed_negatives(fpr, neg.size)
    if allowed >= neg.size:
        return None
    ranked = np.sort(neg) if lower_is_closer else -np.sort(-neg)
    return float(ranked[allowed])


def threshold_at_fpr(negatives: np.ndarray, fpr: float, *, lower_is_closer: bool = False,
                     step: float | None = 1.0, floor: float | None = None,
                     unconstrained: float | None = None) -> float:
    """The loosest threshold that lets at most ``floor(fpr * n)`` of ``negatives`` pass.

    ``step``: the grid thresholds are stored on (1 for counts and Hamming distances, ``1e-4`` for
    similarities); the result is the first grid value strictly closer than the pivot. ``None``: the
    pivot itself, for a caller that passes scores strictly closer than it. ``floor``: the loosest
    threshold allowed at all (a detector's reporting floor; for lower-is-closer scores, the largest
    distance). When every negative may pass, or the pivot is not finite (the negative never matched),
    the result is ``floor`` if given, else ``unconstrained`` if given, else the pivot side's infinity
    (``-inf``, or ``inf`` when lower is closer).
    """
    pivot = fpr_pivot(negatives, fpr, lower_is_closer)
    loosest = math.inf if lower_is_closer else -math.inf
    if pivot is None or not math.isfinite(pivot):
        return float(floor if floor is not None else unconstrained if unconstrained is not None else loosest)
    if step is None:
        thr = pivot
    else:
        # grid values as k / scale (k * step drifts in the last bit: 3 * 0.1 != 0.3)
        sign, scale = (-1.0 if lower_is_closer else 1.0), (round(1 / step) if step < 1 else 1 / step)
        k = math.floor(sign * pivot * scale) + 1
        while k / scale <= sign * pivot:  # float round-off: the grid value must be strictly closer
            k += 1
        thr = sign * k / scale
    if floor is not None:
        thr = min(thr, floor) if lower_is_closer else max(thr, floor)
    return float(thr)


def passes(scores: np.ndarray, threshold: float, lower_is_closer: bool = False) -> np.ndarray:
    """Mask of the scores at least as close as ``threshold``."""
    s = np.asarray(scores)
    return s <= threshold if lower_is_closer else s >= threshold


def rate(mask: np.ndarray) -> float:
    """Share of True in ``mask``; 0.0 when it is empty (no queries of that kind, nothing found)."""
    m = np.asarray(mask, bool)
    return float(m.mean()) if m.size else 0.0


@dataclass(frozen=True)
class Operating:
    """A method at one threshold: the FPR target that chose it, the threshold, recall over the
    positives and the FPR measured on the negatives (both at that threshold)."""

    target: float
    threshold: float
    recall: float
    fpr: float


def operating_point(positives: np.ndarray, negatives: np.ndarray, target: float, *,
                    right: np.ndarray | None = None, lower_is_closer: bool = False,
                    step: float | None = 1.0, floor: float | None = None) -> Operating:
    """Threshold at ``target`` from ``negatives`` (see ``threshold_at_fpr``), recall of ``positives`` at it
    (a positive counts only where ``right`` is True, e.g. "the top hit is its own work") and the
    negatives' measured FPR."""
    thr = threshold_at_fpr(negatives, target, lower_is_closer=lower_is_closer, step=step, floor=floor)
    found = passes(positives, thr, lower_is_closer)
    if right is not None:
        found = found & np.asarray(right, bool)
    return Operating(target, thr, rate(found), rate(passes(negatives, thr, lower_is_closer)))


def recall_at(positives: np.ndarray, threshold: float, right: np.ndarray | None = None,
              lower_is_closer: bool = False) -> float:
    """Share of ``positives`` passing ``threshold`` (and ``right`` where given)."""
    found = passes(positives, threshold, lower_is_closer)
    return rate(found & np.asarray(right, bool) if right is not None else found)


def pct(x: float, digits: int = 1, width: int = 0) -> str:
    """A share as a percentage, ``0.123 -> '12.3%'``; NaN as ``n/a``; right-aligned in ``width``."""
    if x != x:
        return "n/a".rjust(width)
    return f"{100 * x:.{digits}f}%".rjust(width)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank ``q``-th percentile (0-100) of ``values``; NaN when empty."""
    if not len(values):
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]
