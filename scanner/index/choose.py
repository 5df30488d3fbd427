"""Index type as a pure function of (row count, dimension, metric, memory budget).

The rule
--------
Cosine (float vectors, ``dim`` floats per row):

1. ``flat`` (exact) while ``count <= FLAT_MAX`` (100 000) and it fits the budget. Exact
   search is the reference the others are measured against, needs no training and no
   tuning, and at this size a brute-force 512-d query costs ~17 ms on this shared 2-core
   box (one FAISS thread; ~0.14 s at 1 M rows, see ``benchmarks/index_scale.py``) --
   small next to computing the query's embedding.
2. ``hnsw`` up to ``HNSW_MAX`` (300 000 rows) when it fits: full vectors plus a graph of
   about ``8 * M`` bytes per row; returned scores are exact (recall < 1 only from missed
   neighbours), so calibrated thresholds still hold; ~1 ms a query. Removal leaves
   tombstones that are filtered inside the search (rebuilt away at 25 %). The bound is
   measured (``benchmarks/index_scale.py`` data, M=32, efConstruction=40): at 300 k rows
   efSearch=128 finds every near-copy first and 99 % of the top 10 (efSearch=64 missed 4 %
   of copies); at 1 M rows the graph missed 2 % of copies even at efSearch=512 (8 % at
   64), while ``ivf-sq8`` missed none, builds in 1/15 of the time and takes 1/4 of the
   memory. A larger efConstruction would stretch the band at twice the build time
   (~40 s per 100 k rows here already).
3. ``ivf-sq8`` beyond that, or whenever the float vectors or the graph do not fit the
   budget: inverted lists of 8-bit scalar-quantised vectors (``dim`` bytes a row, 4x
   smaller than floats). Scores stay within ~5e-3 of exact, so calibrated thresholds
   hold; recall depends only on ``nprobe`` (1/8 of the cells). Trains on a sample at build.
4. ``ivfpq`` when even that does not fit: ``dim / 16``-byte PQ codes (64x smaller than
   floats), then smaller codes. Its scores are PQ estimates (``exact_scores`` False, off by
   up to ~0.3 cosine on embedding-like data; see the benchmark): hits must be re-scored
   (e.g. by re-embedding the reference) before a calibrated threshold is applied. (IVF-PQ with an
   in-memory SQ8 re-scoring copy, ``refine="sq8"``, is available but never chosen: it
   holds the same SQ8 bytes as ``ivf-sq8`` plus the codes, with lower recall.)
   IVF needs ``IVF_MIN`` rows to train; a smaller set that does not fit as floats gets a
   ``flat`` plan with ``fits=False``.

Hamming (packed bits, ``dim`` bits per row):

1. ``flat`` (exact) up to ``BINARY_FLAT_MAX`` (2 M rows): a 256-bit hash is 32 bytes, a
   scan of a million of them is a few milliseconds of popcounts.
2. ``binary-ivf`` beyond: binary k-means cells, whole codes stored (distances exact, no
   memory overhead), real removal. ``binary-hnsw`` exists (``make_index`` builds it when
   asked) but is not chosen: its graph costs ~5x the memory of the codes, removes rows
   only as tombstones and builds slowly, for a latency gain flat and IVF do not need.

``memory_bytes`` is the budget for the index itself (the caller decides what share of
the machine that is); ``None`` means "no limit given", and only the counts decide.
``expected_bytes`` is the in-memory estimate (vectors, codes, graph links, id maps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from scanner.types import Metric

FLAT_MAX = 100_000
HNSW_MAX = 300_000
IVF_MIN = 20_000
BINARY_FLAT_MAX = 2_000_000

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 128
BINARY_HNSW_M = 16

_ID_BYTES = 48  # IDMap2 id + reverse map entry (FloatIndex/BinaryIndex)
_ROW_BYTES = 17  # row key, reference id, alive flag (approximate indexes)


@dataclass(frozen=True)
class IndexPlan:
    """Which index to build and with what parameters (``make_index`` builds it)."""

    kind: str  # "flat", "hnsw", "ivf-sq8", "ivfpq", "binary-ivf", "binary-hnsw"
    metric: Metric
    dim: int
    count: int
    params: dict[str, Any] = field(default_factory=dict)
    expected_bytes: int = 0
    exact: bool = True  # every true neighbour is found
    exact_scores: bool = True  # returned scores are true metric values
    fits: bool = True  # expected_bytes within memory_bytes (always True without a budget)
    reason: str = ""


def _pow2(x: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, 2 ** round(math.log2(max(1.0, x))))))


def ivf_nlist(count: int) -> int:
    """About sqrt(count) cells (power of two, 64..16384): lists of ~sqrt(count) rows,
    cheap k-means training (cost grows with nlist squared through the sample size)."""
    return _pow2(math.sqrt(max(1, count)), 64, 16384)


def ivf_nprobe(nlist: int) -> int:
    """Cells visited per query: 1/8 of them (at least 16, at most 512)."""
    return int(min(512, max(16, nlist // 8)))


def pq_m(dim: int, bytes_per_row: int | None = None) -> int:
    """PQ sub-quantisers (one byte each): ``dim / 16`` -- 32 B for 512-d. (``dim / 8`` codes
    rank better but their 8-d codebooks train ~10x slower in FAISS on this machine; with
    SQ8 re-scoring of 16x the candidates, 16-d sub-vectors are enough.) Or the largest
    divisor of ``dim`` not above ``bytes_per_row``."""
    target = max(1, dim // 16 if bytes_per_row is None else bytes_per_row)
    for m in range(min(target, dim), 0, -1):
        if dim % m == 0:
            return m
    return 1


def flat_bytes(count: int, dim: int, metric: Metric) -> int:
    row = dim // 8 if metric is Metric.HAMMING else 4 * dim
    return count * (row + _ID_BYTES)


def hnsw_bytes(count: int, dim: int, metric: Metric, m: int) -> int:
    row = dim // 8 if metric is Metric.HAMMING else 4 * dim
    links = int(2 * m * 4 * (1 + 1.0 / m)) + 16  # level 0 has 2M links, upper levels ~1/M of that
    return count * (row + links + _ID_BYTES + _ROW_BYTES)


def ivfpq_bytes(count: int, dim: int, nlist: int, m: int, nbits: int, refine: str) -> int:
    refine_row = {"sq8": dim + _ID_BYTES, "fp16": 2 * dim + _ID_BYTES}.get(refine, 0)
    code = math.ceil(m * nbits / 8)
    return count * (code + 8 + _ROW_BYTES + refine_row) + 4 * dim * (nlist + (2 ** nbits))


def ivfsq_bytes(count: int, dim: int, nlist: int) -> int:
    return count * (dim + 8 + _ROW_BYTES) + 4 * dim * nlist + 8 * dim


def binary_ivf_bytes(count: int, dim: int, nlist: int) -> int:
    return count * (dim // 8 + 8 + _ROW_BYTES) + nlist * (dim // 8)


def _train_size(count: int, nlist: int) -> int:
    return int(min(count, max(50 * nlist, 40 * 256), 200_000))


def _check(count: int, dim: int, metric: Metric | str) -> Metric:
    metric = Metric(metric)
    if count < 0:
        raise ValueError("count must be >= 0")
    if dim <= 0 or (metric is Metric.HAMMING and dim % 8):
        raise ValueError(f"bad dimension {dim} for {metric.value}")
    return metric


def plan_for(kind: str, count: int, dim: int, metric: Metric | str, memory_bytes: int | None = None,
             reason: str = "", **overrides: Any) -> IndexPlan:
    """The plan for a given ``kind`` at this size: the parameters ``choose_index`` would use
    (``overrides`` replace them; e.g. ``m=16`` or ``refine="sq8"`` for ivfpq)."""
    metric = _check(count, dim, metric)
    budget = math.inf if memory_bytes is None else float(memory_bytes)
    nlist = int(overrides.get("nlist", ivf_nlist(count)))
    ivf = {"nlist": nlist, "nprobe": ivf_nprobe(nlist), "train_size": _train_size(count, nlist)}
    binary = metric is Metric.HAMMING
    exact = exact_scores = True
    if kind == "flat":
        params: dict[str, Any] = {}
        size = flat_bytes(count, dim, metric)
    elif kind in ("hnsw", "binary-hnsw") and (kind == "binary-hnsw") == binary:
        m = BINARY_HNSW_M if binary else HNSW_M
        params = {"M": m, "ef_construction": 64 if binary else HNSW_EF_CONSTRUCTION,
                  "ef_search": 64 if binary else HNSW_EF_SEARCH}
        params.update(overrides)
        size = hnsw_bytes(count, dim, metric, int(params["M"]))
        exact = False
    elif kind == "ivf-sq8" and not binary:
        params = {**ivf, **overrides}
        size = ivfsq_bytes(count, dim, nlist)
        exact = False
    elif kind == "ivfpq" and not binary:
        params = {**ivf, "m": pq_m(dim), "nbits": 8, "refine": "none", "k_factor": 16, **overrides}
        size = ivfpq_bytes(count, dim, nlist, int(params["m"]), int(params["nbits"]), str(params["refine"]))
        exact, exact_scores = False, params["refine"] != "none"
    elif kind == "binary-ivf" and binary:
        params = {**ivf, **overrides}
        size = binary_ivf_bytes(count, dim, nlist)
        exact = False
    else:
        raise ValueError(f"no {kind!r} index for {metric.value}")
    return IndexPlan(kind, metric, dim, count, params, int(size), exact=exact, exact_scores=exact_scores,
                     fits=size <= budget, reason=reason or f"{kind} requested")


def choose_index(count: int, dim: int, metric: Metric | str, memory_bytes: int | None = None) -> IndexPlan:
    """The index plan for ``count`` rows of ``dim`` (floats, or bits for Hamming); see module doc."""
    metric = _check(count, dim, metric)
    args = (count, dim, metric, memory_bytes)
    if metric is Metric.HAMMING:
        return _choose_binary(*args)
    return _choose_float(*args)


def _choose_float(count: int, dim: int, metric: Metric, memory_bytes: int | None) -> IndexPlan:
    args = (count, dim, metric, memory_bytes)
    flat = plan_for("flat", *args, reason=f"{count} <= {FLAT_MAX} rows: exact search")
    if count <= FLAT_MAX and flat.fits:
        return flat
    hnsw = plan_for("hnsw", *args, reason=f"{FLAT_MAX} < {count} <= {HNSW_MAX} rows: HNSW graph over full vectors")
    if count <= HNSW_MAX and hnsw.fits:
        return hnsw
    why = f"{count} > {HNSW_MAX} rows" if count > HNSW_MAX else "float vectors do not fit the memory budget"
    if count < IVF_MIN:
        return replace(flat, fits=False, reason=f"{why}, but {count} rows are too few to train IVF (needs {IVF_MIN})")
    sq = plan_for("ivf-sq8", *args, reason=f"{why}: IVF over 8-bit scalar-quantised vectors")
    if sq.fits:
        return sq
    sizes = [pq_m(dim)] + [pq_m(dim, b) for b in (16, 8) if pq_m(dim, b) < pq_m(dim)]
    for m in sizes:
        pq = plan_for("ivfpq", *args, m=m, reason=f"{why}, nor do 8-bit vectors: IVF-PQ with {m}-byte codes "
                      "(approximate scores)")
        if pq.fits:
            return pq
    return replace(pq, reason=f"{why}: even the smallest IVF-PQ does not fit the memory budget")


def _choose_binary(count: int, dim: int, metric: Metric, memory_bytes: int | None) -> IndexPlan:
    args = (count, dim, metric, memory_bytes)
    flat = plan_for("flat", *args, reason=f"{count} <= {BINARY_FLAT_MAX} rows: exact scan")
    if count <= BINARY_FLAT_MAX and flat.fits:
        return flat
    if count < ivf_nlist(count) * 39:  # not enough rows to train the cells
        return replace(flat, reason="binary codes do not fit the memory budget and are too few for IVF")
    why = f"{count} > {BINARY_FLAT_MAX} rows" if count > BINARY_FLAT_MAX else "flat codes do not fit the budget"
    return plan_for("binary-ivf", *args, reason=f"{why}: binary IVF (exact distances within probed cells)")


def make_index(plan: IndexPlan):
    """An empty index for ``plan`` (IVF kinds train on their first ``add``)."""
    from scanner.index import faiss_index as fi

    if plan.kind == "flat":
        return fi.BinaryIndex(plan.dim) if plan.metric is Metric.HAMMING else fi.FloatIndex(plan.dim)
    cls = fi.APPROXIMATE.get(plan.kind)
    if cls is None:
        raise ValueError(f"unknown index kind {plan.kind!r}")
    if cls.metric is not plan.metric:
        raise ValueError(f"{plan.kind} is a {cls.metric.value} index, not {plan.metric.value}")
    return cls(plan.dim, dict(plan.params))
