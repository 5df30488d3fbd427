"""``image.local``'s ratio test over a search's neighbours, in array operations, against the plain loop
it replaced (the definition): the same matches, references in the same order, on random and real searches."""

from __future__ import annotations

import numpy as np
import pytest

from scanner.config import Settings
from scanner.detectors import local
from scanner.detectors.local import LocalDetector, _tentative
from scanner.index.local_index import Neighbours
from tests.test_local import QUAD, build, paste, work

pytestmark = pytest.mark.usefixtures("clean_env")  # fixture in conftest.py


def _tentative_loop(index, nb, mirrored_rows: np.ndarray) -> dict[bool, dict[int, tuple[list, list]]]:
    """``local._tentative`` one neighbour at a time, as it was first written: the definition."""
    out: dict[bool, dict[int, tuple[list, list]]] = {False: {}, True: {}}
    if len(nb.query_row) == 0:
        return out
    order = np.lexsort((nb.rank, nb.ref_id, nb.query_row))
    qr, rid, kp, dist = nb.query_row[order], nb.ref_id[order], nb.keypoint[order], nb.distance[order]
    starts = np.flatnonzero(np.r_[True, (qr[1:] != qr[:-1]) | (rid[1:] != rid[:-1])])
    ends = np.r_[starts[1:], len(qr)]
    xy_cache: dict[int, np.ndarray] = {}
    for a, b in zip(starts.tolist(), ends.tolist()):
        d1 = float(dist[a])
        if d1 > local.MAX_DISTANCE:
            continue
        ref = int(rid[a])
        second = float(nb.kth_distance[qr[a]])
        if b - a > 1:
            pts = xy_cache.get(ref)
            if pts is None:
                pts = xy_cache[ref] = index.keypoints(ref)
            p0 = pts[kp[a]]
            for j in range(a + 1, b):
                if float(np.hypot(*(pts[kp[j]] - p0))) > 8.0:
                    second = min(second, float(dist[j]))
                    break
        if d1 >= local.RATIO * second:
            continue
        m = bool(mirrored_rows[qr[a]])
        rows, kps = out[m].setdefault(ref, ([], []))
        rows.append(int(qr[a]))
        kps.append(int(kp[a]))
    return out


class _Points:
    """Keypoint positions per reference on a 5 px grid, so neighbours of one reference are often within
    the 8 px that makes a keypoint "the same place"."""

    def __init__(self, rng: np.random.Generator, refs: int, kps: int):
        self.xy = {r: (rng.integers(0, 40, (kps, 2)) * 5).astype(np.float32) for r in range(refs)}

    def keypoints(self, ref_id: int) -> np.ndarray:
        return self.xy[ref_id]


def _random_search(rng: np.random.Generator, rows: int, k: int, refs: int, kps: int) -> Neighbours:
    dist = np.sort(rng.uniform(0.2, 1.0, (rows, k)).astype(np.float32), axis=1)
    rid = rng.integers(0, refs, (rows, k))
    kp = rng.integers(0, kps, (rows, k))
    kth = np.where(rng.random(rows) < 0.1, np.inf, dist[:, -1]).astype(np.float32)  # some rows had < k
    qrow, rank = np.nonzero(np.ones((rows, k), bool))
    shuffle = rng.permutation(len(qrow))  # the function sorts for itself
    qrow, rank = qrow[shuffle], rank[shuffle]
    return Neighbours(qrow.astype(np.int64), rid[qrow, rank].astype(np.int64), kp[qrow, rank].astype(np.int64),
                      dist[qrow, rank], rank.astype(np.int32), kth)


def _as_lists(out: dict) -> dict:
    return {m: list(by_ref.items()) for m, by_ref in out.items()}  # order counts: candidates are ranked by it


@pytest.mark.parametrize("seed", range(6))
def test_the_same_matches_as_the_loop_on_random_searches(seed):
    rng = np.random.default_rng(seed)
    rows, refs, kps = int(rng.integers(1, 400)), int(rng.integers(1, 30)), int(rng.integers(1, 60))
    nb = _random_search(rng, rows, int(rng.integers(1, 10)), refs, kps)
    mirrored = rng.random(rows) < 0.5
    points = _Points(rng, refs, kps)
    expected = _tentative_loop(points, nb, mirrored)
    assert sum(len(v) for v in expected.values()), "the case must keep some matches"
    assert _as_lists(_tentative(points, nb, mirrored)) == _as_lists(expected)


def test_nothing_found_and_every_pair_too_far():
    rng = np.random.default_rng(9)
    points = _Points(rng, 3, 10)
    empty = Neighbours(*(np.zeros(0, np.int64),) * 3, np.zeros(0, np.float32), np.zeros(0, np.int32),
                       np.zeros(0, np.float32))
    assert _tentative(points, empty, np.zeros(0, bool)) == {False: {}, True: {}}
    nb = _random_search(rng, 50, 4, 3, 10)
    far = Neighbours(nb.query_row, nb.ref_id, nb.keypoint, nb.distance + np.float32(local.MAX_DISTANCE + 0.01),
                     nb.rank, nb.kth_distance)
    assert _tentative(points, far, np.zeros(50, bool)) == {False: {}, True: {}} == _tentative_loop(
        points, far, np.zeros(50, bool))


def test_the_same_matches_as_the_loop_on_a_real_search():
    det = LocalDetector(Settings(), text=False)
    refs = {i: work(i) for i in range(1, 6)}
    index = build(det, refs)
    (q,) = det.embed_queries([paste(refs[3], QUAD)])
    nb = index.search(q.vectors, det.search_k, groups=q.extra["mirrored"], positions=q.extra["xy"] / q.extra["size"])
    expected = _tentative_loop(index, nb, q.extra["mirrored"])
    assert len(expected[False].get(3, ([], []))[0]) >= det.min_tentative
    assert _as_lists(_tentative(index, nb, q.extra["mirrored"])) == _as_lists(expected)
