"""The region second look's rule (benchmarks/region_look.py): its located box and its bound on the rate."""

from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import image_copy as ic
from benchmarks import region_look as rl
from scanner.detectors.base import Hit
from scanner.types import Polygon


def test_work_box_is_the_outline_clipped_to_the_asset_and_none_when_too_small():
    hit = Hit(1, 12.0, evidence=(Polygon(((-5.0, 10.0), (120.4, 12.0), (130.0, 90.2), (0.0, 80.0)), role="work_outline"),))
    assert rl.work_box(hit, 100, 200) == (0, 10, 100, 91)
    tiny = Hit(1, 12.0, evidence=(Polygon(((0.0, 0.0), (10.0, 0.0), (10.0, 10.0)), role="work_outline"),))
    assert rl.work_box(tiny, 100, 100) is None
    assert rl.work_box(Hit(1, 12.0), 100, 100) is None  # no outline reported


class _Rate:
    def __init__(self, rate: float):
        self._rate = rate

    def rate(self, thresholds):
        return np.full(len(thresholds), self._rate), np.zeros(len(thresholds), bool)


def _run(local_rate: float) -> tuple[SimpleNamespace, np.ndarray]:
    """Two registered works; one positive whose fit is weak (8 inliers) but whose region scores 0.6, and 40
    negatives, ten of them with a weak fit whose region scores at most 0.35."""
    n_neg = 40
    positive = [True] + [False] * n_neg
    group = [0] + [10 + i for i in range(n_neg)]
    local = [np.array([8.0, 0.0])] + [np.array([6.0 if i < 10 else 0.0, 0.0]) for i in range(n_neg)]
    region = np.full((1 + n_neg, 2), -np.inf)
    region[0, 0] = 0.6
    region[1:11, 0] = np.linspace(0.0, 0.35, 10)
    q = SimpleNamespace(positive=positive, group=group, ref_scores={ic.LOCAL_LABEL: local},
                        dis_scores={ic.LOCAL_LABEL: [np.zeros(0)] * (1 + n_neg)})
    run = SimpleNamespace(queries=q, ref_groups=np.array([0, 1]), dis_groups=np.zeros(0, int),
                          models={ic.LOCAL_LABEL: _Rate(local_rate)})
    return run, region


def test_region_rule_flags_above_the_negatives_when_the_bound_allows_it():
    run, region = _run(local_rate=1e-9)  # weak fits this rare: any region level meets the target
    op = rl.region_rule(run, region, 5, 0.01, 10_000)
    assert op is not None and op.threshold == -1.0
    assert op.recall == 1.0 and op.fpr == pytest.approx(10 / 40)
    # with fits needing more inliers than the negatives have, the negatives drop out and the positive stays
    op = rl.region_rule(run, region, 7, 0.01, 10_000)
    assert op.recall == 1.0 and op.fpr == 0.0
    assert rl.region_rule(run, region, 9, 0.01, 10_000).recall == 0.0  # the positive's own fit is too weak


def test_region_rule_has_no_level_when_too_few_negatives_bound_the_rate():
    # weak fits at 1e-4 per pair and only ten negative pairs with one: even "no pair passes" bounds the
    # rate at 1e-4 x 26 % (Clopper-Pearson), far above 1e-6 (1 % per query at 10,000 references)
    run, region = _run(local_rate=1e-4)
    assert rl.region_rule(run, region, 5, 0.01, 10_000) is None
    # weak fits at 2e-5 and 1,000 references (target ~1e-5 per pair): the bound allows one of the ten
    # negative pairs to pass (upper95(1/10) = 0.39 <= 0.5, upper95(2/10) = 0.51 > 0.5), so the level sits
    # between the two highest negative region scores (0.311 and 0.35)
    run, region = _run(local_rate=2e-5)
    op = rl.region_rule(run, region, 5, 0.01, 1_000)
    assert op is not None and 0.311 < op.threshold <= 0.35
    assert op.recall == 1.0 and op.fpr == pytest.approx(1 / 40) and op.pairs_passing == 1
