"""Searchable stores of signals: integer ids only, metadata lives in the catalog."""

from scanner.index.base import VectorIndex
from scanner.index.faiss_index import BinaryIndex, FloatIndex, new_index
from scanner.index.store import IndexStore, Manifest

__all__ = ["VectorIndex", "FloatIndex", "BinaryIndex", "new_index", "IndexStore", "Manifest"]
