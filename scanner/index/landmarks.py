"""Inverted hash index for audio landmarks: hash -> (reference id, anchor time, anchor pitch, span).

A row is one landmark of one reference. Rows are kept sorted by hash in flat numpy
columns with a CSR-style directory ``offsets`` (rows of hash ``h`` are
``offsets[h]:offsets[h + 1]``), so a lookup is two array reads per probe, the hash itself
is never stored per row, and the index serialises to the ``landmark`` family of
``scanner.index.container`` (sections: the directory and one per column; no pickle; the
npz archives of format 2 are refused with a rebuild hint). Bytes per stored row::

    ref int32 (4) + anchor frame uint32 (4) + anchor pitch uint16 (2) + span uint8 (1) = 11 B

plus the directory: one offset per possible hash value (the landmark detector's hash space is
about 2.5 M values: 10 MB as uint32 while the index holds fewer than 2**32 rows, whatever its size).

Rows of one hash are kept sorted by reference id, so a search can ask for the rows of a hash
that belong to one reference (``ranges`` with ``ref``: a binary search inside each bucket) without
reading the bucket: buckets grow with the catalog, and a search that has shortlisted a few
references from its rarest hashes collects all their matches from the common hashes this way.
An index saved in hash order only is put in this order when read.

Added rows wait in an unsorted side list and are merged (one sort) on the next lookup
or save, so building an index from many references costs one sort, not one per add; shards
``merge`` the same way. Searching is ``lookup`` (exact hash matches, typed ``Matches``), or
``ranges`` then ``gather`` (positions first, so a caller can drop probes before any row is
read, or narrow them to one reference).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scanner.index import container
from scanner.index.base import VectorIndex
from scanner.types import Metric

FAMILY = "landmark"
FORMAT = 3  # 2: npz archive; 3: the container
_COLUMNS = ("ref", "t", "f", "dt")
_DTYPES = {"ref": np.int32, "t": np.uint32, "f": np.uint16, "dt": np.uint8}
BYTES_PER_ROW = sum(np.dtype(d).itemsize for d in _DTYPES.values())
REF_ID_MAX = np.iinfo(np.int32).max
MAX_HASH = 2**28  # the directory has one entry per hash value up to the largest one stored


class Matches(NamedTuple):
    """Rows found for a batch of query hashes: ``query[i]`` (position in the looked-up array)
    matched a reference landmark with these column values."""

    query: np.ndarray  # int64 positions into the looked-up hashes
    ref: np.ndarray  # int32 reference ids
    t: np.ndarray  # uint32 anchor frame in the reference
    f: np.ndarray  # uint16 anchor pitch (detector units)
    dt: np.ndarray  # uint8 landmark span in frames


class LandmarkIndex(VectorIndex):
    """Landmark rows grouped by exact hash.

    ``add(ids, vectors, extra)``: ``vectors[:, 0]`` holds the hashes (0 <= hash < ``MAX_HASH``);
    ``extra`` needs ``"t"`` (anchor frame), ``"f"`` (anchor pitch, 0..65535) and ``"dt"``
    (span in frames, 0..255). Other ``extra`` keys are ignored. ``offsets`` and ``columns``
    given to the constructor must already be in index order (by hash, then reference id).
    """

    family = FAMILY
    metric = Metric.COUNT  # detector scores count verified landmark matches
    kind = "landmark-inverted-v2"

    def __init__(self, dim: int = 1, offsets: np.ndarray | None = None, columns: dict[str, np.ndarray] | None = None):
        self.dim = dim
        self._offsets = offsets if offsets is not None else np.zeros(1, np.uint32)
        self._cols = columns if columns is not None else {k: np.zeros(0, d) for k, d in _DTYPES.items()}
        self._pending: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        self._ids_cache: np.ndarray | None = None

    # ----- contract -----------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> None:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.asarray(vectors)
        hashes = vectors.reshape(vectors.shape[0], -1)[:, 0] if vectors.ndim else vectors.reshape(-1)
        n = ids.shape[0]
        if hashes.shape[0] != n:
            raise ValueError(f"{n} ids for {hashes.shape[0]} landmark rows")
        if n == 0:
            return
        extra = extra or {}
        missing = [k for k in ("t", "f", "dt") if k not in extra]
        if missing:
            raise ValueError(f"landmark rows need extra columns {missing}")
        if ids.min() < 0 or ids.max() > REF_ID_MAX:
            raise ValueError(f"reference ids must be in 0..{REF_ID_MAX}")
        hashes = np.asarray(hashes, dtype=np.int64)
        if hashes.min() < 0 or hashes.max() >= MAX_HASH:
            raise ValueError(f"landmark hashes must be in 0..{MAX_HASH - 1}")
        cols = {
            "ref": ids.astype(np.int32),
            "t": _fit(extra["t"], np.uint32, n, "t"),
            "f": _fit(extra["f"], np.uint16, n, "f"),
            "dt": _fit(extra["dt"], np.uint8, n, "dt"),
        }
        self._pending.append((hashes, cols))
        self._ids_cache = None

    def remove(self, ids: np.ndarray) -> int:
        self._merge()
        drop = np.isin(self._cols["ref"], np.asarray(ids, dtype=np.int64).reshape(-1).astype(np.int32))
        gone = int(drop.sum())
        if gone:
            keep = ~drop
            hashes = self._hashes()[keep]
            self._cols = {k: v[keep] for k, v in self._cols.items()}
            self._offsets = _directory(hashes)
            self._ids_cache = None
        return gone

    def ids(self) -> np.ndarray:
        if self._ids_cache is None:
            parts = [self._cols["ref"]] + [c["ref"] for _, c in self._pending]
            self._ids_cache = np.unique(np.concatenate(parts)).astype(np.int64)
        return self._ids_cache

    def merge(self, other: VectorIndex) -> None:
        """Add every row of ``other`` (a landmark index built by another shard, disjoint references)."""
        if getattr(other, "family", None) != FAMILY:
            raise ValueError(f"can only merge a landmark index, not {type(other).__name__}")
        other._merge()
        if other.rows == 0:
            return
        overlap = np.intersect1d(self.ids(), other.ids())
        if overlap.size:
            raise ValueError(f"shards overlap on {overlap.size} references (e.g. {int(overlap[0])})")
        self._pending.append((other._hashes(), {k: v.copy() for k, v in other._cols.items()}))
        self._ids_cache = None

    def to_bytes(self) -> bytes:
        self._merge()
        meta = {"dim": self.dim, "rows": self.rows, "directory": str(self._offsets.dtype)}
        sections = {"offsets": self._offsets.astype(self._offsets.dtype.newbyteorder("<")).tobytes()}
        sections.update({k: self._cols[k].astype(np.dtype(_DTYPES[k]).newbyteorder("<")).tobytes() for k in _COLUMNS})
        return container.pack(FAMILY, FORMAT, meta, sections)

    @classmethod
    def from_bytes(cls, data: bytes, dim: int = 1) -> "LandmarkIndex":
        """Read ``to_bytes`` output: ``IndexCorruptError`` for unreadable bytes, ``IndexMismatchError`` for an
        older format (rebuild the index)."""
        box = container.unpack(data, FAMILY, FORMAT)
        return container.parse("landmark index", lambda: cls._read(box, dim))

    @classmethod
    def _read(cls, box: container.Container, dim: int) -> "LandmarkIndex":
        directory = np.dtype(str(box.get("directory")))
        if directory not in (np.uint32, np.int64):
            raise ValueError(f"directory of type {directory}")
        n = int(box.get("rows"))
        offsets = box.array("offsets", directory.newbyteorder("<")).astype(directory)
        cols = {k: box.array(k, np.dtype(_DTYPES[k]).newbyteorder("<"), (n,)).astype(_DTYPES[k]) for k in _COLUMNS}
        if offsets.size == 0 or offsets[0] != 0 or offsets[-1] != n or np.any(offsets[1:] < offsets[:-1]):
            raise ValueError("directory does not match the rows")
        index = cls(dim, offsets, cols)
        if not _sorted_in_buckets(offsets, cols["ref"]):  # saved before buckets were kept in reference order
            order = np.lexsort((cols["ref"], index._hashes()))
            index._cols = {k: np.ascontiguousarray(v[order]) for k, v in cols.items()}
        return index

    # ----- landmark specifics -------------------------------------------------
    @property
    def rows(self) -> int:
        """Landmarks held (all references)."""
        return int(self._cols["ref"].shape[0] + sum(h.shape[0] for h, _ in self._pending))

    @property
    def nbytes(self) -> int:
        """Memory held by the rows and the directory."""
        return self.rows * BYTES_PER_ROW + self._offsets.nbytes

    def bucket_sizes(self, hashes: np.ndarray) -> np.ndarray:
        """Rows stored under each of ``hashes`` (0 for a hash never stored): what a lookup would return."""
        self._merge()
        q = np.asarray(hashes, dtype=np.int64).reshape(-1)
        top = self._offsets.size - 1
        if top <= 0:
            return np.zeros(q.size, np.int64)
        ok = (q >= 0) & (q < top)
        qq = np.where(ok, q, 0)
        return np.where(ok, self._offsets[qq + 1].astype(np.int64) - self._offsets[qq].astype(np.int64), 0)

    def lookup(self, hashes: np.ndarray) -> Matches:
        """Every stored row whose hash equals one of ``hashes`` (duplicates in ``hashes`` match again)."""
        return self.gather(*self.ranges(hashes))

    def ranges(self, hashes: np.ndarray, ref: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Row positions ``lo[i]:hi[i]`` stored under ``hashes[i]`` (empty for a hash never stored),
        narrowed to the rows of reference ``ref[i]`` when ``ref`` is given.

        Rows of a hash are sorted by reference, so the narrowing is a binary search inside the
        bucket (about log2 of its size steps, vectorised over all hashes): other rows are never read."""
        self._merge()
        q = np.asarray(hashes, dtype=np.int64).reshape(-1)
        top = self._offsets.size - 1
        if top <= 0 or q.size == 0:
            e = np.zeros(q.size, np.int64)
            return e, e.copy()
        ok = (q >= 0) & (q < top)
        qq = np.where(ok, q, 0)
        lo = self._offsets[qq].astype(np.int64)
        hi = np.where(ok, self._offsets[qq + 1].astype(np.int64), lo)
        if ref is not None:
            col, r = self._cols["ref"], np.asarray(ref, np.int64).reshape(-1)
            lo, hi = _first_at_least(col, lo, hi, r), _first_at_least(col, lo, hi, r + 1)
        return lo, np.maximum(hi, lo)

    def gather(self, lo: np.ndarray, hi: np.ndarray) -> Matches:
        """The rows at positions ``lo[i]:hi[i]`` (from ``ranges``); ``query`` holds ``i``."""
        self._merge()
        c = self._cols
        lo = np.asarray(lo, np.int64).reshape(-1)
        counts = np.asarray(hi, np.int64).reshape(-1) - lo
        if counts.size == 0 or int(counts.sum()) == 0:
            return Matches(np.zeros(0, np.int64), c["ref"][:0], c["t"][:0], c["f"][:0], c["dt"][:0])
        total = int(counts.sum())
        query = np.repeat(np.arange(lo.size, dtype=np.int64), counts)
        # position of each match: lo of its query plus its rank within that query's run
        starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
        pos = starts + np.arange(total, dtype=np.int64)
        return Matches(query, c["ref"][pos], c["t"][pos], c["f"][pos], c["dt"][pos])

    def _hashes(self) -> np.ndarray:
        """The hash of every merged row (rebuilt from the directory)."""
        return np.repeat(np.arange(self._offsets.size - 1, dtype=np.int64), np.diff(self._offsets.astype(np.int64)))

    def _merge(self) -> None:
        if not self._pending:
            return
        hashes = np.concatenate([self._hashes()] + [h for h, _ in self._pending])
        merged = {k: np.concatenate([self._cols[k]] + [c[k] for _, c in self._pending]) for k in _COLUMNS}
        order = np.argsort((hashes << 31) | merged["ref"].astype(np.int64), kind="stable")  # by hash, then reference
        self._cols = {k: np.ascontiguousarray(v[order]) for k, v in merged.items()}
        self._offsets = _directory(hashes[order])
        self._pending = []


def _directory(sorted_hashes: np.ndarray) -> np.ndarray:
    """CSR offsets for sorted hashes: rows of hash h are offsets[h]:offsets[h+1]."""
    size = int(sorted_hashes[-1]) + 1 if sorted_hashes.size else 0
    counts = np.bincount(sorted_hashes, minlength=size) if size else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return offsets.astype(np.uint32 if offsets[-1] < 2**32 else np.int64)  # 4 bytes per hash value while it can


def _sorted_in_buckets(offsets: np.ndarray, col: np.ndarray) -> bool:
    """Whether the rows of every hash are in non-decreasing order of ``col``."""
    if col.size < 2:
        return True
    down = np.flatnonzero(col[1:] < col[:-1]) + 1  # rows whose value is below the previous row's
    return bool(np.isin(down, offsets.astype(np.int64)).all())  # ... allowed only where a new hash starts


def _first_at_least(col: np.ndarray, lo: np.ndarray, hi: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per i, the first position p in ``lo[i]:hi[i]`` with ``col[p] >= target[i]`` (``hi[i]`` if none);
    ``col`` is sorted inside every such range."""
    lo, hi = lo.copy(), hi.copy()
    live = np.flatnonzero(lo < hi)
    last = col.size - 1
    while live.size:
        a, b = lo[live], hi[live]
        mid = (a + b) >> 1
        below = col[np.minimum(mid, last)] < target[live]
        lo[live] = np.where(below, mid + 1, a)
        hi[live] = np.where(below, b, mid)
        live = live[lo[live] < hi[live]]
    return lo


def _fit(values: np.ndarray, dtype, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"extra[{name!r}] has {arr.shape[0]} values for {n} rows")
    info = np.iinfo(dtype)
    arr = np.rint(arr) if arr.dtype.kind == "f" else arr
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise ValueError(f"extra[{name!r}] values must be in {info.min}..{info.max}")
    return arr.astype(dtype)
