"""FAISS-backed indexes: exact inner product on L2-normalised floats, exact Hamming on bits."""

from __future__ import annotations

import faiss
import numpy as np

from scanner.index.base import VectorIndex
from scanner.types import Metric


def _ids(ids: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


class FloatIndex(VectorIndex):
    """Cosine similarity via inner product; vectors are normalised on the way in.

    ``len()`` counts distinct ids; re-adding an id adds rows (callers remove first to replace).
    """

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

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (cosine similarities, ids) per query row; empty slots have id -1."""
        q = self._prep(vectors, self.dim)
        if self._index.ntotal == 0:
            return np.zeros((len(q), k), np.float32), np.full((len(q), k), -1, np.int64)
        return self._index.search(q, k)

    def ids(self) -> np.ndarray:
        return np.unique(faiss.vector_to_array(self._index.id_map).astype(np.int64))

    def to_bytes(self) -> bytes:
        return faiss.serialize_index(self._index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, dim: int) -> "FloatIndex":
        raw = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return cls(dim, raw)


class BinaryIndex(VectorIndex):
    """Hamming distance over packed bits (``dim`` bits, ``dim // 8`` bytes per row)."""

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

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (Hamming distances, ids) per query row; empty slots have id -1."""
        q = self._prep(vectors)
        if self._index.ntotal == 0:
            return np.full((len(q), k), self.dim, np.int32), np.full((len(q), k), -1, np.int64)
        return self._index.search(q, k)

    def ids(self) -> np.ndarray:
        return np.unique(faiss.vector_to_array(self._index.id_map).astype(np.int64))

    def to_bytes(self) -> bytes:
        return faiss.serialize_index_binary(self._index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, dim: int) -> "BinaryIndex":
        raw = faiss.deserialize_index_binary(np.frombuffer(data, dtype=np.uint8))
        return cls(dim, raw)
