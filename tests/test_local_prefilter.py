"""The bag-of-words pre-filter of the ``local`` index: shortlist, then an exact k-NN over the shortlist."""

from __future__ import annotations

import numpy as np
import pytest

import scanner.index.local_index as li
from scanner.index.local_index import LocalIndex, LocalIndexError, to_codes

DIM = 128
PER_REF = 16
REFS = 200


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = np.abs(rng.normal(size=(n, DIM))).astype(np.float32) ** 3  # peaky, like RootSIFT rows
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def extra(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"xy": rng.uniform(0, 300, (n, 2)), "size": np.tile([300, 300], (n, 1))}


@pytest.fixture
def small_vocab(monkeypatch):
    """A 256-word IVF counts as a vocabulary here (real indexes need the inverted multi-index's 65,536 words)."""
    monkeypatch.setattr(li, "PREFILTER_MIN_WORDS", 1)


@pytest.fixture(scope="module")
def built() -> tuple[bytes, np.ndarray]:
    """Trained once per module (k-means is the slow part); each test reads its own copy."""
    rng = np.random.default_rng(5)
    idx = LocalIndex(auto_train_rows=None)
    idx.train(unit_rows(rng, 6_000), expected_rows=4_096)  # IVF256: a 16-row reference spans few of its words
    rows = unit_rows(rng, REFS * PER_REF)
    ids = np.repeat(np.arange(REFS), PER_REF)
    idx.add(ids, rows, extra(len(ids), rng))
    return idx.to_bytes(), rows


@pytest.fixture
def index(built) -> tuple[LocalIndex, np.ndarray]:
    idx = LocalIndex.from_bytes(built[0])
    idx.prefilter_min_refs = 10
    return idx, built[1]


def test_a_shortlist_of_every_reference_gives_the_exhaustive_ivfpq_neighbours(index):
    idx, rows = index
    q = rows[:200] + 0.01
    idx.shortlist, idx.nprobe = 0, 1 << 20  # every list: the exhaustive asymmetric-distance search
    full = idx.search(q, 8)
    idx.shortlist = len(idx)
    short = idx._search_shortlisted(to_codes(q, DIM), 8, None)
    assert np.array_equal(full.ref_id, short.ref_id) and np.array_equal(full.keypoint, short.keypoint)
    assert np.allclose(full.distance, short.distance, atol=1e-5)
    assert np.allclose(full.kth_distance, short.kth_distance, atol=1e-5)


def test_the_copied_reference_is_shortlisted_first(index, small_vocab):
    idx, rows = index
    rng = np.random.default_rng(9)
    copy = rows[17 * PER_REF:18 * PER_REF][:12] + rng.normal(0, 0.002, (12, DIM)).astype(np.float32)
    clutter = unit_rows(rng, 20)  # the rest of the scene
    ranked = idx.shortlist_refs(np.concatenate([clutter, np.abs(copy)]), 5)
    assert ranked[0] == 17


def test_neighbours_come_from_the_group_shortlist_only(index, small_vocab):
    idx, rows = index
    idx.shortlist = 3
    assert idx.prefilters()
    q = np.concatenate([rows[3 * PER_REF:4 * PER_REF], rows[40 * PER_REF:41 * PER_REF]])
    groups = np.r_[np.zeros(PER_REF, bool), np.ones(PER_REF, bool)]
    nb = idx.search(q, 4, groups=groups)
    first, second = nb.query_row < PER_REF, nb.query_row >= PER_REF
    assert set(nb.ref_id[first]) <= set(idx.shortlist_refs(q[:PER_REF], 3).tolist())
    assert set(nb.ref_id[second]) <= set(idx.shortlist_refs(q[PER_REF:], 3).tolist())
    # each row finds itself: its reference was shortlisted for its group
    assert np.mean(nb.ref_id[nb.rank == 0] == np.r_[np.full(PER_REF, 3), np.full(PER_REF, 40)]) > 0.95
    with pytest.raises(LocalIndexError, match="groups"):
        idx.search(q, 4, groups=groups[:5])


def test_small_indexes_and_shortlist_zero_search_every_reference(index, small_vocab):
    idx, rows = index
    q = rows[:50]
    assert idx.shortlist == 0 and not idx.prefilters()  # off unless asked for (recall, see the benchmark)
    idx.shortlist, idx.prefilter_min_refs = 8, 1_000
    assert not idx.prefilters()  # 200 references: below the floor, the calibrated path
    idx.prefilter_min_refs = 10
    assert idx.prefilters()
    assert not LocalIndex().prefilters()  # flat mode has no vocabulary
    idx.prefilter_min_refs = 1_000
    a = idx.search(q, 8)
    idx.shortlist = 0
    b = idx.search(q, 8)
    assert np.array_equal(a.ref_id, b.ref_id) and np.array_equal(a.distance, b.distance)


def test_a_reference_added_or_removed_after_a_search_is_seen_by_the_next(index, small_vocab):
    idx, rows = index
    idx.shortlist = 4
    rng = np.random.default_rng(3)
    new = unit_rows(rng, PER_REF)
    assert 500 not in idx.shortlist_refs(new, 4).tolist()  # builds the pre-filter state
    idx.add(np.full(PER_REF, 500), new, extra(PER_REF, rng))
    assert idx.shortlist_refs(new, 4)[0] == 500
    nb = idx.search(new, 2)
    assert np.mean(nb.ref_id[nb.rank == 0] == 500) > 0.95
    idx.remove(np.array([500]))
    assert 500 not in idx.shortlist_refs(new, 4).tolist()
