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
from benchmarks.image_copy import (FPR_LEVELS, FUSIONS, LOCAL_LABEL, PRODUCTS, Method, Operating,  # noqa: E402
                                   PairModel, Queries, content_links, drop_linked_pairs, level_share,
                                   negative_pool, operating_point, pair_rate_target, query_fpr, union)


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


def test_a_tail_recorded_only_from_a_floor_is_fitted_from_there():
    # Inlier counts of unrelated pairs with a geometric tail (each inlier more a third as likely), recorded
    # only from 5 inliers on: fits with 1-4 inliers read 0, as image.local's diagnostic floor makes them.
    n = 2_000_000
    true = {k: n * 2e-4 * 3.0 ** -(k - 1) for k in range(1, 13)}  # expected pairs with exactly k
    counts = {k: round(v) for k, v in true.items() if k >= 5 and round(v) > 0}
    x = _counts(n, {**counts, 2: 3})  # and a few stray low scores (text-only hits), as in a real run
    rate_at = lambda k: sum(v for j, v in true.items() if j >= k) / n  # noqa: E731
    censored = PairModel(Metric.COUNT, x, recorded_from=5)
    assert censored.fit is not None and censored.recorded_from == 5
    fitted = float(censored.fitted(np.asarray([10.0]))[0])
    assert rate_at(10) / 3 < fitted < rate_at(10) * 3  # beyond the data, near the true rate
    # Fitted through the thresholds under the floor, where the share of pairs stays flat because nothing was
    # recorded there, the tail decays far too slowly.
    flattened = PairModel(Metric.COUNT, x)
    assert float(flattened.fitted(np.asarray([10.0]))[0]) > 10 * rate_at(10)


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


def test_the_default_scans_parts_share_each_level_so_their_union_meets_it():
    assert all(level_share(label) + level_share(local) == pytest.approx(1.0) for label, local in PRODUCTS.values())
    assert all(0 < level_share(label) < 1 for label in FUSIONS)
    assert level_share("PDQ") == level_share("SSCD-white") == 1.0  # alone, a detector keeps the whole level
    rng = np.random.default_rng(0)
    pos = [True] * 50 + [False] * 200
    q = Queries(positive=pos, group=list(range(50)) + [-1] * 200)
    ref_groups = np.arange(50)
    ops = []
    for label, metric, negatives, own in (
            ("FUSED-white", Metric.COSINE, np.tanh(rng.normal(0, 0.25, 2_000_000)), rng.uniform(0.5, 1, 50)),
            (LOCAL_LABEL, Metric.COUNT, np.round(np.abs(rng.normal(0, 4, 2_000_000))), rng.integers(0, 80, 50))):
        q.score[label] = list(own) + [0.0] * 200
        q.best_ref[label] = list(range(50)) + [0] * 200
        m = Method(label, label, metric, None, None, None)
        model = PairModel(metric, negatives)
        ops.append([operating_point(m, q, ref_groups, model, t, 10_000) for t in FPR_LEVELS])
        for op, t in zip(ops[-1], FPR_LEVELS):
            assert op.fpr_at_design <= t * level_share(label) * 1.0001  # its share, not the whole level
    for (f, loc), t in zip(zip(*ops), FPR_LEVELS):
        assert union(f, loc, "").fpr_at_design <= t * 1.0001


def test_design_rate_round_trip():
    p = pair_rate_target(0.01, 10_000)
    assert query_fpr(p, 10_000) == pytest.approx(0.01)


def _queries() -> tuple[Queries, np.ndarray, np.ndarray]:
    """Three queries: work 0 (registered, positive), works 5 and 6 (held out); refs are groups 0 and 1,
    distractors groups 5 and 6. Work 5 reuses a painted body of work 6 (30 inliers untransformed)."""
    q = Queries(source=["a", "e", "f"], transform=["original"] * 3, group=[0, 5, 6], positive=[True, False, False])
    ref_groups, dis_groups = np.asarray([0, 1]), np.asarray([5, 6])
    q.ref_scores[LOCAL_LABEL] = [np.asarray([80.0, 0.0]), np.asarray([0.0, 6.0]), np.asarray([0.0, 0.0])]
    q.dis_scores[LOCAL_LABEL] = [np.asarray([0.0, 0.0]), np.asarray([0.0, 30.0]), np.asarray([22.0, 0.0])]
    q.score[LOCAL_LABEL] = [80.0, 6.0, 0.0]
    q.best_ref[LOCAL_LABEL] = [0, 1, 0]
    return q, ref_groups, dis_groups


def test_works_sharing_content_are_linked_and_left_out_of_the_negatives():
    q, ref_groups, dis_groups = _queries()
    links = content_links(q, ref_groups, dis_groups)
    assert links == {(5, 6)}  # 30 inliers links them; 22 the other way does not matter, 6 is far below
    before = negative_pool(q, LOCAL_LABEL, ref_groups, dis_groups)
    local = Method(LOCAL_LABEL, "local", Metric.COUNT, lambda i: [], lambda i: [])
    assert drop_linked_pairs([local], q, ref_groups, dis_groups, links) == 2
    after = negative_pool(q, LOCAL_LABEL, ref_groups, dis_groups)
    assert before.max() == 30 and np.isfinite(after).sum() == len(after) - 2 and after[np.isfinite(after)].max() == 6
    assert q.score[LOCAL_LABEL] == [80.0, 6.0, 0.0]  # best matches against the catalog unchanged here


def test_no_links_without_local_rows():
    q, ref_groups, dis_groups = _queries()
    del q.ref_scores[LOCAL_LABEL]
    assert content_links(q, ref_groups, dis_groups) == set()


def _entry(review: int, block: int, **measured) -> dict:
    return {"metric": "count", "final": {"review": review, "block": block},
            "ideation": {"review": block, "block": block}, "measured": dict(measured)}


def test_two_benchmarks_keep_the_stricter_level_without_ratcheting(tmp_path):
    import json

    from benchmarks.common.calibrate import stricter_than_stored

    path = tmp_path / "calibration.json"

    def store(entry: dict) -> None:
        path.write_text(json.dumps({"detectors": {"image.local": {"m": entry}}}))

    store(_entry(10, 12, source="scenes"))  # the scenes suite, its own small catalog
    a = stricter_than_stored(_entry(19, 25, source="copy"), path, "image.local", "m", "scenes_suite", "image_copy", "s")
    assert a["final"] == {"review": 19, "block": 25} and a["measured"]["scenes_suite"]["source"] == "scenes"
    store(a)
    b = stricter_than_stored(_entry(11, 13, source="scenes"), path, "image.local", "m", "image_copy", "scenes_suite",
                             "c")
    assert b["final"] == {"review": 19, "block": 25}  # the design-size level still holds
    assert "scenes_suite" not in b["measured"]["image_copy"]  # no nesting of copies
    store(b)
    c = stricter_than_stored(_entry(15, 20, source="copy"), path, "image.local", "m", "scenes_suite", "image_copy", "s")
    assert c["final"] == {"review": 15, "block": 20}  # compared with the scenes suite's own 11 / 13, not 19 / 25
    store(c)
    # The same benchmark again, over its own entry: compared with the scenes suite's levels kept inside it,
    # not with its own earlier 15 / 20, and the scenes suite's measurement is kept as it was (not nested).
    d = stricter_than_stored(_entry(14, 18, source="copy"), path, "image.local", "m", "scenes_suite", "image_copy", "s")
    assert d["final"] == {"review": 14, "block": 18}
    assert d["measured"]["scenes_suite"]["source"] == "scenes"
    assert "scenes_suite" not in d["measured"]["scenes_suite"]
    assert d["measured"]["own_levels"]["final"] == {"review": 14, "block": 18}
    assert stricter_than_stored(_entry(1, 2), tmp_path / "none.json", "image.local", "m", "x", "y", "z")["final"] == \
        {"review": 1, "block": 2}


def test_tail_parameters_are_named_for_their_family():
    from benchmarks.image_copy import tail_parameters

    # normal: Phi^-1(rate) = 2 x + 3 -> mean -1.5, sd 0.5; exponential: log rate = -0.5 x + 10 -> rate 1 at x = 20
    assert tail_parameters("normal", 3.0, 2.0) == {"mean": -1.5, "sd": 0.5}
    assert tail_parameters("exponential", 10.0, -0.5) == {"location": 20.0, "scale_length": -2.0}


def test_stored_tail_fits_use_their_family_names():
    import json

    def fits(o):
        if isinstance(o, dict):
            if isinstance(o.get("tail_fit"), dict) and "family" in o["tail_fit"]:
                yield o["tail_fit"]
            for v in o.values():
                yield from fits(v)

    stored = list(fits(json.loads((REPO_ROOT / "scanner" / "policy" / "calibration.json").read_text())))
    assert stored
    for f in stored:
        want = {"mean", "sd"} if f["family"] == "normal" else {"location", "scale_length"}
        assert want <= set(f) and not ({"mean", "sd", "location", "scale_length"} - want) & set(f), f


def test_query_cache_keys_do_not_follow_an_edit_of_the_file_during_a_run(monkeypatch):
    import benchmarks.image_copy as ic

    src = ic.Source("stamps/x", None, 0)  # type: ignore[arg-type]  # the key reads the name only
    keys = [ic.query_key(src, t, 0) for t in ic.TRANSFORMS]
    assert len(set(keys)) == len(keys)
    # inspect.getsource reads the file on disk by line number: an edit shifts what it returns
    monkeypatch.setattr(ic.inspect, "getsource", lambda fn: "shifted lines")
    assert [ic.query_key(src, t, 0) for t in ic.TRANSFORMS] == keys
    assert ic._code_crc(ic.composite) != ic._SOURCE_CRCS[ic.composite]  # what an unfixed key would have read
