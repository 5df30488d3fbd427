"""The index contract every index type implements.

Rows are keyed by int64 reference ids; one reference may own several rows (several
faces, many local descriptors, many audio landmarks). ``extra`` carries per-row side
arrays an index type may need (landmark times, keypoint positions); indexes that do
not need them ignore them.

Every index belongs to a ``family`` (the container family its bytes are written in,
``scanner.index.container``). Nearest-neighbour families answer ``search`` with a typed
result (``TopK`` for the FAISS family, ``Neighbours`` for local keypoints); exact-key
families (audio landmarks) answer ``lookup`` with their typed matches instead, since ``k``
means nothing there. ``range_search`` (``RangeHits``) is offered by the kinds whose
scores are true metric values. Detectors check an index with ``expect_family`` (the
contract), not with ``isinstance`` on index classes.

Anchors: faiss's ``Index.search``/``range_search`` (lims, distances, labels) for the result
shapes; ThreatExchange's signal-type/index split for keeping the family out of the detector.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple

import numpy as np

from scanner.errors import IndexMismatchError
from scanner.types import Metric


class TopK(NamedTuple):
    """Top-``k`` search result of a vector family: one row per query, best first.

    Unpacks as ``scores, ids = index.search(q, k)``. Empty slots have id -1 (and score 0 for
    similarities, ``dim`` for Hamming distances)."""

    scores: np.ndarray  # (n, k) float32 similarities or int32 Hamming distances
    ids: np.ndarray  # (n, k) int64 reference ids


class RangeHits(NamedTuple):
    """Range search result: every row within the radius, grouped by query like FAISS.

    The hits of query ``i`` are ``scores[lims[i]:lims[i + 1]]`` / ``ids[lims[i]:lims[i + 1]]``
    (not sorted; a reference with several rows may appear several times)."""

    lims: np.ndarray  # (n + 1,) int64
    scores: np.ndarray  # float32 similarities or int32 Hamming distances
    ids: np.ndarray  # int64 reference ids

    def per_query(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(scores, ids) of each query."""
        return [(self.scores[a:b], self.ids[a:b]) for a, b in zip(self.lims[:-1], self.lims[1:])]


class VectorIndex(ABC):
    """Searchable rows keyed by reference id."""

    family: ClassVar[str]  # container family of its bytes ("faiss", "landmark", "local", ...)
    metric: Metric
    dim: int  # float dimensions, or bits for binary
    kind: str  # index type name recorded in the manifest

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> None:
        """Add rows (``ids[i]`` owns ``vectors[i]``)."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Remove every row of these ids; returns how many rows went."""

    @abstractmethod
    def ids(self) -> np.ndarray:
        """Distinct reference ids held."""

    @abstractmethod
    def to_bytes(self) -> bytes:
        """Serialised form (a ``scanner.index.container``), what ``IndexStore`` writes; the detector
        reads it back. Must not change when the index is only searched."""

    def search(self, queries: np.ndarray, k: int) -> Any:
        """The ``k`` nearest rows of every query row: ``TopK`` for the FAISS family, the family's own
        typed result otherwise (documented on the class). Exact-key families do not offer it."""
        raise NotImplementedError(f"{type(self).__name__} has no search")

    def range_search(self, queries: np.ndarray, radius: float) -> RangeHits:
        """Every row within ``radius`` of each query: similarity >= radius (cosine), distance <=
        radius (Hamming). Only kinds that can bound a search this way offer it."""
        raise NotImplementedError(f"{type(self).__name__} ({self.kind}) has no range search")

    def merge(self, other: "VectorIndex") -> None:
        """Add every row of ``other`` (an index of the same type, built by another shard)."""
        raise NotImplementedError(f"{type(self).__name__} cannot merge shards")

    def __len__(self) -> int:
        return int(self.ids().size)


def expect_family(index: VectorIndex, family: str, who: str) -> None:
    """Refuse (``IndexMismatchError``) an index of another family than the one ``who`` searches."""
    got = getattr(index, "family", None)
    if got != family:
        raise IndexMismatchError(
            f"{who} searches a {family} index, not {got or type(index).__name__}; "
            "rebuild it with `scanner index build --rebuild`"
        )
