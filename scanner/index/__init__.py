"""Searchable stores of signals: integer ids only, metadata lives in the catalog."""

from scanner.index.base import VectorIndex
from scanner.index.faiss_index import BinaryIndex, FloatIndex
from scanner.index.store import IndexStore, Manifest

__all__ = ["VectorIndex", "FloatIndex", "BinaryIndex", "IndexStore", "Manifest"]
