"""audio.fingerprint match budget: flat query cost as the landmark index grows.

A probe returns every index row stored under its hash, so without a limit the rows a query
fetches grow with the catalog. The search spends at most ``MATCH_BUDGET_PER_PROBE`` rows per
probe, rarest hashes and own cells first; below the budget nothing changes. The references those
rows shortlist then get their rows from the hashes left out (buckets are sorted by reference), so
a shortlisted copy scores as it would with every probe.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av")

from scanner.detectors import fingerprint as fp  # noqa: E402
from scanner.detectors.fingerprint import (  # noqa: E402
    FingerprintDetector, _candidates, _pitch_window_max, _shortlist, _verify, _within_budget,
)
from scanner.index.landmarks import LandmarkIndex  # noqa: E402
from scanner.media.audio import AudioClip  # noqa: E402
from scanner.testing.audio import synth_music  # noqa: E402

SR = 16000


def _add(index: LandmarkIndex, ref: int, hashes: np.ndarray, rng: np.random.Generator) -> None:
    n = hashes.size
    index.add(np.full(n, ref), hashes.reshape(-1, 1),
              {"t": rng.integers(0, 100_000, n), "f": rng.integers(0, 4000, n), "dt": rng.integers(5, 90, n)})


def test_bucket_sizes_are_what_lookup_returns():
    rng = np.random.default_rng(0)
    index = LandmarkIndex()
    _add(index, 1, np.array([5, 5, 5, 9, 40]), rng)
    _add(index, 2, np.array([5, 9]), rng)
    q = np.array([5, 9, 40, 7, 0, 10_000_000, -3])
    sizes = index.bucket_sizes(q)
    assert sizes.tolist() == [4, 2, 1, 0, 0, 0, 0]
    m = index.lookup(q)
    assert np.bincount(m.query, minlength=q.size).tolist() == sizes.tolist()
    assert LandmarkIndex().bucket_sizes(q).tolist() == [0] * q.size


def test_within_budget_keeps_everything_that_fits():
    sizes = np.array([3, 0, 7, 1, 2, 5])
    assert _within_budget(sizes, per_probe=3).tolist() == list(range(6))  # 18 rows <= 3 x 6


def test_within_budget_spends_it_on_the_rarest_hashes_in_query_order():
    sizes = np.array([50, 1, 9, 2, 30, 3])
    assert _within_budget(sizes, per_probe=3).tolist() == [1, 2, 3, 5]  # budget 18: sizes 1, 2, 3, 9 fit (15)
    assert _within_budget(sizes, per_probe=3, probes=2).tolist() == [1, 3, 5]  # budget 6: 1, 2, 3


def test_within_budget_spends_it_on_own_cells_before_neighbour_cells():
    # equal buckets: the probes of the landmark's own cell (0 flips) go first, then one flip, ...
    sizes = np.array([10, 10, 10, 10, 10, 10])
    flips = np.array([2, 0, 1, 0, 3, 1])
    assert _within_budget(sizes, flips, per_probe=5).tolist() == [1, 2, 3]  # budget 30
    # a rare neighbour cell still beats a common own cell (bucket x FLIP_COST per flip)
    assert _within_budget(np.array([500, 20, 500]), np.array([0, 1, 0]), per_probe=200).tolist() == [0, 1]


def _copy_in_index(seed: int, start_s: int):
    """(detector, a 10 s excerpt of a 20 s synthetic song as a query, an index holding the song as reference 7)."""
    det = FingerprintDetector()
    song = synth_music(seed, seconds=20.0, sr=SR)
    ref = det.embed_references([AudioClip(song, SR)])[0]
    query = det.embed_queries([AudioClip(song[start_s * SR:(start_s + 10) * SR], SR)])[0]
    index = LandmarkIndex()
    index.add(np.full(ref.vectors.shape[0], 7), ref.vectors, {k: ref.extra[k] for k in ("t", "f", "dt")})
    return det, query, index


def test_search_fetches_a_bounded_number_of_rows_from_a_crowded_index(monkeypatch):
    monkeypatch.setattr(fp, "MATCH_BUDGET_PER_PROBE", 64)  # a budget this small crowd exceeds
    det, query, index = _copy_in_index(7, 3)
    rng = np.random.default_rng(1)
    # crowd every hash the query probes with unrelated references' rows, skewed as real landmark
    # hashes are (a few very common hashes, many rare ones): 0 to 5000 rows per hash
    probes = np.unique(fp._probes(query.extra["v"], det.p)[1])
    crowd = np.minimum(5000, rng.pareto(1.0, probes.size) * 40).astype(np.int64)
    _add(index, 100, np.repeat(probes, crowd), rng)
    fetched = []
    real_gather = LandmarkIndex.gather
    monkeypatch.setattr(LandmarkIndex, "gather", lambda self, lo, hi: fetched.append(int((hi - lo).sum()))
                        or real_gather(self, lo, hi))
    hits = det.search(index, [query])[0]
    n_probes = fp._probes(query.extra["v"], det.p)[1].size
    # the budgeted rows, then the shortlisted references' rows from the other hashes (bounded the same way)
    assert len(fetched) == 2 and max(fetched) <= fp.MATCH_BUDGET_PER_PROBE * n_probes
    assert hits and hits[0].ref_id == 7  # the copy is still found among the crowd
    monkeypatch.setattr(fp, "MATCH_BUDGET_PER_PROBE", 1 << 30)  # no budget: every row is fetched
    det.search(index, [query])
    assert len(fetched) == 3 and fetched[2] > 2 * fetched[0]  # (the crowd reference is shortlisted: capped)


def test_a_shortlisted_copy_scores_as_without_a_budget(monkeypatch):
    """The budget drops the copy's common hashes; the shortlist collects its rows from them."""
    det, query, index = _copy_in_index(11, 2)
    rng = np.random.default_rng(3)
    probes = np.unique(fp._probes(query.extra["v"], det.p)[1])
    for other in range(100, 140):  # 40 unrelated references crowd every probed hash
        _add(index, other, np.repeat(probes, rng.integers(0, 6, probes.size)), rng)
    monkeypatch.setattr(fp, "MATCH_BUDGET_PER_PROBE", 1 << 30)
    full = det.search(index, [query])[0]
    monkeypatch.setattr(fp, "MATCH_BUDGET_PER_PROBE", 2)  # far below the ~100 rows per probe
    score = {}
    for n in (0, 4):
        monkeypatch.setattr(fp, "SHORTLIST_REFS", n)
        hits = det.search(index, [query])[0]
        assert hits and hits[0].ref_id == 7 == full[0].ref_id
        score[n] = hits[0].score
    # the shortlisted copy loses only the matches of probes with 2+ neighbour cells; without it, most
    assert 0.97 * full[0].score <= score[4] <= full[0].score and score[0] < 0.7 * full[0].score, (score, full[0].score)


def test_shortlist_ranks_references_by_their_densest_offset():
    ref = np.array([5, 5, 5, 5, 9, 9, 9, 2, 2, 3])
    offset = np.array([0.0, 10, 20, 5000, 100, 130, 9000, 0, 40_000, 7])  # bins of 32 frames
    # 5: 3 matches in bins 0..1; 9: 2 in bins 3..4; 2 and 3: 1 each (below 2, not listed)
    assert _shortlist(ref, offset, 0.0, 4).tolist() == [5, 9]
    assert _shortlist(ref, offset, 0.0, 1).tolist() == [5]


def test_pitch_window_bound_never_skips_a_verifiable_candidate():
    """The search skips candidates whose pitch shifts cannot give min_matches inliers: a bound on _verify."""
    rng = np.random.default_rng(0)
    skipped = 0
    for trial in range(300):
        n = int(rng.integers(8, 30))
        tq = rng.uniform(0, 600, n)
        tr = tq - 1000 + rng.normal(0, 1.0, n) * (trial % 2)  # half aligned, half not quite
        pitch = rng.choice([rng.uniform(-1.8, 1.8, n), rng.normal(0.3, 0.2, n)])
        qi = np.arange(n)
        fit = _verify(qi, tq, tr, pitch, 600.0, 625.0, 8)
        if _pitch_window_max(pitch) < 8:
            skipped += 1
            assert fit is None or fit["matches"] < 8
    assert skipped > 20  # the bound does skip candidates


def test_candidates_same_with_and_without_the_packed_sort(monkeypatch):
    rng = np.random.default_rng(4)
    ref = rng.integers(0, 50, 20_000)
    offset = rng.normal(0, 3000, ref.size)
    offset[:400] = 777.0  # one dense alignment
    packed = _candidates(ref, offset, 600.0, 8)
    wide = _candidates(ref.astype(np.int64) * (1 << 40), offset, 600.0, 8)  # keys beyond 63 bits with positions
    assert len(packed) == len(wide) > 0 and all(np.array_equal(a, b) for a, b in zip(packed, wide))
