"""The index contract every index type implements.

Rows are keyed by int64 reference ids; one reference may own several rows (several
faces, many local descriptors, many audio landmarks). ``extra`` carries per-row side
arrays an index type may need (landmark times, keypoint positions); indexes that do
not need them ignore them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from scanner.types import Metric


class VectorIndex(ABC):
    """Searchable rows keyed by reference id. Search itself is index-type specific."""

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
        """Serialised form (what ``IndexStore`` writes); the detector knows how to read it back."""

    def merge(self, other: "VectorIndex") -> None:
        """Add every row of ``other`` (an index of the same type, built by another shard)."""
        raise NotImplementedError(f"{type(self).__name__} cannot merge shards")

    def __len__(self) -> int:
        return int(self.ids().size)
