"""Index of local keypoint descriptors for partial-copy search (family ``local``).

Every reference contributes many rows: one descriptor per keypoint. A row's FAISS id
packs the owner and the keypoint number (``ref_id << KP_BITS | keypoint``), so the
owner of a neighbour is a shift away and removing a reference is a range of ids.
Keypoint positions (needed to verify a match geometrically), a flag per keypoint that
says it lies on text (lettering must not verify a match on its own), each reference's
image size and its outline (the convex hull of the opaque region of an image with an alpha
channel, the image rectangle otherwise) live next to the FAISS index, keyed by reference id.

Two storage modes, picked from size:

* ``flat``: exact L2 search over 8-bit codes (``QT_8bit_direct``: a descriptor
  component ``v`` in [0, 1] is stored as ``round(v * code_scale)`` clipped to 255, the
  scale a parameter of the index recorded in its bytes; no training, so any two flat
  indexes with one scale are compatible). 128 bytes per keypoint; search
  cost grows linearly (~8 s per 2,000-row query at 1,000 references on 2 cores), so it
  is used only while the index is small (``AUTO_TRAIN_ROWS``, ~40 references).
* ``ivfpq``: an inverted file with product-quantised codes, ``PQ_BYTES`` bytes per
  keypoint, over a coarse quantiser picked from the expected size
  (``coarse_quantiser``: k-means lists up to 1M keypoints, an inverted multi-index
  beyond). Its codebook (coarse centroids + PQ tables) is learned from the index's own
  rows when it outgrows the flat mode, or from a sample given to ``train`` (the way to
  build a large index: train once, ``empty_like`` per shard, ``merge``). The codebook
  travels inside the index, its checksum is part of ``kind`` (so the manifest records
  it), and ``merge`` refuses shards with another codebook.

Serialised form (``to_bytes``): the ``local`` family of ``scanner.index.container``: the
header holds mode, codebook, code scale and sizes, named sections the reference ids, sizes,
keypoint counts, keypoint positions (uint16 fractions of the image size), keypoint flags,
outline vertex counts and vertices (uint16 fractions) and the FAISS index. No pickle.

Pre-filter (ivfpq with a fine codebook, more than ``PREFILTER_MIN_REFS`` references; on by default): a
query's rows are not matched against every list they probe. The coarse lists are a visual vocabulary
(65,536 words with the inverted multi-index); each reference is the set of words its keypoints fall in,
each query row votes for its nearest word, and references are ranked by binary tf-idf cosine (idf-squared
weights over the shared words) against windows of the query (the whole image and a grid of ``WINDOWS``,
given the rows' positions), each window's cosines z-scored over the references, a reference keeping its
best window. The ``shortlist`` best references of each query group (the detector passes the
orientation: a mirrored copy shortlists on its mirrored rows) then have their codes put in an empty
IVF-PQ with the index's codebook, searched with the same ``nprobe``: the same lists and asymmetric
distances as the exhaustive scan, only over those references, so matching and verification downstream
are unchanged (the ratio test's k-th neighbour now comes from the shortlist, so it is never stricter).
Why windows: the recall the first version lost (whole-image tf-idf, 3 words per row, 32 references)
was shortlist misses, not the ratio test: every copy it lost had its reference outside the shortlist,
and every shortlisted copy scored at least its exhaustive inliers; the whole image of a busy scene
outvotes a copy filling a fifth of it, the window around the copy does not. The state it needs (words
per reference, codes per reference) is derived from the inverted lists on the first search after a
change, never serialised: ~42 bytes per keypoint in memory beside the FAISS lists (~2 GB at 100k
references), ~45 s CPU to build at 100k. Figures: ``benchmarks/partial_copy.py --suite scale``.
Unreadable bytes raise ``IndexCorruptError``; earlier formats (``SCANLOC1``) are refused
with a rebuild hint. Searching never changes the bytes (``nprobe`` is a search parameter).
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass, field

import faiss
import numpy as np
import scipy.sparse

from scanner.errors import IndexMismatchError
from scanner.index import container
from scanner.index.base import VectorIndex
from scanner.types import Metric

KP_BITS = 16  # up to 65 536 keypoints per reference
KP_MASK = (1 << KP_BITS) - 1
MAX_REF_ID = (1 << (63 - KP_BITS)) - 1
CODE_SCALE = 512.0  # default descriptor component (unit-norm, non-negative) -> 8-bit code units
AUTO_TRAIN_ROWS = 20_000  # flat -> ivfpq once the index holds this many keypoints (~40 references)
PQ_BYTES = 32  # bytes per keypoint in ivfpq mode (4 dimensions per sub-quantiser)
DEFAULT_NPROBE = 16
SHORTLIST = 128  # references per query group the pre-filter keeps (at 100k refs 32 cost the same and lost a copy)
PREFILTER_MIN_REFS = 2_000  # smaller indexes: every reference is searched (the path the calibration measured)
PREFILTER_MIN_WORDS = 16_384  # coarser codebooks make too weak a vocabulary (an IVF2048 word holds ~1/4 of a ref)
PREFILTER_ASSIGN = 1  # words each query row votes for (3 ranked the copies' references lower: more chance overlap)
WINDOWS = (1.0, 0.7, 0.5, 0.35)  # pre-filter windows: side as a share of the query image, stride half the side
WINDOW_MIN_ROWS = 60  # a smaller window's vote is too noisy to compete (the whole image always votes)
FAMILY = "local"
FORMAT = 3  # 1: before text flags and outlines; 2: SCANLOC1 bytes; 3: the container
FLAG_TEXT = 1  # keypoint flag bit: the keypoint lies on text
MAX_OUTLINE = 64  # vertices kept of a reference's outline


class LocalIndexError(ValueError):
    """An operation the index cannot do (overlapping shards, bad ids, too little to train on)."""


class CodebookMismatchError(LocalIndexError, IndexMismatchError):
    """Two ivfpq indexes with different codebooks cannot be merged (a user-facing index mismatch)."""


def to_codes(vectors: np.ndarray, dim: int, scale: float = CODE_SCALE) -> np.ndarray:
    """Descriptor rows (unit L2, components in [0, 1]) to float32 in code units (0..255)."""
    x = np.asarray(vectors, dtype=np.float32).reshape(-1, dim)
    return np.ascontiguousarray(np.clip(np.rint(x * scale), 0, 255), dtype=np.float32)


def code_distance_to_l2(d2: np.ndarray, scale: float = CODE_SCALE) -> np.ndarray:
    """Squared distances in code units back to L2 distances between descriptors."""
    return np.sqrt(np.maximum(d2, 0.0)) / scale


def coarse_quantiser(rows: int) -> tuple[str, int]:
    """(FAISS coarse quantiser, nprobe) for an index expected to hold ``rows`` keypoints.

    Up to 1M rows a k-means inverted file with ~4*sqrt(rows) lists (a power of two in
    [32, 2048]); beyond, an inverted multi-index (two 2^b-word codebooks over the
    two halves of the descriptor, 2^(2b) lists), which is what keeps training and
    assigning tens of millions of descriptor rows cheap: 2^8 x 2^8 = 65,536 lists up to 64M
    rows, 2^10 x 2^10 beyond.
    """
    if rows <= 1_000_000:
        nlist = int(min(2048, max(32, 2 ** round(math.log2(max(1.0, 4 * math.sqrt(rows)))))))
        return f"IVF{nlist}", 16
    if rows <= 64_000_000:
        return "IMI2x8", 32
    return "IMI2x10", 64


def _training_need(coarse: str) -> tuple[int, int]:
    """(coarse words, rows needed to train) for a ``coarse_quantiser`` name: PQ tables have 256
    words and every k-means wants a few points per word."""
    words = 1 << int(coarse[5:]) if coarse.startswith("IMI2x") else int(coarse[3:])
    return words, max(256 * 20, words * 4)


@dataclass(frozen=True)
class Neighbours:
    """Search output flattened to one entry per (query row, neighbour)."""

    query_row: np.ndarray  # int64, row of the query matrix
    ref_id: np.ndarray  # int64
    keypoint: np.ndarray  # int64, keypoint number within the reference
    distance: np.ndarray  # float32, L2 distance between descriptors (approximate in ivfpq mode)
    rank: np.ndarray  # int32, 0 = nearest
    kth_distance: np.ndarray  # float32 per query row: distance of its k-th neighbour (inf when fewer)


class LocalIndex(VectorIndex):
    """Keypoint descriptors of many references with their positions (see module docstring)."""

    family = FAMILY
    metric = Metric.COUNT  # the detector's score is an inlier count

    def __init__(self, dim: int = 128, auto_train_rows: int | None = AUTO_TRAIN_ROWS, nprobe: int = DEFAULT_NPROBE,
                 expected_rows: int = 0, code_scale: float = CODE_SCALE):
        self.dim = dim
        self.auto_train_rows = auto_train_rows
        self.expected_rows = int(expected_rows)  # size hint: the automatic training sizes its lists for this
        self.nprobe = nprobe  # lists probed per search (a search parameter: never written into the FAISS index)
        self.code_scale = float(code_scale)  # descriptor component -> 8-bit code units
        self._faiss: faiss.Index = self._new_flat(dim)
        self._codebook: str | None = None  # sha256 of the trained empty ivfpq index, None in flat mode
        self.trained_rows = 0  # rows the codebook was learned from
        self._xy: dict[int, np.ndarray] = {}  # ref id -> (n, 2) uint16 position as a fraction of the size
        self._flags: dict[int, np.ndarray] = {}  # ref id -> (n,) uint8 keypoint flags (FLAG_TEXT)
        self._outline: dict[int, np.ndarray] = {}  # ref id -> (k, 2) uint16 outline vertices as fractions
        self._size: dict[int, tuple[int, int]] = {}  # ref id -> (width, height) of the image embedded
        # pre-filter: references kept per query group (0: off; a search parameter). On by default: it applies only
        # past ``prefilter_min_refs`` references with a fine vocabulary (``prefilters``), where it keeps the recall
        # of the exhaustive search at a fraction of its cost (partial_copy.py --suite scale)
        self.shortlist = SHORTLIST
        self.prefilter_min_refs = PREFILTER_MIN_REFS
        self._pre: _Prefilter | None = None  # derived from the inverted lists; None after any change

    # ------------------------------------------------------------------ description
    @staticmethod
    def _new_flat(dim: int) -> faiss.Index:
        sq = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit_direct, faiss.METRIC_L2)
        return faiss.IndexIDMap2(sq)

    @property
    def mode(self) -> str:
        return "flat" if self._codebook is None else "ivfpq"

    @property
    def codebook(self) -> str | None:
        """Checksum of the learned codebook (None in flat mode)."""
        return self._codebook

    @property
    def kind(self) -> str:  # recorded in the manifest as index_type
        if self._codebook is None:
            return "local-keypoints:flat-sq8"
        ivf = faiss.extract_index_ivf(self._faiss)
        pq = faiss.downcast_index(self._faiss).pq
        coarse = "imi" if isinstance(faiss.downcast_index(ivf.quantizer), faiss.MultiIndexQuantizer) else "ivf"
        return f"local-keypoints:{coarse}{ivf.nlist}-pq{pq.M}:codebook={self._codebook[:16]}"

    @property
    def rows(self) -> int:
        """Keypoints held (all references)."""
        return int(self._faiss.ntotal)

    def ids(self) -> np.ndarray:
        return np.array(sorted(self._size), dtype=np.int64)

    def __len__(self) -> int:
        return len(self._size)

    def keypoints(self, ref_id: int) -> np.ndarray:
        """(n, 2) float32 keypoint positions of ``ref_id`` in its image's pixels."""
        w, h = self._size[ref_id]
        frac = self._xy[ref_id].astype(np.float32) / 65535.0
        return frac * np.array([w, h], np.float32)

    def size(self, ref_id: int) -> tuple[int, int]:
        """(width, height) of the reference image the keypoints were found in."""
        return self._size[ref_id]

    def on_text(self, ref_id: int) -> np.ndarray:
        """(n,) bool: which of ``ref_id``'s keypoints lie on text."""
        return (self._flags[ref_id] & FLAG_TEXT).astype(bool)

    def outline(self, ref_id: int) -> np.ndarray:
        """(k, 2) float64 convex outline of the reference in its image's pixels (the opaque region's
        hull for an image with alpha, the image rectangle otherwise)."""
        w, h = self._size[ref_id]
        return self._outline[ref_id].astype(np.float64) / 65535.0 * np.array([w, h], np.float64)

    def nbytes(self) -> int:
        """Bytes of the serialised index."""
        return len(self.to_bytes())

    # ------------------------------------------------------------------ changes
    def add(self, ids: np.ndarray, vectors: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> None:
        """Add every keypoint of one or more references.

        ``extra["xy"]`` (n, 2) gives each row's position in its reference image and
        ``extra["size"]`` (n, 2) that image's (width, height); rows of one reference
        must be contiguous and a reference is added once (remove it first to replace).
        Optional: ``extra["text"]`` (n,) bool, the keypoint lies on text (default False), and
        ``extra["outline"]`` (n, 2): the reference's outline vertices in its first rows, NaN
        after them (per-row arrays are what the API hands over; default: the image rectangle).
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if extra is None or "xy" not in extra or "size" not in extra:
            raise LocalIndexError("local keypoint rows need extra['xy'] and extra['size']")
        xy = np.asarray(extra["xy"], dtype=np.float64).reshape(-1, 2)
        size = np.asarray(extra["size"], dtype=np.int64).reshape(-1, 2)
        text = np.asarray(extra.get("text", np.zeros(len(ids), bool)), dtype=bool).reshape(-1)
        outline = np.asarray(extra.get("outline", np.full((len(ids), 2), np.nan)), dtype=np.float64).reshape(-1, 2)
        if not (len(ids) == len(vectors) == len(xy) == len(size) == len(text) == len(outline)):
            raise LocalIndexError("ids, vectors, xy, size, text and outline must have one row per keypoint")
        if len(ids) == 0:
            return
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        owners = ids[starts]
        if len(np.unique(owners)) != len(owners):
            raise LocalIndexError("rows of one reference must be contiguous")
        bounds = np.r_[starts, len(ids)]
        row_ids = np.empty(len(ids), dtype=np.int64)
        for owner, a, b in zip(owners.tolist(), bounds[:-1], bounds[1:]):
            if owner < 0 or owner > MAX_REF_ID:
                raise LocalIndexError(f"reference id {owner} out of range 0..{MAX_REF_ID}")
            if owner in self._size:
                raise LocalIndexError(f"reference {owner} is already in the index; remove it first")
            if b - a > KP_MASK + 1:
                raise LocalIndexError(f"reference {owner} has {b - a} keypoints (at most {KP_MASK + 1})")
            if int(np.all(np.isfinite(outline[a:b]), axis=1).sum()) > MAX_OUTLINE:
                raise LocalIndexError(f"reference {owner} has an outline of more than {MAX_OUTLINE} vertices")
        for owner, a, b in zip(owners.tolist(), bounds[:-1], bounds[1:]):
            w, h = (int(v) for v in size[a])
            if w <= 0 or h <= 0:
                raise LocalIndexError(f"reference {owner} has no image size")
            frac = xy[a:b] / np.array([w, h], np.float64)
            self._xy[owner] = np.clip(np.rint(frac * 65535.0), 0, 65535).astype(np.uint16)
            self._flags[owner] = np.where(text[a:b], FLAG_TEXT, 0).astype(np.uint8)
            self._outline[owner] = _outline_codes(outline[a:b], w, h)
            self._size[owner] = (w, h)
            row_ids[a:b] = (owner << KP_BITS) | np.arange(b - a, dtype=np.int64)
        self._faiss.add_with_ids(to_codes(vectors, self.dim, self.code_scale), row_ids)
        self._pre = None
        self._maybe_train()

    def _maybe_train(self) -> None:
        """Flat -> ivfpq once the index holds ``auto_train_rows`` rows, lists sized for the expected total."""
        if self._codebook is None and self.auto_train_rows and self.rows >= self.auto_train_rows:
            expected = max(self.rows, self.expected_rows)
            if self.rows >= _training_need(coarse_quantiser(expected)[0])[1]:
                self.train(expected_rows=expected)

    def remove(self, ids: np.ndarray) -> int:
        """Remove every keypoint of these references; returns how many rows went."""
        gone = [int(i) for i in np.asarray(ids, dtype=np.int64).reshape(-1) if int(i) in self._size]
        if not gone:
            return 0
        row_ids = np.concatenate([(i << KP_BITS) | np.arange(len(self._xy[i]), dtype=np.int64) for i in gone])
        removed = int(self._faiss.remove_ids(faiss.IDSelectorBatch(row_ids)))
        for i in gone:
            del self._xy[i], self._size[i], self._flags[i], self._outline[i]
        self._pre = None
        return removed

    # ------------------------------------------------------------------ codebook
    def _all_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(row ids, codes as float32) of every row of a flat index (exact: the codes are the data)."""
        if self._codebook is not None:
            raise LocalIndexError("an ivfpq index holds lossy codes only; its rows cannot be re-encoded")
        sq = faiss.downcast_index(self._faiss.index)
        codes = faiss.vector_to_array(sq.codes).reshape(-1, self.dim).astype(np.float32)
        return faiss.vector_to_array(self._faiss.id_map).astype(np.int64), codes

    def train(self, sample: np.ndarray | None = None, expected_rows: int | None = None, pq_bytes: int = PQ_BYTES,
              seed: int = 1234) -> None:
        """Switch to ivfpq: learn a codebook from ``sample`` (descriptor rows) or from the rows held.

        ``expected_rows`` (default: the larger of the sample and the rows held) picks the
        coarse quantiser (``coarse_quantiser``). Existing rows are re-encoded with the new
        codebook. Training an index that is already ivfpq is refused (its rows are no
        longer exact): rebuild it, training on a sample first.
        """
        if self._codebook is not None:
            raise LocalIndexError("index already has a codebook; rebuild it to learn a new one")
        row_ids, codes = self._all_codes()
        train = codes if sample is None else to_codes(sample, self.dim, self.code_scale)
        coarse, nprobe = coarse_quantiser(expected_rows or max(len(train), len(codes)))
        words, need = _training_need(coarse)
        if len(train) < need:
            raise LocalIndexError(f"training {coarse} needs at least {need} descriptors (have {len(train)})")
        rng = np.random.default_rng(seed)
        cap = max(64 * 256, 32 * words)
        if len(train) > cap:
            train = train[np.sort(rng.choice(len(train), cap, replace=False))]
        index = faiss.index_factory(self.dim, f"{coarse},PQ{pq_bytes}", faiss.METRIC_L2)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.seed, ivf.cp.niter, ivf.cp.min_points_per_centroid = seed, 10, 1
        ivf.cp.max_points_per_centroid = 1 << 30
        ivfpq = faiss.downcast_index(index)
        ivfpq.do_polysemous_training = False  # the factory's default; slow and unused (no Hamming filtering)
        ivfpq.pq.cp.seed, ivfpq.pq.cp.niter = seed, 10
        index.train(np.ascontiguousarray(train, dtype=np.float32))
        self._faiss = index
        self.nprobe = nprobe
        self._codebook = hashlib.sha256(faiss.serialize_index(index).tobytes()).hexdigest()
        self.trained_rows = int(len(train))
        self._pre = None
        if len(codes):
            self._faiss.add_with_ids(codes, row_ids)

    def empty_like(self) -> "LocalIndex":
        """An empty index with this one's mode and codebook (for building shards to merge)."""
        out = LocalIndex(self.dim, self.auto_train_rows, self.nprobe, self.expected_rows, self.code_scale)
        if self._codebook is not None:
            out._faiss = faiss.clone_index(self._faiss)
            out._faiss.reset()
            out._codebook = self._codebook
            out.trained_rows = self.trained_rows
        return out

    def merge(self, other: "LocalIndex") -> None:
        """Move ``other``'s references into this index (shards must hold disjoint references).

        Two ivfpq indexes must share a codebook; a flat index merges into anything
        (its rows are exact and get encoded); an ivfpq index merges into a flat one by
        adopting its codebook.
        """
        if other.dim != self.dim:
            raise LocalIndexError(f"cannot merge a {other.dim}-d index into a {self.dim}-d one")
        if other.code_scale != self.code_scale:
            raise LocalIndexError(f"cannot merge an index with code scale {other.code_scale} into one with "
                                  f"{self.code_scale}")
        overlap = set(self._size) & set(other._size)
        if overlap:
            raise LocalIndexError(f"shards overlap on {len(overlap)} references (e.g. {min(overlap)})")
        if self._codebook is not None and other._codebook is not None and self._codebook != other._codebook:
            raise CodebookMismatchError(
                f"cannot merge local keypoint indexes with different codebooks ({self._codebook[:16]} vs "
                f"{other._codebook[:16]}): build every part from one trained empty index (LocalIndex.empty_like), "
                "or keep the parts flat (auto_train_rows=None) and let the merged index train once"
            )
        if self._codebook is None and other._codebook is not None:
            row_ids, codes = self._all_codes()
            self._faiss = faiss.clone_index(other._faiss)
            self._faiss.reset()
            self._codebook = other._codebook
            self.nprobe, self.trained_rows = other.nprobe, other.trained_rows
            if len(codes):
                self._faiss.add_with_ids(codes, row_ids)
        if other.rows == 0:
            pass
        elif other._codebook is None:
            row_ids, codes = other._all_codes()
            self._faiss.add_with_ids(codes, row_ids)
        else:
            self._faiss.merge_from(faiss.clone_index(other._faiss), 0)
        self._xy.update(other._xy)
        self._flags.update(other._flags)
        self._outline.update(other._outline)
        self._size.update(other._size)
        self._pre = None
        self._maybe_train()

    # ------------------------------------------------------------------ search
    def prefilters(self) -> bool:
        """Whether ``search`` shortlists references first (see the module docstring)."""
        if not self.shortlist or self._codebook is None or len(self) <= max(self.prefilter_min_refs, self.shortlist):
            return False
        return faiss.extract_index_ivf(self._faiss).nlist >= PREFILTER_MIN_WORDS

    def search(self, vectors: np.ndarray, k: int, groups: np.ndarray | None = None,
               positions: np.ndarray | None = None) -> Neighbours:
        """The ``k`` nearest keypoint rows of every query row.

        With the pre-filter on (``prefilters``), among the references shortlisted for the row's
        group only: ``groups`` (one value per row, e.g. the mirrored flag) says which rows are
        one query image for the shortlist; all rows are one group when it is None. ``positions``
        ((n, 2), each row's keypoint as a fraction of the query image's width and height) lets
        windows of the image vote on their own (a copy filling a corner of a busy scene); without
        it the whole image is one window.
        """
        q = to_codes(vectors, self.dim, self.code_scale)
        n = len(q)
        if n == 0 or self.rows == 0:
            e = np.zeros(0, np.int64)
            return Neighbours(e, e, e, np.zeros(0, np.float32), np.zeros(0, np.int32), np.full(n, np.inf, np.float32))
        k = max(1, min(k, self.rows))
        if self.prefilters():
            return self._search_shortlisted(q, k, groups, positions)
        if self._codebook is not None:  # nprobe as a search parameter: the index (and its bytes) stay as they are
            params = faiss.SearchParametersIVF()
            params.nprobe = int(self.nprobe)
            d2, rid = self._faiss.search(q, k, params=params)
        else:
            d2, rid = self._faiss.search(q, k)
        valid = rid >= 0
        dist = code_distance_to_l2(d2, self.code_scale).astype(np.float32)
        kth = np.where(valid[:, -1], dist[:, -1], np.inf).astype(np.float32)
        qrow, rank = np.nonzero(valid)
        ids = rid[qrow, rank]
        return Neighbours(qrow.astype(np.int64), ids >> KP_BITS, ids & KP_MASK, dist[qrow, rank],
                          rank.astype(np.int32), kth)

    def shortlist_refs(self, vectors: np.ndarray, n: int | None = None,
                       positions: np.ndarray | None = None) -> np.ndarray:
        """Reference ids of the ``n`` (default ``shortlist``) best tf-idf matches of these rows, best first
        (``positions`` as in ``search``)."""
        pre = self._prefilter()
        n = n or self.shortlist or SHORTLIST
        return pre.refs[pre.rank(self._faiss, to_codes(vectors, self.dim, self.code_scale), n, positions)]

    def _prefilter(self) -> "_Prefilter":
        if self._pre is None:
            self._pre = _Prefilter.build(self._faiss, np.array(sorted(self._size), dtype=np.int64))
        return self._pre

    def _search_shortlisted(self, q: np.ndarray, k: int, groups: np.ndarray | None,
                            positions: np.ndarray | None = None) -> Neighbours:
        """Each group's rows searched as the exhaustive path would, over its shortlisted references only.

        The shortlist's codes go into an empty IVF-PQ with this index's codebook (``_Prefilter.restricted``)
        that is searched with the same ``nprobe``: the same lists probed and the same asymmetric distances,
        so a shortlisted reference gets the neighbours the exhaustive search gives it, at the cost of
        scanning ``shortlist`` references instead of the catalog.
        """
        pre = self._prefilter()
        groups = np.zeros(len(q), np.int64) if groups is None else np.asarray(groups).reshape(-1)
        if len(groups) != len(q):
            raise LocalIndexError(f"groups has {len(groups)} values for {len(q)} query rows")
        if positions is not None:
            positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
            if len(positions) != len(q):
                raise LocalIndexError(f"positions has {len(positions)} rows for {len(q)} query rows")
        d2 = np.full((len(q), k), np.inf, np.float32)
        rid = np.full((len(q), k), -1, np.int64)
        params = faiss.SearchParametersIVF()
        params.nprobe = int(self.nprobe)
        mini = pre.restricted(self._faiss)
        for g in np.unique(groups):
            rows = np.flatnonzero(groups == g)
            top = np.sort(pre.rank(self._faiss, q[rows], self.shortlist,
                                   None if positions is None else positions[rows]))
            parts = [np.arange(pre.row_ptr[p], pre.row_ptr[p + 1]) for p in top.tolist()]
            mini.reset()
            mini.add_sa_codes(pre.codes[np.concatenate(parts)], np.concatenate([pre.ids_of(p) for p in top.tolist()]))
            dist, ids = mini.search(np.ascontiguousarray(q[rows]), k, params=params)
            d2[rows], rid[rows] = dist, ids
        mini.reset()
        valid = rid >= 0
        dist = code_distance_to_l2(np.where(valid, d2, 0), self.code_scale).astype(np.float32)
        kth = np.where(valid[:, -1], dist[:, -1], np.inf).astype(np.float32)
        qrow, rank = np.nonzero(valid)
        ids = rid[qrow, rank]
        return Neighbours(qrow.astype(np.int64), ids >> KP_BITS, ids & KP_MASK, dist[qrow, rank],
                          rank.astype(np.int32), kth)

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        refs = np.array(sorted(self._size), dtype=np.int64)
        order = refs.tolist()

        def joined(parts: dict, empty: np.ndarray, dtype: str) -> bytes:
            return (np.concatenate([parts[r] for r in order]) if order else empty).astype(dtype).tobytes()

        counts = np.array([len(self._xy[r]) for r in order], dtype="<i8")
        n_outline = np.array([len(self._outline[r]) for r in order], dtype="<i8")
        meta = {
            "dim": self.dim, "kp_bits": KP_BITS, "mode": self.mode, "codebook": self._codebook,
            "refs": int(len(refs)), "rows": int(counts.sum()), "auto_train_rows": self.auto_train_rows,
            "nprobe": self.nprobe, "trained_rows": self.trained_rows, "expected_rows": self.expected_rows,
            "code_scale": self.code_scale,
        }
        return container.pack(FAMILY, FORMAT, meta, {
            "refs": refs.astype("<i8").tobytes(),
            "sizes": np.array([self._size[r] for r in order], dtype="<i4").reshape(-1, 2).tobytes(),
            "counts": counts.tobytes(),
            "xy": joined(self._xy, np.zeros((0, 2), np.uint16), "<u2"),
            "flags": joined(self._flags, np.zeros(0, np.uint8), "u1"),
            "outline_counts": n_outline.tobytes(),
            "outline": joined(self._outline, np.zeros((0, 2), np.uint16), "<u2"),
            "faiss": faiss.serialize_index(self._faiss).tobytes(),
        })

    @classmethod
    def from_bytes(cls, data: bytes, dim: int | None = None) -> "LocalIndex":
        """Read ``to_bytes`` output: ``IndexCorruptError`` for unreadable bytes, ``IndexMismatchError`` for
        another dimension or an older format (rebuild)."""
        box = container.unpack(data, FAMILY, FORMAT)
        if dim is not None and int(box.get("dim")) != dim:
            raise IndexMismatchError(f"local index has dimension {box.get('dim')}, expected {dim}; "
                                     f"{container.REBUILD}")
        return container.parse("local keypoint index", lambda: cls._read(box))

    @classmethod
    def _read(cls, box: container.Container) -> "LocalIndex":
        h = box.header
        if int(h["kp_bits"]) != KP_BITS:
            raise ValueError(f"keypoint bits {h['kp_bits']} (this version uses {KP_BITS})")
        n_refs, n_rows = int(h["refs"]), int(h["rows"])
        refs = box.array("refs", "<i8", (n_refs,))
        sizes = box.array("sizes", "<i4", (n_refs, 2))
        counts = box.array("counts", "<i8", (n_refs,))
        xy = box.array("xy", "<u2", (n_rows, 2))
        flags = box.array("flags", "u1", (n_rows,))
        n_outline = box.array("outline_counts", "<i8", (n_refs,))
        outline = box.array("outline", "<u2", (int(n_outline.sum()), 2))
        raw = np.frombuffer(bytes(box.section("faiss")), dtype=np.uint8)
        out = cls(int(h["dim"]), h.get("auto_train_rows"), int(h["nprobe"]), int(h["expected_rows"]),
                  float(h["code_scale"]))
        out._faiss = faiss.deserialize_index(raw)
        out._codebook = h["codebook"]
        out.trained_rows = int(h["trained_rows"])
        if out._faiss.ntotal != n_rows or counts.sum() != n_rows or np.any(counts < 0) or np.any(n_outline < 0):
            raise ValueError("row counts disagree")
        if (out._codebook is None) != (h["mode"] == "flat") or out._faiss.d != out.dim:
            raise ValueError("mode or dimension disagrees with the FAISS section")
        start = ostart = 0
        for r, (w, ht), c, k in zip(refs.tolist(), sizes.tolist(), counts.tolist(), n_outline.tolist()):
            out._xy[r] = xy[start:start + c].copy()
            out._flags[r] = flags[start:start + c].copy()
            out._outline[r] = outline[ostart:ostart + k].copy() if k else _RECT.copy()
            out._size[r] = (int(w), int(ht))
            start += c
            ostart += k
        return out


_RECT = np.array([[0, 0], [65535, 0], [65535, 65535], [0, 65535]], np.uint16)


def _outline_codes(rows: np.ndarray, w: int, h: int) -> np.ndarray:
    """Outline vertices (the non-NaN leading rows, image pixels) as uint16 fractions; the rectangle if none."""
    pts = rows[np.all(np.isfinite(rows), axis=1)]
    if len(pts) < 3:
        return _RECT.copy()
    frac = pts / np.array([w, h], np.float64)
    return np.clip(np.rint(frac * 65535.0), 0, 65535).astype(np.uint16)



@dataclass
class _Prefilter:
    """Bag-of-words view of an ivfpq index: per coarse word the references holding it, per reference its codes.

    ``refs``: reference ids, sorted; ``row_ptr``/``codes``: each reference's rows (CSR over ``refs``, in
    keypoint order) as standalone codes (``sa_encode`` layout: list number, then the PQ code); ``row_ids``
    their FAISS ids only when a reference's keypoints are not simply 0..n-1 (None: implied, 8 bytes a row saved);
    ``matrix``: the words x references incidence (CSR: per word the positions, into ``refs``, of the
    references holding it); ``idf`` per word; ``norm`` per reference (of its binary idf-weighted word vector);
    ``local.mini`` (one per thread: searches may run concurrently) an empty IVF-PQ with the index's codebook
    that the shortlisted search fills per query group.
    """

    refs: np.ndarray
    row_ptr: np.ndarray
    row_ids: np.ndarray | None
    codes: np.ndarray
    matrix: scipy.sparse.csr_matrix
    idf: np.ndarray
    norm: np.ndarray
    local: threading.local = field(default_factory=threading.local)

    @classmethod
    def build(cls, index: faiss.Index, refs: np.ndarray) -> "_Prefilter":
        ivf = faiss.extract_index_ivf(index)
        inv = ivf.invlists
        nlist, cs, ccs = ivf.nlist, inv.code_size, ivf.coarse_code_size()
        ids_parts, code_parts, word_lens, word_parts = [], [], np.zeros(nlist, np.int64), []
        for lst in range(nlist):
            n = inv.list_size(lst)
            if n == 0:
                continue
            ids = faiss.rev_swig_ptr(inv.get_ids(lst), n).copy()
            codes = np.empty((n, ccs + cs), np.uint8)
            codes[:, :ccs] = np.frombuffer(int(lst).to_bytes(8, "little")[:ccs], np.uint8)
            codes[:, ccs:] = faiss.rev_swig_ptr(inv.get_codes(lst), n * cs).reshape(n, cs)
            ids_parts.append(ids)
            code_parts.append(codes)
            owners = np.unique(ids >> KP_BITS)
            word_lens[lst] = len(owners)
            word_parts.append(owners)
        row_ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, np.int64)
        codes = np.concatenate(code_parts) if code_parts else np.zeros((0, ccs + cs), np.uint8)
        del ids_parts, code_parts
        order = np.argsort(row_ids, kind="stable")
        row_ids, codes = row_ids[order], codes[order]
        del order
        row_ptr = np.searchsorted(row_ids >> KP_BITS, np.r_[refs, refs[-1] + 1 if len(refs) else 0]).astype(np.int64)
        counts = np.diff(row_ptr)
        if np.array_equal(row_ids & KP_MASK, np.arange(len(row_ids)) - np.repeat(row_ptr[:-1], counts)):
            row_ids = None  # every reference holds keypoints 0..n-1: ids follow from the CSR
        word_refs = (np.searchsorted(refs, np.concatenate(word_parts)) if word_parts
                     else np.zeros(0, np.int64)).astype(np.int32)
        # one index dtype for indptr and indices, or scipy would copy word_refs (4-8 bytes a row) to match
        ptr_type = np.int32 if len(word_refs) < np.iinfo(np.int32).max else np.int64
        word_refs = word_refs.astype(ptr_type, copy=False)
        word_ptr = np.r_[0, np.cumsum(word_lens)].astype(ptr_type)
        idf = np.log(max(1, len(refs)) / np.maximum(word_lens, 1)).astype(np.float32)
        w2 = np.repeat(idf.astype(np.float64) ** 2, word_lens)
        norm = np.sqrt(np.bincount(word_refs, weights=w2, minlength=len(refs))).astype(np.float32)
        matrix = scipy.sparse.csr_matrix((np.ones(len(word_refs), np.float32), word_refs, word_ptr),
                                         shape=(nlist, len(refs)), copy=False)
        return cls(refs, row_ptr, row_ids, codes, matrix, idf, np.maximum(norm, 1e-6))

    def ids_of(self, p: int) -> np.ndarray:
        """FAISS row ids of the reference at position ``p``, in the order of its codes."""
        a, b = int(self.row_ptr[p]), int(self.row_ptr[p + 1])
        if self.row_ids is not None:
            return self.row_ids[a:b]
        return (int(self.refs[p]) << KP_BITS) | np.arange(b - a, dtype=np.int64)

    def restricted(self, index: faiss.Index) -> faiss.IndexIVFPQ:
        """The empty IVF-PQ (this index's coarse quantiser and PQ tables) that shortlisted codes are added to."""
        mini = getattr(self.local, "mini", None)
        if mini is None:
            src = faiss.downcast_index(faiss.extract_index_ivf(index))
            mini = faiss.IndexIVFPQ(src.quantizer, src.d, src.nlist, src.pq.M, src.pq.nbits)
            mini.pq = src.pq
            mini.by_residual = src.by_residual
            mini.use_precomputed_table = src.use_precomputed_table
            mini.is_trained = True
            if mini.by_residual and mini.use_precomputed_table > 0:
                mini.precompute_table()
            mini.own_fields = False  # the quantiser stays the index's
            self.local.mini = mini
        return mini

    def rank(self, index: faiss.Index, q: np.ndarray, n: int, positions: np.ndarray | None = None) -> np.ndarray:
        """Positions (into ``refs``) of the ``n`` references most similar to the rows ``q`` (code units), best first.

        Each row votes for its nearest word; a window of the query (the whole image, and with ``positions``
        the ``WINDOWS`` grid holding at least ``WINDOW_MIN_ROWS`` rows) is the binary idf-weighted set of its
        rows' words, a reference scores its best cosine over the windows (as a z-score among the references).
        A copy that covers a fifth of a busy scene is outvoted there by chance overlaps of the rest; the window
        around it is not.
        """
        quantizer = faiss.extract_index_ivf(index).quantizer
        _, words = quantizer.search(np.ascontiguousarray(q, dtype=np.float32), PREFILTER_ASSIGN)
        n = min(n, len(self.refs))
        win_rows, win_words = [], []
        for w, member in enumerate(_windows(positions, len(q))):
            u = np.unique(words[member])
            u = u[u >= 0]
            win_rows.append(np.full(len(u), w, np.int64))
            win_words.append(u)
        rows, cols = np.concatenate(win_rows), np.concatenate(win_words)
        if len(cols) == 0:
            return np.arange(n)
        weight = self.idf[cols].astype(np.float32) ** 2
        query = scipy.sparse.csr_matrix((weight, (rows, cols)), shape=(len(win_rows), len(self.idf)))
        score = np.asarray((query @ self.matrix).todense(), dtype=np.float64)
        qnorm = np.sqrt(np.bincount(rows, weights=weight, minlength=len(win_rows)))
        score /= np.maximum(qnorm, 1e-6)[:, None] * self.norm[None, :]
        # each window's cosines as z-scores over the references: a small window's chance overlaps spread
        # wider, so its raw maximum would favour whichever reference it happens to resemble
        score -= score.mean(axis=1, keepdims=True)
        score /= np.maximum(score.std(axis=1, keepdims=True), 1e-9)
        score = score.max(axis=0)
        top = np.argpartition(-score, n - 1)[:n] if n < len(score) else np.arange(len(score))
        return top[np.lexsort((top, -score[top]))]


def _windows(positions: np.ndarray | None, n: int) -> np.ndarray:
    """(windows, n) bool: which query rows each pre-filter window holds (see ``_Prefilter.rank``)."""
    out = [np.ones(n, bool)]
    if positions is None or n == 0:
        return np.array(out)
    f = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    for side in WINDOWS:
        if side >= 1.0:
            continue
        starts = np.arange(0.0, 1.0 - side + 1e-9, side / 2)
        inx = [(f[:, 0] >= x0) & (f[:, 0] < x0 + side) for x0 in starts]
        iny = [(f[:, 1] >= y0) & (f[:, 1] < y0 + side) for y0 in starts]
        for a in inx:
            for b in iny:
                m = a & b
                if int(m.sum()) >= WINDOW_MIN_ROWS:
                    out.append(m)
    return np.array(out)
