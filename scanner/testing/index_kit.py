"""The index contract kit: checks every index kind in ``scanner.index`` must pass.

``index_kinds()`` lists every kind: the exact FAISS indexes (float and binary), every approximate
kind ``make_index`` can build (``faiss_index.APPROXIMATE``, each from its plan's FAISS factory string,
with small cells so a few dozen rows train them), the audio landmark index and the
local keypoint index (flat, and trained IVF-PQ). Each ``IndexKind`` knows how to make rows for a
reference, how to search, and how to read its bytes back (the reader its detector uses).
``IndexKit(kind)`` offers one ``check_*`` method per contract clause:

* ``check_add_remove_ids``: ``ids()``/``len()`` follow adds and removals, removed references are
  never found, removing again removes nothing, and adding a reference back restores its results;
* ``check_shard_merge``: shards built from one empty (trained) index and merged search exactly like
  one index built from every row (a kind whose merge is refused by design must refuse with a
  ``ValueError`` instead of merging wrongly);
* ``check_byte_round_trip``: ``to_bytes`` read back holds the same ids, searches identically and
  serialises to the same bytes (empty indexes too);
* ``check_corrupt_bytes``: empty, foreign, truncated or padded bytes raise ``IndexCorruptError``
  and nothing else;
* ``check_range_search``: a kind that offers ``range_search`` returns exactly the rows an
  exhaustive top-k finds within the radius, tombstoned rows excluded (kinds without it say so with
  ``NotImplementedError``).

Searches are exhaustive (``k`` above the row count, every cell probed), so approximate kinds are
held to exact equality: any difference is a contract breach, not recall.

Anchors: faiss contrib (shard-then-merge from one trained empty index; ``IndexStore`` writes the
info file); ThreatExchange's index contract kept apart from the signal type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import numpy as np

from scanner.errors import IndexCorruptError
from scanner.index.base import VectorIndex
from scanner.types import Metric

FLOAT_DIM = 32
BINARY_DIM = 64  # bits
REFS = tuple(range(100, 112))  # reference ids of the kit's data
SHARD_SPLIT = 7  # REFS[:7] in one shard, the rest in the other
TRAIN_ROWS = 96  # rows an IVF kind's shared empty index is trained on
NLIST = 8  # cells of the IVF kinds under test (probed exhaustively)
LOCAL_TRAIN_ROWS = 5120  # the fewest keypoints LocalIndex.train accepts


@dataclass(frozen=True)
class IndexKind:
    """One index kind as the kit drives it."""

    name: str
    new: Callable[[], VectorIndex]  # an empty index, trained where the kind needs training
    load: Callable[[bytes], VectorIndex]  # the reader for ``to_bytes`` output (what the detector uses)
    rows: Callable[[int], tuple[np.ndarray, dict[str, np.ndarray]]]  # (vectors, extra) of one reference
    queries: Callable[[], Any]  # a batch of queries
    search: Callable[[VectorIndex, Any], Any]  # plain, comparable results for ``queries``
    found: Callable[[Any], set[int]]  # reference ids present in ``search`` results
    mergeable: bool = True  # False: ``merge`` is refused by design (with a ValueError)
    notes: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ row makers (deterministic per reference)


def _float_rows(ref: int, dim: int = FLOAT_DIM) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(ref)
    x = rng.normal(size=(1 + ref % 3, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), {}


def _binary_rows(ref: int, dim: int = BINARY_DIM) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(ref)
    return rng.integers(0, 256, (1 + ref % 3, dim // 8), dtype=np.uint8), {}


def _float_queries(dim: int = FLOAT_DIM) -> np.ndarray:
    rng = np.random.default_rng(7)
    near = np.concatenate([_float_rows(r, dim)[0][:1] for r in REFS[::3]])
    q = np.concatenate([near + rng.normal(0, 0.05, near.shape), rng.normal(size=(3, dim))]).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _binary_queries(dim: int = BINARY_DIM) -> np.ndarray:
    rng = np.random.default_rng(7)
    near = np.concatenate([_binary_rows(r, dim)[0][:1] for r in REFS[::3]])
    flips = np.zeros_like(near)
    flips[:, 0] = 1 << rng.integers(0, 8, len(near))  # one flipped bit each
    return np.concatenate([near ^ flips, rng.integers(0, 256, (3, dim // 8), dtype=np.uint8)])


def _vector_search(index: VectorIndex, queries: np.ndarray) -> list[dict[int, float]]:
    """Per query: reference id -> best score, over an exhaustive top-k (ties cannot reorder it)."""
    scores, ids = index.search(queries, 4 * len(REFS) + 8)
    out = []
    for srow, irow in zip(np.asarray(scores), np.asarray(ids)):
        best: dict[int, float] = {}
        for s, i in zip(srow.tolist(), irow.tolist()):
            if i >= 0:
                best[int(i)] = max(best.get(int(i), -np.inf), s) if index.metric is Metric.COSINE \
                    else min(best.get(int(i), np.inf), s)
        out.append(best)
    return out


def _vector_found(results: list[dict[int, float]]) -> set[int]:
    return {i for r in results for i in r}


def _landmark_rows(ref: int) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(ref)
    n = 20
    hashes = rng.integers(0, 1 << 16, (n, 1)).astype(np.int64)
    return hashes, {"t": rng.integers(0, 5000, n), "f": rng.integers(0, 3000, n), "dt": rng.integers(1, 200, n)}


def _landmark_queries() -> np.ndarray:
    picked = np.concatenate([_landmark_rows(r)[0][:5, 0] for r in REFS[::3]])
    return np.concatenate([picked, np.random.default_rng(7).integers(0, 1 << 16, 10)])


def _landmark_search(index, hashes: np.ndarray) -> list[tuple[int, ...]]:
    m = index.lookup(hashes)
    return sorted(zip(m.query.tolist(), m.ref.tolist(), m.t.tolist(), m.f.tolist(), m.dt.tolist()))


def _landmark_found(results) -> set[int]:
    return {r[1] for r in results}


def _local_rows(ref: int) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(ref)
    n = 24
    x = np.abs(rng.normal(size=(n, 128))).astype(np.float32) ** 2
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, {"xy": rng.uniform(0, 300, (n, 2)), "size": np.tile([320, 300], (n, 1))}


def _local_queries() -> np.ndarray:
    rng = np.random.default_rng(7)
    near = np.concatenate([_local_rows(r)[0][:4] for r in REFS[::3]])
    q = np.abs(near + rng.normal(0, 0.01, near.shape)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _local_search(index, queries: np.ndarray) -> list[tuple]:
    nb = index.search(queries, 6)
    return sorted(zip(nb.query_row.tolist(), nb.ref_id.tolist(), nb.keypoint.tolist(),
                      np.round(nb.distance, 5).tolist(), nb.rank.tolist()))


def _local_found(results) -> set[int]:
    return {r[1] for r in results}


# ------------------------------------------------------------------ the kinds


def _trained(make: Callable[[], VectorIndex], rows: Callable[[int], tuple[np.ndarray, dict]]) -> VectorIndex:
    """An empty IVF index trained on ``TRAIN_ROWS`` rows, through the public contract only: IVF kinds
    train on their first ``add``, and remove rows for real."""
    index = make()
    x = np.concatenate([rows(10_000 + i)[0] for i in range(TRAIN_ROWS)])[:TRAIN_ROWS]
    index.add(np.full(len(x), 999_999, np.int64), x)
    index.remove(np.array([999_999]))
    return index


def _clone(template: VectorIndex, load: Callable[[bytes], VectorIndex]) -> Callable[[], VectorIndex]:
    data = template.to_bytes()
    return lambda: load(data)


def index_kinds() -> list[IndexKind]:
    """Every index kind of ``scanner.index``, ready for the kit."""
    from scanner.index import faiss_index as fi
    from scanner.index.choose import make_index, plan_for
    from scanner.index.landmarks import LandmarkIndex
    from scanner.index.local_index import LocalIndex

    kinds: list[IndexKind] = []
    vector = {
        Metric.COSINE: (FLOAT_DIM, _float_rows, _float_queries),
        Metric.HAMMING: (BINARY_DIM, _binary_rows, _binary_queries),
    }
    variants: list[tuple[str, str, Metric, dict]] = [
        ("flat-cosine", "flat", Metric.COSINE, {}), ("flat-hamming", "flat", Metric.HAMMING, {})]
    for plan_kind, cls in sorted(fi.APPROXIMATE.items()):
        variants.append((plan_kind, plan_kind, cls.metric, {}))
    for name, plan_kind, metric, extra in variants:
        dim, rows, queries = vector[metric]
        overrides = dict(extra)
        if "ivf" in plan_kind:
            overrides.update(nlist=NLIST, nprobe=NLIST)
        if plan_kind == "ivfpq":
            overrides.update(nbits=4)  # 16 PQ words: trainable from the kit's few rows
        plan = plan_for(plan_kind, TRAIN_ROWS, dim, metric, **overrides)
        load = partial(fi.load_index, dim=dim, metric=metric)
        make = partial(make_index, plan)
        trains = "ivf" in plan_kind or plan_kind == "pq4-sq8"  # quantisers train on the first add
        new = _clone(_trained(make, rows), load) if trains else make
        kinds.append(IndexKind(
            name, new, load, rows, queries, _vector_search, _vector_found,
            mergeable=plan_kind != "ivfpq",  # PQ codes are too lossy to re-encode: merge is refused
            notes={"plan": plan.kind, "factory": plan.factory, "params": str(plan.params)},
        ))
    kinds.append(IndexKind("landmark", LandmarkIndex, LandmarkIndex.from_bytes, _landmark_rows, _landmark_queries,
                           _landmark_search, _landmark_found))
    kinds.append(IndexKind("local-flat", lambda: LocalIndex(auto_train_rows=None),
                           partial(LocalIndex.from_bytes, dim=128), _local_rows, _local_queries, _local_search,
                           _local_found))
    kinds.append(IndexKind("local-ivfpq", _local_trained, partial(LocalIndex.from_bytes, dim=128), _local_rows,
                           _local_queries, _local_search, _local_found))
    return kinds


def _local_trained() -> VectorIndex:
    """A local index trained once on a sample (cached), as shards are built (``empty_like``)."""
    global _LOCAL_TEMPLATE
    if _LOCAL_TEMPLATE is None:
        from scanner.index.local_index import LocalIndex

        sample = np.concatenate([_local_rows(50_000 + i)[0] for i in range(LOCAL_TRAIN_ROWS // 24 + 1)])
        _LOCAL_TEMPLATE = LocalIndex(auto_train_rows=None)
        _LOCAL_TEMPLATE.train(sample, pq_bytes=8)  # 8-byte codes: 4x quicker to train than the default 32
    return _LOCAL_TEMPLATE.empty_like()


_LOCAL_TEMPLATE = None


# ------------------------------------------------------------------ the kit


class IndexKit:
    """The contract checks for one ``IndexKind``. Each ``check_*`` raises ``AssertionError`` on a breach."""

    CHECKS = ("add_remove_ids", "shard_merge", "byte_round_trip", "corrupt_bytes", "range_search")

    def __init__(self, kind: IndexKind):
        self.kind = kind

    def __repr__(self) -> str:
        return f"IndexKit({self.kind.name})"

    def build(self, refs: tuple[int, ...] = REFS, index: VectorIndex | None = None) -> VectorIndex:
        """``index`` (default: a new one) with every row of ``refs``, added in one call like the API does."""
        index = index if index is not None else self.kind.new()
        parts = [(ref, *self.kind.rows(ref)) for ref in refs]
        if parts:
            ids = np.concatenate([np.full(len(x), ref, np.int64) for ref, x, _ in parts])
            vectors = np.concatenate([x for _, x, _ in parts])
            keys = set(parts[0][2])
            extra = {k: np.concatenate([np.asarray(e[k]) for _, _, e in parts]) for k in keys}
            index.add(ids, vectors, extra)
        return index

    def results(self, index: VectorIndex) -> Any:
        return self.kind.search(index, self.kind.queries())

    def check_add_remove_ids(self) -> None:
        """ids/len follow add and remove; removed references are not found; adding back restores results."""
        name = self.kind.name
        empty = self.kind.new()
        assert len(empty) == 0 and empty.ids().size == 0, f"{name}: a new index is not empty"
        index = self.build()
        assert index.ids().tolist() == sorted(REFS), f"{name}: ids() {index.ids().tolist()} after adding {REFS}"
        assert len(index) == len(REFS)
        before = self.results(index)
        assert self.kind.found(before) >= set(REFS[::3]), f"{name}: queries near stored rows found nothing"
        gone = (REFS[0], REFS[3])
        n_rows = sum(len(self.kind.rows(r)[0]) for r in gone)
        removed = index.remove(np.array([*gone, 999_998]))
        assert removed == n_rows, f"{name}: remove() reported {removed} rows, the references had {n_rows}"
        assert index.ids().tolist() == sorted(set(REFS) - set(gone)) and len(index) == len(REFS) - len(gone)
        assert not self.kind.found(self.results(index)) & set(gone), f"{name}: a removed reference is still found"
        assert index.remove(np.array(gone)) == 0, f"{name}: removing twice removed rows again"
        self.build(gone, index)
        assert index.ids().tolist() == sorted(REFS)
        assert self.results(index) == before, f"{name}: results differ after removing and adding references back"

    def check_shard_merge(self) -> None:
        """Shards merged search exactly like one index of every row (or merge is refused with ValueError)."""
        name = self.kind.name
        whole = self.build()
        a, b = self.build(REFS[:SHARD_SPLIT]), self.build(REFS[SHARD_SPLIT:])
        if not self.kind.mergeable:
            try:
                a.merge(b)
            except ValueError:
                return
            raise AssertionError(f"{name}: merge should be refused for this kind, but it went through")
        a.merge(b)
        assert a.ids().tolist() == whole.ids().tolist(), f"{name}: merged ids {a.ids().tolist()}"
        assert len(a) == len(whole)
        assert self.results(a) == self.results(whole), f"{name}: merged shards search differently from one index"
        a.merge(self.kind.new())  # an empty shard changes nothing
        assert self.results(a) == self.results(whole)

    def check_byte_round_trip(self) -> None:
        """``load(to_bytes())`` holds the same ids, searches identically and serialises to the same bytes."""
        name = self.kind.name
        for index in (self.build(), self.kind.new()):
            data = index.to_bytes()
            assert isinstance(data, bytes) and data, f"{name}: to_bytes() gave {type(data).__name__}"
            again = self.kind.load(data)
            assert type(again) is type(index) and again.kind == index.kind, f"{name}: read back as {again.kind}"
            assert again.ids().tolist() == index.ids().tolist()
            assert self.results(again) == self.results(index), f"{name}: search changes after a byte round trip"
            assert again.to_bytes() == data, f"{name}: a loaded index serialises to other bytes"

    def corrupt_samples(self) -> dict[str, bytes]:
        data = self.build().to_bytes()
        return {
            "empty": b"",
            "text": b"this is not an index, just some text " * 4,
            "zeros": bytes(256),
            "first 16 bytes": data[:16],
            "truncated to half": data[: len(data) // 2],
            "last byte missing": data[:-1],
        }

    def check_corrupt_bytes(self) -> None:
        """Unreadable bytes raise ``IndexCorruptError`` (one error type the caller can handle), nothing else."""
        wrong = []
        for label, data in self.corrupt_samples().items():
            try:
                self.kind.load(data)
            except IndexCorruptError:
                continue
            except Exception as exc:  # noqa: BLE001 - the point is to report which type escaped
                wrong.append(f"{label}: {type(exc).__name__}: {str(exc)[:80]}")
            else:
                wrong.append(f"{label}: read without error")
        assert not wrong, f"{self.kind.name}: corrupt bytes must raise IndexCorruptError; got " + "; ".join(wrong)

    def check_range_search(self) -> None:
        """``range_search`` == the exhaustive top-k cut at the radius (also after a removal)."""
        name = self.kind.name
        index = self.build()
        queries = self.kind.queries()
        try:
            index.range_search(queries, 0.0)
        except NotImplementedError:
            return
        index.remove(np.array([REFS[0]]))
        scores, ids = index.search(queries, 4 * len(REFS) + 8)
        cosine = index.metric is Metric.COSINE
        radius = 0.5 if cosine else BINARY_DIM // 3
        hits = index.range_search(queries, radius)
        assert hits.lims.shape == (len(queries) + 1,), f"{name}: range_search lims has shape {hits.lims.shape}"
        for row, (s, i) in enumerate(hits.per_query()):
            keep = (scores[row] >= radius) if cosine else (scores[row] <= radius)
            want = sorted(zip(ids[row][keep & (ids[row] >= 0)].tolist(), np.asarray(scores[row][keep]).tolist()))
            got = sorted(zip(i.tolist(), np.asarray(s).tolist()))
            assert [g[0] for g in got] == [w[0] for w in want], f"{name}: range_search row {row} found {got}, " \
                                                                 f"the top-k within {radius} is {want}"
            np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], atol=1e-5,
                                       err_msg=f"{name}: range_search scores differ from search")
            assert REFS[0] not in i.tolist(), f"{name}: range_search returns a removed reference"

    def run_all(self) -> None:
        """Every check in order (for use outside pytest)."""
        for check in self.CHECKS:
            getattr(self, f"check_{check}")()
