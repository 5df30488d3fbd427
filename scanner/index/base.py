"""The index contract every index type implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from scanner.types import Metric


class VectorIndex(ABC):
    """Vectors (float, cosine) or packed bit hashes (uint8, Hamming) keyed by int64 ids."""

    metric: Metric
    dim: int  # float dimensions, or bits for binary
    kind: str  # index type name recorded in the manifest

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors; an id already present is replaced."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Remove ids; returns how many were present."""

    @abstractmethod
    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query row; missing slots have id -1."""

    @abstractmethod
    def ids(self) -> np.ndarray:
        """All ids held."""

    @abstractmethod
    def to_bytes(self) -> bytes:
        """Serialised form (what ``IndexStore`` writes)."""

    def __len__(self) -> int:
        return int(self.ids().size)
