"""audio.fingerprint match budget: flat query cost as the landmark index grows.

A probe returns every index row stored under its hash, so without a limit the rows a query
fetches grow with the catalog. The search spends at most ``MATCH_BUDGET_PER_PROBE`` rows per
probe, rarest hashes first; below the budget nothing changes.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av")

from scanner.detectors import fingerprint as fp  # noqa: E402
from scanner.detectors.fingerprint import FingerprintDetector, _within_budget  # noqa: E402
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
    rows, hashes = np.arange(6), np.array([10, 11, 12, 13, 14, 15])
    sizes = np.array([3, 0, 7, 1, 2, 5])
    r, h = _within_budget(rows, hashes, sizes, per_probe=3)  # 18 rows <= 3 x 6
    assert r.tolist() == rows.tolist() and h.tolist() == hashes.tolist()


def test_within_budget_spends_it_on_the_rarest_hashes_in_query_order():
    rows, hashes = np.array([0, 0, 1, 2, 3, 4]), np.array([10, 11, 12, 13, 14, 15])
    sizes = np.array([50, 1, 9, 2, 30, 3])
    r, h = _within_budget(rows, hashes, sizes, per_probe=3)  # budget 18: sizes 1, 2, 3, 9 fit (15)
    assert h.tolist() == [11, 12, 13, 15] and r.tolist() == [0, 1, 2, 4]


def test_search_fetches_a_bounded_number_of_rows_from_a_crowded_index(monkeypatch):
    monkeypatch.setattr(fp, "MATCH_BUDGET_PER_PROBE", 64)  # a budget this small crowd exceeds
    det = FingerprintDetector()
    song = synth_music(7, seconds=20.0, sr=SR)
    ref = det.embed_references([AudioClip(song, SR)])[0]
    query = det.embed_queries([AudioClip(song[3 * SR:13 * SR], SR)])[0]
    rng = np.random.default_rng(1)
    index = LandmarkIndex()
    index.add(np.full(ref.vectors.shape[0], 7), ref.vectors, {k: ref.extra[k] for k in ("t", "f", "dt")})
    # crowd every hash the query probes with unrelated references' rows, skewed as real landmark
    # hashes are (a few very common hashes, many rare ones): 0 to 5000 rows per hash
    probes = np.unique(fp._probes(query.extra["v"], det.p)[1])
    crowd = np.minimum(5000, rng.pareto(1.0, probes.size) * 40).astype(np.int64)
    _add(index, 100, np.repeat(probes, crowd), rng)
    fetched = []
    real_lookup = LandmarkIndex.lookup
    monkeypatch.setattr(LandmarkIndex, "lookup", lambda self, h: fetched.append(int(self.bucket_sizes(h).sum()))
                        or real_lookup(self, h))
    hits = det.search(index, [query])[0]
    n_probes = fp._probes(query.extra["v"], det.p)[1].size
    assert fetched[0] <= fp.MATCH_BUDGET_PER_PROBE * n_probes
    assert hits and hits[0].ref_id == 7  # the copy is still found among the crowd
    monkeypatch.setattr(fp, "MATCH_BUDGET_PER_PROBE", 1 << 30)  # no budget: every row is fetched
    det.search(index, [query])
    assert fetched[1] > 2 * fetched[0]
