"""LandmarkIndex order: rows of a hash sorted by reference, so a search can read one reference's
rows of a crowded bucket (``ranges(hashes, ref)``) without reading the bucket."""

from __future__ import annotations

import numpy as np

from scanner.index.landmarks import LandmarkIndex


def _rows(rng: np.random.Generator, n: int, refs: int, hashes: int):
    ids = rng.integers(0, refs, n)
    h = rng.integers(0, hashes, n)
    extra = {"t": rng.integers(0, 10_000, n), "f": rng.integers(0, 4000, n), "dt": rng.integers(5, 90, n)}
    return ids, h, extra


def _as_set(m) -> list[tuple[int, ...]]:
    return sorted(zip(m.query.tolist(), m.ref.tolist(), m.t.tolist(), m.f.tolist(), m.dt.tolist()))


def test_ranges_narrowed_to_a_reference_are_exactly_its_rows():
    rng = np.random.default_rng(0)
    index = LandmarkIndex()
    for _ in range(3):  # several adds: one merge sorts them together
        ids, h, extra = _rows(rng, 5000, 10, 100)
        index.add(ids, h.reshape(-1, 1), extra)
    q = np.array([3, 3, 17, 99, 1000, -1, 42])
    ref = np.array([5, 6, 0, 9, 5, 5, 11])  # 11 holds nothing, 1000 / -1 are not stored hashes
    full = index.lookup(q)
    lo, hi = index.ranges(q, ref)
    m = index.gather(lo, hi)
    want = [r for r in _as_set(full) if r[1] == ref[r[0]]]
    assert _as_set(m) == want and len(want) > 50
    assert (hi - lo)[[4, 5, 6]].tolist() == [0, 0, 0]


def test_buckets_stay_in_reference_order_through_remove_merge_and_bytes():
    rng = np.random.default_rng(1)
    a, b = LandmarkIndex(), LandmarkIndex()
    ids, h, extra = _rows(rng, 4000, 20, 50)
    a.add(ids, h.reshape(-1, 1), extra)
    ids, h, extra = _rows(rng, 4000, 20, 50)
    b.add(ids + 100, h.reshape(-1, 1), extra)
    a.merge(b)
    a.remove(np.array([3, 104]))
    copy = LandmarkIndex.from_bytes(a.to_bytes())
    for index in (a, copy):
        index.lookup(np.array([0]))
        ref, off = index._cols["ref"], index._offsets.astype(np.int64)
        for hsh in range(50):
            assert np.all(np.diff(ref[off[hsh]:off[hsh + 1]]) >= 0)
    q = np.arange(50)
    assert _as_set(copy.lookup(q)) == _as_set(a.lookup(q))


def test_an_index_saved_in_hash_order_only_is_put_in_reference_order_when_read():
    rng = np.random.default_rng(2)
    index = LandmarkIndex()
    ids, h, extra = _rows(rng, 3000, 30, 40)
    index.add(ids, h.reshape(-1, 1), extra)
    index.lookup(np.array([0]))
    # shuffle the rows inside every bucket, as indexes written before this order were
    off = index._offsets.astype(np.int64)
    perm = np.concatenate([off[i] + rng.permutation(off[i + 1] - off[i]) for i in range(off.size - 1)])
    old = LandmarkIndex(1, index._offsets, {k: v[perm] for k, v in index._cols.items()})
    assert np.any(np.diff(old._cols["ref"][off[0]:off[1]]) < 0)
    back = LandmarkIndex.from_bytes(old.to_bytes())
    lo, hi = back.ranges(np.arange(40), np.full(40, 7))
    assert _as_set(back.gather(lo, hi)) == [r for r in _as_set(index.lookup(np.arange(40))) if r[1] == 7]
