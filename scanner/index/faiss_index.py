"""FAISS-backed indexes: exact inner product on L2-normalised floats, exact Hamming on bits,
and the approximate kinds ``choose_index`` picks for large collections.

Every kind is written in the ``faiss`` family of ``scanner.index.container``: the header says
``kind`` ("flat" or a plan kind), metric, dimension and parameters; FAISS's own bytes are one
section. Searches return ``TopK``; flat, PQ4-SQ8 and IVF-SQ8 also answer ``range_search`` (their scores
are true metric values, so a calibrated radius means the same).
"""

from __future__ import annotations

import os

# Idle OpenMP threads spin by default; with tiny per-request searches that costs ~70 ms a call.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from scanner.errors import IndexCorruptError, IndexMismatchError  # noqa: E402
from scanner.index import container  # noqa: E402
from scanner.index.base import RangeHits, TopK, VectorIndex  # noqa: E402
from scanner.types import Metric  # noqa: E402

FAMILY = "faiss"
VERSION = 1  # layout of the faiss family inside the container


def _ids(ids: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def _read_faiss(buf: memoryview | bytes, binary: bool, what: str):
    """FAISS bytes of a section back to an index (``IndexCorruptError`` when FAISS cannot read them)."""
    arr = np.frombuffer(bytes(buf), dtype=np.uint8)
    if arr.size == 0:
        raise IndexCorruptError(f"{what} has an empty FAISS section; {container.REBUILD}")
    return container.parse(what, lambda: faiss.deserialize_index_binary(arr) if binary
                           else faiss.deserialize_index(arr))


def _check_header(box: container.Container, kind: str, metric: Metric, dim: int) -> None:
    got_kind, got_dim = str(box.get("kind")), int(box.get("dim"))
    got_metric = str(box.get("metric"))
    if got_metric != metric.value:
        raise IndexMismatchError(f"the index file holds a {got_kind} index for {got_metric}, not for {metric.value}; "
                                 f"{container.REBUILD}")
    if got_kind != kind:
        raise IndexMismatchError(f"the index file holds a {got_kind} index, not {kind}; {container.REBUILD}")
    if got_dim != int(dim):
        raise IndexMismatchError(f"the index file has dimension {got_dim}, expected {dim}; {container.REBUILD}")


def _range(raw, q: np.ndarray, radius: float, binary: bool, params=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FAISS range search with this contract's bounds: Hamming <= radius, similarity >= radius."""
    if binary:
        lims, d, i = raw.range_search(q, int(np.floor(radius)) + 1, **({"params": params} if params else {}))
        return lims.astype(np.int64), d.astype(np.int32), i.astype(np.int64)
    r = float(np.nextafter(np.float32(radius), np.float32(-np.inf)))
    lims, d, i = raw.range_search(q, r, **({"params": params} if params else {}))
    return lims.astype(np.int64), d.astype(np.float32), i.astype(np.int64)


class FloatIndex(VectorIndex):
    """Cosine similarity via inner product; vectors are normalised on the way in.

    ``len()`` counts distinct ids; re-adding an id adds rows (callers remove first to replace).
    """

    family = FAMILY
    metric = Metric.COSINE
    kind = "IDMap2,Flat,IP"

    def __init__(self, dim: int, raw: faiss.Index | None = None):
        self.dim = dim
        self._index = raw if raw is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @staticmethod
    def _prep(vectors: np.ndarray, dim: int) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, dim))
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x / np.maximum(norms, 1e-12))

    def add(self, ids: np.ndarray, vectors: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> None:
        self._index.add_with_ids(self._prep(vectors, self.dim), _ids(ids))

    def remove(self, ids: np.ndarray) -> int:
        return int(self._index.remove_ids(faiss.IDSelectorBatch(_ids(ids))))

    def search(self, vectors: np.ndarray, k: int) -> TopK:
        """Top-``k`` (cosine similarities, ids) per query row; empty slots have id -1."""
        q = self._prep(vectors, self.dim)
        if self._index.ntotal == 0:
            return TopK(np.zeros((len(q), k), np.float32), np.full((len(q), k), -1, np.int64))
        return TopK(*self._index.search(q, k))

    def range_search(self, vectors: np.ndarray, radius: float) -> RangeHits:
        """Every row with cosine similarity >= ``radius`` to each query row."""
        return RangeHits(*_range(self._index, self._prep(vectors, self.dim), radius, binary=False))

    def ids(self) -> np.ndarray:
        return np.unique(faiss.vector_to_array(self._index.id_map).astype(np.int64))

    def merge(self, other: VectorIndex) -> None:
        if not isinstance(other, FloatIndex) or other.dim != self.dim:
            raise ValueError("can only merge a FloatIndex of the same dimension")
        self._index.merge_from(other._index)

    def to_bytes(self) -> bytes:
        meta = {"kind": "flat", "metric": self.metric.value, "dim": self.dim}
        return container.pack(FAMILY, VERSION, meta, {"faiss": faiss.serialize_index(self._index).tobytes()})

    @classmethod
    def from_bytes(cls, data: bytes, dim: int) -> "FloatIndex":
        box = container.unpack(data, FAMILY, VERSION)
        _check_header(box, "flat", cls.metric, dim)
        raw = _read_faiss(box.section("faiss"), False, "flat index")
        if not isinstance(raw, faiss.IndexIDMap2) or raw.d != dim:
            raise IndexCorruptError(f"flat index section holds another FAISS index; {container.REBUILD}")
        return cls(dim, raw)


class BinaryIndex(VectorIndex):
    """Hamming distance over packed bits (``dim`` bits, ``dim // 8`` bytes per row)."""

    family = FAMILY
    metric = Metric.HAMMING
    kind = "BinaryIDMap2,BinaryFlat"

    def __init__(self, dim: int, raw: faiss.IndexBinary | None = None):
        if dim % 8:
            raise ValueError("binary index dimension must be a multiple of 8 bits")
        self.dim = dim
        self._index = raw if raw is not None else faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(dim))

    def _prep(self, vectors: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(vectors, dtype=np.uint8).reshape(-1, self.dim // 8))

    def add(self, ids: np.ndarray, vectors: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> None:
        self._index.add_with_ids(self._prep(vectors), _ids(ids))

    def remove(self, ids: np.ndarray) -> int:
        return int(self._index.remove_ids(faiss.IDSelectorBatch(_ids(ids))))

    def search(self, vectors: np.ndarray, k: int) -> TopK:
        """Top-``k`` (Hamming distances, ids) per query row; empty slots have id -1."""
        q = self._prep(vectors)
        if self._index.ntotal == 0:
            return TopK(np.full((len(q), k), self.dim, np.int32), np.full((len(q), k), -1, np.int64))
        return TopK(*self._index.search(q, k))

    def range_search(self, vectors: np.ndarray, radius: float) -> RangeHits:
        """Every row within Hamming distance ``radius`` of each query row."""
        return RangeHits(*_range(self._index, self._prep(vectors), radius, binary=True))

    def ids(self) -> np.ndarray:
        return np.unique(faiss.vector_to_array(self._index.id_map).astype(np.int64))

    def merge(self, other: VectorIndex) -> None:
        if not isinstance(other, BinaryIndex) or other.dim != self.dim:
            raise ValueError("can only merge a BinaryIndex of the same dimension")
        # faiss has no merge_from for binary IDMaps: copy the flat codes and their ids
        codes = faiss.vector_to_array(faiss.downcast_IndexBinary(other._index.index).xb).reshape(-1, self.dim // 8)
        ids = faiss.vector_to_array(other._index.id_map).astype(np.int64)
        if ids.size:
            self._index.add_with_ids(np.ascontiguousarray(codes), ids)

    def to_bytes(self) -> bytes:
        meta = {"kind": "flat", "metric": self.metric.value, "dim": self.dim}
        return container.pack(FAMILY, VERSION, meta, {"faiss": faiss.serialize_index_binary(self._index).tobytes()})

    @classmethod
    def from_bytes(cls, data: bytes, dim: int) -> "BinaryIndex":
        box = container.unpack(data, FAMILY, VERSION)
        _check_header(box, "flat", cls.metric, dim)
        raw = _read_faiss(box.section("faiss"), True, "flat binary index")
        if not isinstance(raw, faiss.IndexBinaryIDMap2) or raw.d != dim:
            raise IndexCorruptError(f"flat binary index section holds another FAISS index; {container.REBUILD}")
        return cls(dim, raw)


# =========================================================================== approximate indexes
#
# Rows of the approximate indexes are keyed by private, never reused int64 *row keys*;
# ``_keys``/``_refs`` (sorted by key) map them to reference ids. One reference may own
# several rows, and row keys give every row a unique handle the indexes can remove or
# reconstruct (FAISS id maps cannot reconstruct by an id that several rows share).
#
# Removal is real in every kind (``remove_ids``); the ``alive`` column of the file format stays
# (all true) so files keep one layout. (HNSW graphs, which could only tombstone rows, are gone:
# ``choose_index`` never picked them; see ``benchmarks/index_scale.py``.)
#
# Serialised form: the ``faiss`` container family; the header holds kind, metric, dim,
# params and the next row key, the sections the row keys, reference ids, alive flags
# and FAISS's index bytes. ``params["factory"]`` is the FAISS factory string the index was built
# from (faiss contrib style); files written before it was recorded are refused (rebuild).

class _KeyedIndex(VectorIndex):
    """Shared bookkeeping of the approximate indexes (row keys, reference ids, alive flags)."""

    family = FAMILY
    plan_kind: str = ""
    binary: bool = False
    exact_scores: bool = True  # returned scores are the true metric values (not PQ estimates)
    ranged: bool = True  # FAISS answers range searches on this kind with true metric values

    def __init__(self, dim: int, params: dict):
        self.dim = int(dim)
        self.params = dict(params)
        self._keys = np.zeros(0, np.int64)
        self._refs = np.zeros(0, np.int64)
        self._alive = np.zeros(0, bool)
        self._next = 0
        self._index = self._new_raw()

    # ---- per type
    def _new_raw(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _raw_add(self, keys: np.ndarray, x: np.ndarray) -> None:
        self._index.add_with_ids(x, keys)

    def _raw_remove(self, keys: np.ndarray) -> None:  # pragma: no cover - per type
        raise NotImplementedError

    def _raw_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _serialize_raw(self) -> bytes:
        if self.binary:
            return faiss.serialize_index_binary(self._index).tobytes()
        return faiss.serialize_index(self._index).tobytes()

    def _stored_rows(self) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - per type
        raise NotImplementedError

    # ---- contract
    def _prep(self, vectors: np.ndarray) -> np.ndarray:
        if self.binary:
            return np.ascontiguousarray(np.asarray(vectors, dtype=np.uint8).reshape(-1, self.dim // 8))
        return FloatIndex._prep(vectors, self.dim)

    def add(self, ids: np.ndarray, vectors: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> None:
        refs = _ids(ids)
        x = self._prep(vectors)
        if x.shape[0] != refs.shape[0]:
            raise ValueError(f"{refs.shape[0]} ids for {x.shape[0]} vectors")
        if x.shape[0] == 0:
            return
        keys = np.arange(self._next, self._next + x.shape[0], dtype=np.int64)
        self._raw_add(keys, x)
        self._next += x.shape[0]
        self._keys = np.concatenate([self._keys, keys])
        self._refs = np.concatenate([self._refs, refs])
        self._alive = np.concatenate([self._alive, np.ones(x.shape[0], bool)])

    def remove(self, ids: np.ndarray) -> int:
        hit = np.isin(self._refs, _ids(ids)) & self._alive
        n = int(hit.sum())
        if n:
            self._alive[hit] = False
            self._raw_remove(self._keys[hit])
        return n

    def ids(self) -> np.ndarray:
        return np.unique(self._refs[self._alive])

    @property
    def rows(self) -> int:
        """Live rows (a reference may own several)."""
        return int(self._alive.sum())

    def search(self, vectors: np.ndarray, k: int) -> TopK:
        """Top-``k`` (scores, reference ids) per query row, best first; empty slots have id -1."""
        q = self._prep(vectors)
        if self.rows == 0 or q.shape[0] == 0:
            fill = (np.full((len(q), k), self.dim, np.int32) if self.binary else np.zeros((len(q), k), np.float32))
            return TopK(fill, np.full((len(q), k), -1, np.int64))
        scores, keys = self._raw_search(q, k)
        return TopK(scores, self._to_refs(keys))

    def range_search(self, vectors: np.ndarray, radius: float) -> RangeHits:
        """Every live row within ``radius`` (as ``VectorIndex.range_search``), over the cells/graph a
        top-k search would visit; refused by kinds whose scores are estimates or that FAISS cannot bound."""
        if not self.ranged:
            return super().range_search(vectors, radius)
        q = self._prep(vectors)
        if self.rows == 0 or q.shape[0] == 0:
            return RangeHits(np.zeros(len(q) + 1, np.int64), np.zeros(0, np.int32 if self.binary else np.float32),
                             np.zeros(0, np.int64))
        lims, scores, keys = _range(self._range_target(), q, radius, self.binary, self._range_params())
        if not self._alive.all():  # drop tombstones wherever the search params could not
            live = ~np.isin(keys, self._keys[~self._alive])
            owner = np.repeat(np.arange(len(q)), np.diff(lims))[live]
            lims = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=len(q)))]).astype(np.int64)
            scores, keys = scores[live], keys[live]
        return RangeHits(lims, scores, self._to_refs(keys))

    def _range_params(self):
        return None

    def _range_target(self):
        """The FAISS index a range search runs on (kinds with a re-scoring copy use that)."""
        return self._index

    def _to_refs(self, keys: np.ndarray) -> np.ndarray:
        out = np.full(keys.shape, -1, np.int64)
        ok = keys >= 0
        pos = np.searchsorted(self._keys, keys[ok])
        out[ok] = self._refs[np.minimum(pos, self._keys.size - 1)]
        return out

    def _live_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(reference ids, vectors) of every live row, vectors as stored (graphs: exact;
        IVF: decoded from their codes)."""
        keys, x = self._stored_rows()
        live = self._keys[self._alive]
        keep = np.isin(keys, live)
        keys, x = keys[keep], x[keep]
        return self._refs[np.searchsorted(self._keys, keys)], x

    def merge(self, other: VectorIndex) -> None:
        """Add every live row of ``other`` (same type and dimension, built by another shard).

        Rows are re-added from their stored vectors, so shards need not share training:
        exact for binary IVF; IVF-SQ8 and PQ4-SQ8 rows are decoded from 8 bits and encoded again
        (~5e-3 cosine). IVF-PQ refuses (PQ codes are too lossy to re-encode: rebuild from the
        embeddings). An untrained IVF index trains on the first
        rows it receives this way.
        """
        if type(other) is not type(self) or other.dim != self.dim:
            raise ValueError(f"can only merge a {type(self).__name__} of the same dimension")
        if other.rows == 0:
            return
        refs, x = other._live_rows()
        self.add(refs, x)

    def to_bytes(self) -> bytes:
        meta = {"kind": self.plan_kind, "metric": self.metric.value, "dim": self.dim, "params": self.params,
                "next": self._next}
        return container.pack(FAMILY, VERSION, meta, {
            "keys": self._keys.astype("<i8").tobytes(), "refs": self._refs.astype("<i8").tobytes(),
            "alive": self._alive.astype(np.uint8).tobytes(), "faiss": self._serialize_raw(),
            **self._extra_sections(),
        })

    def _extra_sections(self) -> dict[str, bytes]:
        return {}

    def _load_extra(self, sections: dict[str, memoryview]) -> None:
        pass

    @classmethod
    def from_bytes(cls, data: bytes, dim: int) -> "_KeyedIndex":
        box = container.unpack(data, FAMILY, VERSION)
        _check_header(box, cls.plan_kind, cls.metric, dim)
        return container.parse(f"{cls.plan_kind} index", lambda: cls._read(box, dim))

    @classmethod
    def _read(cls, box: container.Container, dim: int) -> "_KeyedIndex":
        params = box.get("params")
        if not isinstance(params, dict):
            raise ValueError("params are not an object")
        if not params.get("factory"):
            raise IndexMismatchError(f"the {cls.plan_kind} index file was written before indexes recorded their "
                                     f"FAISS factory string; {container.REBUILD}")
        self = cls(dim, params)
        fresh = type(self._index)
        self._next = int(box.get("next"))
        self._keys = box.array("keys", "<i8").astype(np.int64)
        self._refs = box.array("refs", "<i8").astype(np.int64)
        self._alive = box.array("alive", np.uint8).astype(bool)
        if not (self._keys.size == self._refs.size == self._alive.size):
            raise ValueError("row key, reference and tombstone columns differ in length")
        if self._keys.size and (np.any(np.diff(self._keys) <= 0) or self._keys[-1] >= self._next):
            raise ValueError("row keys are not sorted below the next key")
        self._index = _read_faiss(box.section("faiss"), self.binary, f"{cls.plan_kind} index")
        if self._index.d != self.dim:
            raise ValueError(f"FAISS section has dimension {self._index.d}")
        if type(self._index) is not fresh:
            raise ValueError(f"FAISS section holds a {type(self._index).__name__}, not what "
                             f"{params['factory']!r} builds")
        self._load_extra(box.sections)
        return self

    def __len__(self) -> int:
        return int(self.ids().size)


def _factory(kind: str, params: dict) -> str:
    from scanner.index.choose import factory_string

    return str(params.get("factory") or factory_string(kind, params))


def _float_factory(dim: int, factory: str, want: type, what: str):
    """``faiss.index_factory`` for inner product, checked to give the type this kind wraps."""
    try:
        raw = faiss.index_factory(int(dim), factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(f"bad FAISS factory string {factory!r} for {what}: "
                         f"{(str(exc).strip().splitlines() or ['?'])[-1][:120]}") from None
    if not isinstance(raw, want):
        names = " or ".join(w.__name__ for w in (want if isinstance(want, tuple) else (want,)))
        raise ValueError(f"factory string {factory!r} builds a {type(raw).__name__}, not the {names} "
                         f"of {what}")
    return raw


class _IVFMixin:
    """Training on the first add and real removal, for IVF indexes."""

    def _range_params(self):
        return _ivf_params(self.params["nprobe"])

    def _train_count(self) -> int:
        return int(self.params["train_size"])

    def _min_train(self) -> int:
        """Rows the first ``add`` needs: one per cell (PQ adds its codebook size)."""
        return int(self._ivf().nlist)

    def _ivf(self):
        return faiss.extract_index_ivf(self._index) if not self.binary else self._index

    def _ensure_trained(self, x: np.ndarray) -> None:
        if self._index.is_trained:
            return
        need = self._min_train()
        if x.shape[0] < need:
            raise ValueError(
                f"{self.plan_kind} needs at least {need} vectors in its first add to train "
                f"(got {x.shape[0]}); use a flat index for small sets"
            )
        n = min(x.shape[0], self._train_count())
        sample = x if n == x.shape[0] else x[np.random.default_rng(1234).choice(x.shape[0], n, replace=False)]
        self._index.train(np.ascontiguousarray(sample))
        self.params["trained_on"] = int(n)

    def _raw_add(self, keys, x):
        self._ensure_trained(x)
        self._index.add_with_ids(x, keys)

    def _raw_search(self, q, k):
        return self._index.search(q, k, params=_ivf_params(self.params["nprobe"]))

    def _raw_remove(self, keys: np.ndarray) -> None:
        self._index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(keys)))
        self._keys, self._refs = self._keys[self._alive], self._refs[self._alive]
        self._alive = self._alive[self._alive]

    def _stored_rows(self) -> tuple[np.ndarray, np.ndarray]:
        keys = np.ascontiguousarray(self._keys[self._alive])
        if keys.size == 0:
            width = self.dim // 8 if self.binary else self.dim
            return keys, np.zeros((0, width), np.uint8 if self.binary else np.float32)
        if self.plan_kind == "ivfpq":
            raise ValueError("IVF-PQ rows cannot be recovered (PQ codes are lossy); "
                             "rebuild the index from the reference embeddings instead of merging")
        if self.binary:  # binary IVF lists hold the codes themselves
            inv = self._index.invlists
            got_keys, got_codes = [], []
            for cell in range(inv.nlist):
                n = inv.list_size(cell)
                if n:
                    got_keys.append(faiss.rev_swig_ptr(inv.get_ids(cell), n).copy())
                    got_codes.append(faiss.rev_swig_ptr(inv.get_codes(cell), n * inv.code_size).copy()
                                     .reshape(n, inv.code_size))
            return np.concatenate(got_keys).astype(np.int64), np.concatenate(got_codes)
        self._index.set_direct_map_type(faiss.DirectMap.Hashtable)
        try:
            return keys, self._index.reconstruct_batch(keys)
        finally:
            self._index.set_direct_map_type(faiss.DirectMap.NoMap)


SQ_RANGE_MARGIN = 0.2


def _widen(sq) -> None:
    """Train 8-bit ranges 20 % wider than the sample's min..max on each side, so rows added
    later (new references, merged shards) are not clipped; costs ~1.4x coarser steps."""
    sq.rangestat = faiss.ScalarQuantizer.RS_minmax
    sq.rangestat_arg = SQ_RANGE_MARGIN


def _ivf_params(nprobe: int):
    sp = faiss.SearchParametersIVF()
    sp.nprobe = int(nprobe)
    return sp


class IVFPQIndex(_IVFMixin, _KeyedIndex):
    """Cosine similarity, inverted file + product quantisation (factory ``IVF{nlist},PQ{m}x{nbits}``),
    for collections too large even for 8-bit vectors. Trains on (a sample of) the first ``add``.
    Scores are PQ estimates (``exact_scores`` False: re-score hits before applying a threshold);
    merge is refused (PQ codes are too lossy to re-encode: rebuild from the embeddings)."""

    metric = Metric.COSINE
    plan_kind = "ivfpq"
    ranged = False  # PQ estimates: a radius would not mean what the calibration says
    exact_scores = False

    def __init__(self, dim: int, params: dict | None = None):
        p = {"nlist": 1024, "m": max(1, dim // 16), "nbits": 8, "nprobe": 128, "train_size": 100_000,
             **(params or {})}
        if "factory" not in p and dim % int(p["m"]):
            raise ValueError(f"PQ m={p['m']} must divide the dimension {dim}")
        p["factory"] = _factory(self.plan_kind, p)
        super().__init__(dim, p)
        self.kind = f"{p['factory']},IP"

    def _new_raw(self):
        return _float_factory(self.dim, self.params["factory"], faiss.IndexIVFPQ, "an IVF-PQ index")

    def _min_train(self) -> int:
        return max(int(self._index.nlist), int(self._index.pq.ksub))


class IVFSQIndex(_IVFMixin, _KeyedIndex):
    """Cosine similarity, inverted file over 8-bit scalar-quantised vectors (factory
    ``IVF{nlist},SQ8``: ``dim`` bytes a row, 4x smaller than floats). Scores are within ~5e-3 of
    exact; recall is limited only by the cells not probed (``nprobe``). Trains (k-means cells,
    per-dimension ranges) on the first ``add``; removal is real.

    The vectors themselves are quantised, not their residuals to the cell centre (the factory's
    default): a decoded row then encodes to the same code in any cell, so shards merged from
    one trained empty index search exactly like one index."""

    metric = Metric.COSINE
    plan_kind = "ivf-sq8"

    def __init__(self, dim: int, params: dict | None = None):
        p = {"nlist": 1024, "nprobe": 128, "train_size": 100_000, **(params or {})}
        p["factory"] = _factory(self.plan_kind, p)
        super().__init__(dim, p)
        self.kind = f"{p['factory']},IP"

    def _new_raw(self):
        index = _float_factory(self.dim, self.params["factory"], faiss.IndexIVFScalarQuantizer,
                               "an IVF-SQ8 index")
        if index.sq.qtype != faiss.ScalarQuantizer.QT_8bit:
            raise ValueError(f"factory string {self.params['factory']!r} is not 8-bit scalar quantisation")
        index.by_residual = False  # see the class docstring
        _widen(index.sq)
        return index


SQ8_DIRECT = True  # PQ4SQ8Index: score candidates from the SQ8 codes in place (False: reconstruct_batch)
STALE_SHARE = 0.25  # PQ4SQ8Index: rebuild the fast-scan codes when this share of them belongs to removed rows


class PQ4SQ8Index(_IVFMixin, _KeyedIndex):
    """Cosine similarity for large collections: a 4-bit PQ fast-scan shortlist re-scored against
    8-bit scalar-quantised vectors (factory ``[PCAR{pca},]IVF{nlist},PQ{m}x4fs,Refine(SQ8)``; ``nlist`` 1
    by default, i.e. every code is scanned; without ``pca``, ``m = dim / 4``: 64 B of codes plus ``dim``
    SQ8 bytes a row). With ``pca`` the codes are of the vectors projected on their ``pca`` main axes
    (randomly rotated, so every sub-quantiser gets a share of the variance): ``choose_index`` plans
    ``PCAR{dim/2}`` with ``m = dim / 8``, i.e. 4-d sub-vectors in 32 B, which rank copies as well as
    ``dim / 4`` codes of the full vectors at half the scan (``benchmarks/index_scale.py``). The
    re-scoring copy is always of the full vectors.

    The fast-scan codes are compared 32 at a time in SIMD registers, so scanning all of them costs
    about as much as an IVF probe of a few percent of the rows, without IVF's blind spot: a copy whose
    descriptor has moved far from its source (cosine ~0.5) usually lands in another cell, while its PQ
    estimate still ranks it in the shortlist. ``k * k_factor`` candidates per query are re-scored
    against the SQ8 copy, so returned scores are within ~5e-3 of exact (what calibrated thresholds
    need) and ``range_search`` runs on that copy. faiss's own ``IndexRefine`` has no ``add_with_ids``,
    so the refinement is done here, keyed by the same row keys. Removal is real; shards merge from
    the SQ8 copy (re-encoded, as IVF-SQ8 rows are)."""

    metric = Metric.COSINE
    plan_kind = "pq4-sq8"

    def __init__(self, dim: int, params: dict | None = None):
        p = {"nlist": 1, "m": max(1, dim // 4), "nprobe": 1, "k_factor": 32, "train_size": 100_000,
             **(params or {})}
        if "factory" not in p and dim % int(p["m"]):
            raise ValueError(f"PQ m={p['m']} must divide the dimension {dim}")
        p["factory"] = _factory(self.plan_kind, p)
        base, sep, refine = p["factory"].partition(",Refine(")
        if not sep or refine != "SQ8)":
            raise ValueError(f"factory string {p['factory']!r} is not '[PCAR<d>,]<IVF fast-scan PQ>,Refine(SQ8)'")
        self._base_factory = base
        self._store = None
        super().__init__(dim, p)
        self.kind = f"{p['factory']},IP"

    def _new_raw(self):
        index = _float_factory(self.dim, self._base_factory, (faiss.IndexIVFPQFastScan, faiss.IndexPreTransform),
                               "a PQ fast-scan shortlist")
        if isinstance(index, faiss.IndexPreTransform) and not isinstance(
                faiss.downcast_index(index.index), faiss.IndexIVFPQFastScan):
            raise ValueError(f"factory string {self._base_factory!r} transforms the vectors into a "
                             f"{type(faiss.downcast_index(index.index)).__name__}, not an IndexIVFPQFastScan")
        flat_sq = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        _widen(flat_sq.sq)
        self._store = faiss.IndexIDMap2(flat_sq)
        return index

    def _min_train(self) -> int:
        """Rows the first ``add`` needs: a cell each, the 16 PQ words, and a full-rank PCA (its output width)."""
        ivf = faiss.downcast_index(self._ivf())
        pca = int(self._index.index.d) if isinstance(self._index, faiss.IndexPreTransform) else 0
        return max(int(ivf.nlist), 2 ** int(ivf.pq.nbits), pca)

    def _raw_add(self, keys, x):
        self._ensure_trained(x)
        if not self._store.is_trained:
            n = min(x.shape[0], self._train_count())
            self._store.train(np.ascontiguousarray(x[np.random.default_rng(1234).choice(x.shape[0], n, replace=False)]
                                                   if n < x.shape[0] else x))
        self._index.add_with_ids(x, keys)
        self._store.add_with_ids(x, keys)

    def _raw_remove(self, keys):
        """Rows leave the SQ8 copy and the key columns for real; their fast-scan codes stay until more
        than ``STALE_SHARE`` of the codes are stale, then the codes are rebuilt from the SQ8 copy.
        (FAISS 1.15's ``remove_ids`` on fast-scan lists breaks later adds: rows added after a removal
        are never found, so it is not used.)"""
        self._store.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(keys)))
        self._keys, self._refs = self._keys[self._alive], self._refs[self._alive]
        self._alive = self._alive[self._alive]
        if self._index.ntotal - self._store.ntotal > STALE_SHARE * max(1, self._index.ntotal):
            live, x = self._stored_rows()
            self._index.reset()
            if live.size:
                self._index.add_with_ids(np.ascontiguousarray(x), live)

    def _raw_search(self, q, k):
        kc = max(k, k * int(self.params["k_factor"]))
        _, cand = self._index.search(q, kc, params=_ivf_params(self.params["nprobe"]))
        # the SQ8 copy holds exactly the live rows, in key order (``_raw_remove`` compacts both)
        pos = np.minimum(np.searchsorted(self._keys, cand), max(0, self._keys.size - 1))
        if self._index.ntotal != self._store.ntotal:  # stale codes of removed rows
            cand = np.where((cand >= 0) & (self._keys.size > 0) & (self._keys[pos] == cand), cand, -1)
        ok = cand >= 0
        scores = np.full(cand.shape, -np.inf, np.float32)
        if ok.any() and SQ8_DIRECT:
            self._score_sq8(q, pos, ok, scores)
        elif ok.any():
            vecs = self._store.reconstruct_batch(np.ascontiguousarray(cand[ok]))
            scores[ok] = np.einsum("ij,ij->i", vecs, q[np.nonzero(ok)[0]])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top_s = np.take_along_axis(scores, order, axis=1)
        top_k = np.take_along_axis(cand, order, axis=1)
        top_k[~np.isfinite(top_s)] = -1
        top_s[~np.isfinite(top_s)] = 0.0
        if top_s.shape[1] < k:  # fewer rows than k
            pad = k - top_s.shape[1]
            top_s = np.pad(top_s, ((0, 0), (0, pad)))
            top_k = np.pad(top_k, ((0, 0), (0, pad)), constant_values=-1)
        return top_s, top_k

    def _score_sq8(self, q: np.ndarray, pos: np.ndarray, ok: np.ndarray, out: np.ndarray) -> None:
        """Inner products of the queries with their candidates' 8-bit codes, read in place: the
        decoded row is ``vmin + (code + 0.5) / 255 * vdiff`` per dimension (FAISS ``QT_8bit``), so a
        score is one uint8 row times a per-query weight vector, ~4x cheaper than ``reconstruct_batch``
        through the id map's hash table."""
        sq_index = faiss.downcast_index(self._store.index)
        n, width = int(sq_index.ntotal), int(sq_index.code_size)
        codes = faiss.rev_swig_ptr(sq_index.codes.data(), n * width).reshape(n, width)
        trained = faiss.vector_to_array(sq_index.sq.trained).astype(np.float32)
        vmin, step = trained[:self.dim], trained[self.dim:] / 255.0
        for r in np.nonzero(ok.any(axis=1))[0]:
            w = q[r] * step
            sel = ok[r]
            # einsum, not ``@``: OpenBLAS threads a matrix-vector product of > ~1000 rows and spins
            # (7 ms CPU for 1280 rows on the shared 2-core box, against 0.5 ms here)
            out[r, sel] = (np.einsum("ij,j->i", codes[pos[r, sel]].astype(np.float32), w)
                           + (float(np.dot(q[r], vmin)) + 0.5 * float(w.sum())))

    def _range_target(self):
        return self._store

    def _range_params(self):
        return None  # every SQ8 row is scanned: a range search does not depend on the shortlist

    def _stored_rows(self) -> tuple[np.ndarray, np.ndarray]:
        keys = np.ascontiguousarray(self._keys[self._alive])
        if keys.size == 0:
            return keys, np.zeros((0, self.dim), np.float32)
        return keys, self._store.reconstruct_batch(keys)

    def _extra_sections(self):
        return {"refine": faiss.serialize_index(self._store).tobytes()}

    def _load_extra(self, sections):
        if "refine" not in sections:
            raise ValueError("the SQ8 re-scoring copy is missing")
        self._store = _read_faiss(sections["refine"], False, "SQ8 re-scoring copy")
        if not isinstance(self._store, faiss.IndexIDMap2) or self._store.d != self.dim \
                or self._store.ntotal != self._keys.size or self._index.ntotal < self._store.ntotal:
            raise ValueError("the SQ8 re-scoring copy does not match the shortlist")


class BinaryIVFIndex(_IVFMixin, _KeyedIndex):
    """Hamming distance, inverted file over binary k-means cells (factory ``BIVF{nlist}``); codes
    are stored whole, so distances are exact (recall < 1 only from the cells not probed)."""

    metric = Metric.HAMMING
    plan_kind = "binary-ivf"
    binary = True
    ranged = False  # FAISS's binary IVF range search takes no search parameters (nprobe)

    def __init__(self, dim: int, params: dict | None = None):
        if dim % 8:
            raise ValueError("binary index dimension must be a multiple of 8 bits")
        p = {"nlist": 1024, "nprobe": 128, "train_size": 200_000, **(params or {})}
        p["factory"] = _factory(self.plan_kind, p)
        super().__init__(dim, p)
        self.kind = p["factory"]

    def _new_raw(self):
        try:
            index = faiss.index_binary_factory(self.dim, self.params["factory"])
        except RuntimeError:
            raise ValueError(f"bad FAISS binary factory string {self.params['factory']!r}") from None
        if not isinstance(index, faiss.IndexBinaryIVF):
            raise ValueError(f"factory string {self.params['factory']!r} is not a binary IVF index")
        return index


RETIRED = ("hnsw", "binary-hnsw")  # kinds earlier versions wrote, never chosen (see benchmarks/index_scale.py)
APPROXIMATE = {cls.plan_kind: cls for cls in (PQ4SQ8Index, IVFSQIndex, IVFPQIndex, BinaryIVFIndex)}


def load_index(data: bytes, dim: int, metric: Metric) -> VectorIndex:
    """Any index this module writes, from its ``to_bytes``: ``IndexCorruptError`` for unreadable
    bytes, ``IndexMismatchError`` for another kind, metric, dimension or an older format."""
    box = container.unpack(data, FAMILY, VERSION)
    kind, held = str(box.get("kind")), str(box.get("metric"))
    if held != metric.value:
        raise IndexMismatchError(f"the index file holds a {kind} index for {held}, not for {metric.value}; "
                                 f"{container.REBUILD}")
    if kind == "flat":
        return BinaryIndex.from_bytes(data, dim) if metric is Metric.HAMMING else FloatIndex.from_bytes(data, dim)
    cls = APPROXIMATE.get(kind)
    if cls is None:
        retired = " (no longer built: this version never chose it)" if kind in RETIRED else ""
        raise IndexMismatchError(f"unknown index kind {kind!r}{retired}; {container.REBUILD}")
    return cls.from_bytes(data, dim)
