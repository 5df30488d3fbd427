"""Index type as a pure function of (row count, dimension, metric, memory budget).

Every approximate plan carries a FAISS factory string (``IndexPlan.factory``, faiss contrib
style: ``"PCAR256,IVF1,PQ64x4fs,Refine(SQ8)"``, ``"IVF1024,SQ8"``, ``"IVF1024,PQ32x8"``, ``"BIVF2048"``)
and its search-time parameters apart from it (``IndexPlan.search_params``: ``nprobe``,
``k_factor_rf``); ``make_index`` builds the index from them through ``faiss.index_factory``.

The rule
--------
Cosine (float vectors, ``dim`` floats per row). The figures are ``benchmarks/index_scale.py``
on SSCD-like 512-d descriptors with copies displaced the way real transformed copies are
(cosine ~0.4-0.95 to their source): the hard case for any index that routes a query to a part
of the collection, since a copy at cosine 0.5 shares little of its direction with its source.

1. ``flat`` (exact) while ``count <= FLAT_MAX`` (100 000) and it fits the budget: the reference
   the others are measured against, no training, ~12 ms CPU a 512-d query at 100 k rows.
2. ``pq4-sq8`` up to ``PQ4_MAX`` (2 M rows), or below ``FLAT_MAX`` when floats do not fit: every
   row's 4-bit PQ code is scanned with SIMD fast-scan, and the top ``k * k_factor`` candidates
   (``pq4_k_factor``: 32 up to 1 M rows, then growing with the rows) are re-scored against 8-bit
   scalar-quantised vectors, so returned scores are within ~5e-3 of exact (calibrated thresholds
   hold) and no copy is lost to a cell that was not probed. The codes are of the vectors
   projected on their ``dim / 2`` main axes, randomly rotated (``PCAR256`` for 512-d, ``pq4_pca``),
   in ``dim / 8`` sub-quantisers of 4 dimensions (32 B): that ranks a copy's source as high as
   ``dim / 4`` codes of the full vectors (64 B, the plan before) at half the scan. ~580 B a row
   serialised; builds in ~2 min at 1 M rows. There it kept every copy exact search reports (268
   of 268) at 6.4 ms CPU a query (1 thread) against 15 ms for the plan before and 194 ms for exact
   search (``benchmarks/index_scale.py``, same run). Files of the earlier plan still load and
   search as they were built (their factory string is stored).
3. ``ivf-sq8`` beyond ``PQ4_MAX``, or when the PQ shortlist with its SQ8 copy does not fit:
   inverted lists of 8-bit vectors (``dim`` bytes a row), scores within ~5e-3 of exact, cost
   sub-linear; recall depends on ``nprobe`` (1/8 of the cells), and on hard copies it is lower
   (0.79 of true copies at 300 k rows with IVF512 and nprobe 64, where ``pq4-sq8`` kept 0.97
   with a 32x shortlist).
4. ``ivfpq`` when even that does not fit: ``dim / 16``-byte PQ codes (64x smaller than floats),
   then smaller codes. Its scores are PQ estimates (``exact_scores`` False): hits must be
   re-scored (e.g. by re-embedding the reference) before a calibrated threshold is applied.
   IVF needs ``IVF_MIN`` rows to train; a smaller set that does not fit as floats gets a ``flat``
   plan with ``fits=False``.

Hamming (packed bits, ``dim`` bits per row):

1. ``flat`` (exact) up to ``BINARY_FLAT_MAX`` (2 M rows): a 256-bit hash is 32 bytes, a
   scan of a million of them is a few milliseconds of popcounts.
2. ``binary-ivf`` beyond: binary k-means cells, whole codes stored (distances exact, no
   memory overhead), real removal.

Kinds this rule no longer picks went to ``benchmarks/index_scale.py``: HNSW graphs over floats
(``HNSW32,Flat``, efSearch 128: at 100 k rows they kept 0.79 of the copies flat search reports,
``pq4-sq8`` all of them, at 4x its bytes and 40x its build time), binary HNSW and IVF-PQ with an
SQ8 re-scoring copy (never chosen).

``memory_bytes`` is the budget for the index itself (``Settings.index_memory_mb``; the caller
decides what share of the machine that is); ``None`` means "no limit given", and only the counts
decide. ``expected_bytes`` is the in-memory estimate (vectors, codes, id maps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from scanner.types import Metric

FLAT_MAX = 100_000
IVF_MIN = 20_000
BINARY_FLAT_MAX = 2_000_000

PQ4_MAX = 2_000_000
PQ4_K_FACTOR = 32
PQ4_TRAIN = 65_536

_ID_BYTES = 48  # IDMap2 id + reverse map entry (FloatIndex/BinaryIndex)
_ROW_BYTES = 17  # row key, reference id, alive flag (approximate indexes)


@dataclass(frozen=True)
class IndexPlan:
    """Which index to build and with what parameters (``make_index`` builds it).

    Approximate kinds carry a FAISS factory string (faiss contrib style: ``params["factory"]``,
    e.g. ``"PCAR256,IVF1,PQ64x4fs,Refine(SQ8)"``, ``"IVF1024,SQ8"``, ``"IVF1024,PQ32x8"``, ``"BIVF1024"``) that
    ``faiss.index_factory`` builds, and the search-time parameters apart from it
    (``search_params``: ``nprobe``/``efSearch``, FAISS ``ParameterSpace`` names)."""

    kind: str  # "flat", "pq4-sq8", "ivf-sq8", "ivfpq", "binary-ivf"
    metric: Metric
    dim: int
    count: int
    params: dict[str, Any] = field(default_factory=dict)
    expected_bytes: int = 0
    exact: bool = True  # every true neighbour is found
    exact_scores: bool = True  # returned scores are true metric values
    fits: bool = True  # expected_bytes within memory_bytes (always True without a budget)
    reason: str = ""

    @property
    def factory(self) -> str:
        """The FAISS factory string of the index (``"Flat"``/``"BFlat"`` for the exact kinds)."""
        if self.kind == "flat":
            return "BFlat" if self.metric is Metric.HAMMING else "Flat"
        return str(self.params.get("factory") or factory_string(self.kind, self.params))

    @property
    def search_params(self) -> dict[str, int]:
        """Search-time parameters by their FAISS ``ParameterSpace`` names (empty for flat)."""
        return search_params(self.kind, self.params)


def factory_string(kind: str, params: dict[str, Any]) -> str:
    """The FAISS factory string for ``kind`` built with ``params`` (``nlist``, ``m``, ``nbits``; ``pca``
    for pq4-sq8)."""
    if kind == "ivf-sq8":
        return f"IVF{int(params.get('nlist', 1024))},SQ8"
    if kind == "pq4-sq8":
        pca = int(params.get("pca") or 0)
        return (f"{f'PCAR{pca},' if pca else ''}IVF{int(params.get('nlist', 1))},PQ{int(params['m'])}x4fs,"
                "Refine(SQ8)")
    if kind == "ivfpq":
        return f"IVF{int(params.get('nlist', 1024))},PQ{int(params['m'])}x{int(params.get('nbits', 8))}"
    if kind == "binary-ivf":
        return f"BIVF{int(params.get('nlist', 1024))}"
    raise ValueError(f"no factory string for index kind {kind!r}")


def search_params(kind: str, params: dict[str, Any]) -> dict[str, int]:
    """Search-time parameters of ``kind`` by FAISS ``ParameterSpace`` name."""
    if kind in ("ivf-sq8", "ivfpq", "binary-ivf"):
        return {"nprobe": int(params.get("nprobe", 128))}
    if kind == "pq4-sq8":
        return {"nprobe": int(params.get("nprobe", 1)), "k_factor_rf": int(params.get("k_factor", PQ4_K_FACTOR))}
    return {}


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


def pq4_k_factor(count: int) -> int:
    """Shortlist of ``pq4-sq8`` per result (``k * k_factor`` rows re-scored): 32 up to 1 M rows (measured
    there: every true copy kept, ``benchmarks/index_scale.py``), then growing with the rows, since a true
    copy's PQ estimate competes with every other row's (an extrapolation: 64 at 2 M)."""
    return _pow2(PQ4_K_FACTOR * max(1, count) / 1_000_000, PQ4_K_FACTOR, 256)


def flat_bytes(count: int, dim: int, metric: Metric) -> int:
    row = dim // 8 if metric is Metric.HAMMING else 4 * dim
    return count * (row + _ID_BYTES)


def ivfpq_bytes(count: int, dim: int, nlist: int, m: int, nbits: int) -> int:
    code = math.ceil(m * nbits / 8)
    return count * (code + 8 + _ROW_BYTES) + 4 * dim * (nlist + (2 ** nbits))


def pq4_pca(dim: int) -> int:
    """Main axes ``pq4-sq8`` codes (``PCAR{dim/2}``; 0 = none: a dimension not a multiple of 8)."""
    return dim // 2 if dim % 8 == 0 and dim >= 16 else 0


def pq4sq8_bytes(count: int, dim: int, m: int, pca: int = 0) -> int:
    """4-bit codes (m / 2 bytes), the SQ8 copy (dim bytes), both id maps and the PCA matrix."""
    return count * (m // 2 + 8 + dim + _ID_BYTES + _ROW_BYTES) + 4 * dim * 16 + 64 * m + 4 * (dim + 1) * pca


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
    (``overrides`` replace them, e.g. ``m=16`` for ivfpq; ``params["factory"]`` is derived from
    the result unless given)."""
    metric = _check(count, dim, metric)
    budget = math.inf if memory_bytes is None else float(memory_bytes)
    nlist = int(overrides.get("nlist", ivf_nlist(count)))
    ivf = {"nlist": nlist, "nprobe": ivf_nprobe(nlist), "train_size": _train_size(count, nlist)}
    binary = metric is Metric.HAMMING
    exact = exact_scores = True
    if kind == "flat":
        params: dict[str, Any] = {}
        size = flat_bytes(count, dim, metric)
    elif kind == "ivf-sq8" and not binary:
        params = {**ivf, **overrides}
        size = ivfsq_bytes(count, dim, nlist)
        exact = False
    elif kind == "pq4-sq8" and not binary:
        pca = int(overrides.get("pca", pq4_pca(dim)))
        params = {"nlist": 1, "nprobe": 1, "pca": pca, "m": pq_m(pca, pca // 4) if pca else pq_m(dim, max(1, dim // 4)),
                  "k_factor": pq4_k_factor(count), "train_size": min(count, PQ4_TRAIN), **overrides}
        size = pq4sq8_bytes(count, dim, int(params["m"]), pca)
        exact = False
    elif kind == "ivfpq" and not binary:
        params = {**ivf, "m": pq_m(dim), "nbits": 8, **overrides}
        size = ivfpq_bytes(count, dim, nlist, int(params["m"]), int(params["nbits"]))
        exact, exact_scores = False, False
    elif kind == "binary-ivf" and binary:
        params = {**ivf, **overrides}
        size = binary_ivf_bytes(count, dim, nlist)
        exact = False
    else:
        raise ValueError(f"no {kind!r} index for {metric.value}")
    if kind != "flat":
        params.setdefault("factory", factory_string(kind, params))
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
    why = f"{count} > {FLAT_MAX} rows" if count > FLAT_MAX else "float vectors do not fit the memory budget"
    if count < IVF_MIN:
        return replace(flat, fits=False, reason=f"{why}, but {count} rows are too few to train IVF (needs {IVF_MIN})")
    if count <= PQ4_MAX:
        pq4 = plan_for("pq4-sq8", *args, reason=f"{why}: 4-bit PQ fast-scan over every row, top candidates "
                       "re-scored against 8-bit vectors")
        if pq4.fits:
            return pq4
        why = f"{why}, nor does the PQ shortlist with its 8-bit copy"
    else:
        why = f"{count} > {PQ4_MAX} rows (a full fast-scan would cost more than probing cells)"
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
