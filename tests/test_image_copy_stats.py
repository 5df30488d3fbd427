"""benchmarks/image_copy.py statistics for count scores (image.local inliers) and the default scan's decision:
the per-pair rate never reads zero below the observed range, thresholds are whole inlier counts, and the
union of two detectors' flags is what the scanner flags."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from scanner.config import REPO_ROOT
from scanner.types import Metric

pytest.importorskip("augly")
sys.path.insert(0, str(REPO_ROOT))
from benchmarks.image_copy import Operating, PairModel, pair_rate_target, query_fpr, union  # noqa: E402


def _counts(n_pairs: int, tail: dict[int, int]) -> np.ndarray:
    """``n_pairs`` negative pair scores: zeros (not verified) plus ``tail`` {inliers: how many pairs}."""
    out = np.zeros(n_pairs)
    i = 0
    for value, k in tail.items():
        out[i:i + k] = value
        i += k
    return out


def test_no_fit_gives_the_upper_bound_not_zero():
    model = PairModel(Metric.COUNT, _counts(100_000, {5: 40, 6: 3}))  # two distinct values: no tail fit
    assert model.fit is None
    rate, empirical = model.rate(np.asarray([10.0]))
    assert not empirical[0]
    assert rate[0] == pytest.approx(1 - 0.05 ** (1 / model.n), rel=1e-3)  # about 3 / n with none passing
    assert rate[0] > 0


def test_count_threshold_is_a_whole_count_at_the_target():
    model = PairModel(Metric.COUNT, _counts(1_000_000, {5: 400, 6: 120, 7: 40, 8: 12, 9: 4}))
    target = 30 / model.n  # 30 pairs may pass: >= 7 lets 56 through (too many), >= 8 lets 16 (kept)
    thr = model.threshold(target)
    assert float(thr).is_integer()
    rate, _ = model.rate(np.asarray([thr, thr - 1]))
    assert rate[0] <= target < rate[1]
    assert model.passing(np.asarray([8.0]))[0] == 16


def test_fitted_tail_of_counts_decreases_with_inliers():
    model = PairModel(Metric.COUNT, _counts(1_000_000, {5: 4000, 6: 1300, 7: 400, 8: 130, 9: 40}),
                      family="exponential")
    assert model.fit is not None
    fitted = model.fitted(np.asarray([9.0, 12.0, 20.0]))
    assert fitted[0] > fitted[1] > fitted[2] > 0
    assert model.scale == "-inliers"


def _op(found: list[bool], flagged: list[bool], fpr_design: float) -> Operating:
    return Operating("1%", 10.0, float(np.mean(flagged)), float(np.mean(found)), 1, 1e-6, False, fpr_design,
                     np.asarray(found), np.asarray(flagged))


def test_union_flags_what_either_flags_and_bounds_the_design_rate():
    a = _op([True, False, False, False], [False, True, False], 0.004)
    b = _op([False, False, True, False], [False, True, True], 0.005)
    u = union(a, b, "1%")
    assert u.recall == 0.5 and u.found.tolist() == [True, False, True, False]
    assert u.fpr == pytest.approx(2 / 3)
    assert u.fpr_at_design == pytest.approx(0.009)
    assert math.isnan(u.threshold)


def test_design_rate_round_trip():
    p = pair_rate_target(0.01, 10_000)
    assert query_fpr(p, 10_000) == pytest.approx(0.01)
