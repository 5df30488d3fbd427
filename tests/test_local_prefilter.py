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
    assert LocalIndex().shortlist == li.SHORTLIST  # on by default, but only where it applies:
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


def test_the_shortlisted_search_probes_the_lists_the_exhaustive_one_does(index):
    """Shortlisting every reference reproduces the exhaustive IVF-PQ search at the index's own ``nprobe``:
    the same lists probed, the same asymmetric distances (an exact k-NN over the shortlist's codes would
    also find rows in lists the exhaustive search never probes)."""
    idx, rows = index
    q = rows[::7][:150] + 0.02
    idx.shortlist, idx.nprobe = 0, 1
    full = idx.search(q, 8)
    idx.shortlist = len(idx)
    short = idx._search_shortlisted(to_codes(q, DIM), 8, None)
    assert np.array_equal(full.query_row, short.query_row) and np.array_equal(full.ref_id, short.ref_id)
    assert np.array_equal(full.keypoint, short.keypoint)
    assert np.allclose(full.distance, short.distance, atol=1e-5)


def test_a_shortlisted_reference_keeps_every_neighbour_the_exhaustive_search_gives_it(index, small_vocab):
    idx, rows = index
    rng = np.random.default_rng(4)
    q = np.abs(rows[30 * PER_REF:31 * PER_REF] + rng.normal(0, 0.01, (PER_REF, DIM))).astype(np.float32)
    idx.shortlist = 0
    full = idx.search(q, 6)
    idx.shortlist = 3
    assert idx.prefilters() and 30 in idx.shortlist_refs(q, 3).tolist()
    short = idx.search(q, 6)
    kept = {(int(r), int(k)): float(d) for r, k, d, i in zip(short.query_row, short.keypoint, short.distance,
                                                              short.ref_id) if i == 30}
    theirs = [(int(r), int(k), float(d)) for r, k, d, i in zip(full.query_row, full.keypoint, full.distance,
                                                               full.ref_id) if i == 30]
    assert theirs and all(abs(kept[(r, k)] - d) < 1e-5 for r, k, d in theirs)
    assert np.all(short.kth_distance >= full.kth_distance - 1e-6)  # fewer candidates: a looser ratio test


def test_a_copy_in_a_corner_of_a_busy_query_is_shortlisted_by_its_window(index, small_vocab, monkeypatch):
    """The whole image is dominated by chance overlaps of the clutter; the window around the copy is not."""
    monkeypatch.setattr(li, "WINDOW_MIN_ROWS", 8)
    idx, rows = index
    rng = np.random.default_rng(11)
    copy = np.abs(rows[17 * PER_REF:18 * PER_REF][:10] + rng.normal(0, 0.002, (10, DIM))).astype(np.float32)
    clutter = unit_rows(rng, 1500)
    q = np.concatenate([copy, clutter])
    pos = np.concatenate([rng.uniform(0.02, 0.3, (10, 2)), rng.uniform(0.0, 1.0, (1500, 2))])
    pos[10:][np.all(pos[10:] < 0.4, axis=1)] += 0.45  # the clutter stays out of the copy's corner
    assert idx.shortlist_refs(q, 1, positions=pos)[0] == 17
    assert 17 not in idx.shortlist_refs(q, 3).tolist()  # one window, the whole image: outvoted


def test_the_detector_finds_a_pasted_copy_through_the_shortlist_as_it_does_exhaustively(small_vocab):
    """Same best reference, at least the tentative matches (the shortlist's ratio test is never stricter),
    and a score close to the exhaustive search's, with 40 distractor references the shortlist leaves out."""
    import cv2
    from PIL import Image

    from scanner.config import Settings
    from scanner.detectors import create
    from scanner.types import Keypoints
    from scanner.testing.fixtures import artwork

    det = create("image.local", Settings())
    works = {11: artwork(1).crop((0, 0, 768, 440)), 12: artwork(2).crop((0, 0, 768, 440)),
             13: artwork(3).crop((0, 0, 768, 440))}
    embs = det.embed_references(list(works.values()))
    rng = np.random.default_rng(1)
    pool = np.concatenate([e.vectors for e in embs])
    n = 40 * 512
    filler = np.abs(pool[rng.integers(0, len(pool), n)] + rng.normal(0, 0.05, (n, DIM))).astype(np.float32)
    filler /= np.linalg.norm(filler, axis=1, keepdims=True)
    idx = LocalIndex(auto_train_rows=None)
    idx.train(filler, expected_rows=n)
    idx.add(np.repeat(np.arange(100, 140), 512), filler, {"xy": rng.uniform(0, 500, (n, 2)),
                                                          "size": np.tile([600, 500], (n, 1))})
    for ref_id, e in zip(works, embs):
        idx.add(np.full(len(e.vectors), ref_id, np.int64), e.vectors, e.extra)
    idx.prefilter_min_refs = 10

    quad = np.array([[300, 200], [760, 250], [730, 560], [320, 590]], np.float32)
    bg = rng.integers(0, 256, (900 // 8, 1200 // 8, 3), dtype=np.uint8)
    bg = np.asarray(Image.fromarray(bg).resize((1200, 900), Image.Resampling.BICUBIC))
    src = np.array([[0, 0], [768, 0], [768, 440], [0, 440]], np.float32)
    hm = cv2.getPerspectiveTransform(src, quad)
    warped = cv2.warpPerspective(np.asarray(works[12]), hm, (1200, 900))
    mask = cv2.warpPerspective(np.full((440, 768), 255, np.uint8), hm, (1200, 900)) > 127
    q = det.embed_queries([Image.fromarray(np.where(mask[..., None], warped, bg))])

    idx.shortlist = 0
    full = det.search(idx, q)[0]
    idx.shortlist = 4
    assert idx.prefilters()
    short = det.search(idx, q)[0]
    assert full and short and full[0].ref_id == short[0].ref_id == 12
    kp_full, kp_short = (next(e for e in h[0].evidence if isinstance(e, Keypoints)) for h in (full, short))
    assert kp_short.tentative >= kp_full.tentative
    assert short[0].score >= 0.9 * full[0].score


def test_concurrent_shortlisted_searches_give_the_serial_results(index, small_vocab):
    """Each thread fills its own restricted IVF-PQ (one shared one would mix the threads' shortlists)."""
    from concurrent.futures import ThreadPoolExecutor

    idx, rows = index
    idx.shortlist = 3
    queries = [rows[r * PER_REF:(r + 1) * PER_REF] + 0.01 for r in range(0, 160, 5)]
    serial = [idx.search(q, 4) for q in queries]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda q: idx.search(q, 4), queries * 3))
    for a, b in zip(serial * 3, threaded):
        assert np.array_equal(a.ref_id, b.ref_id) and np.array_equal(a.keypoint, b.keypoint)
