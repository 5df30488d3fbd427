"""Searchable stores of signals: integer ids only, metadata lives in the catalog."""

from scanner.index.base import RangeHits, TopK, VectorIndex, expect_family
from scanner.index.faiss_index import BinaryIndex, FloatIndex
from scanner.index.store import IndexStore, Manifest

__all__ = ["VectorIndex", "TopK", "RangeHits", "expect_family", "FloatIndex", "BinaryIndex", "IndexStore",
           "Manifest"]
