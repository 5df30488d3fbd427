"""Detector contract and registry (keyed by name; duplicate names are rejected).

A detector turns decoded media into signals (``Embedding``), owns the index type those
signals live in, and knows how to search it. Vector detectors (hashes and embeddings
searched with FAISS) get all of that from ``VectorDetector``; detectors with their own
index type (audio landmarks, local keypoints) override ``new_index``/``load_index``/``search``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from scanner.config import Settings
from scanner.errors import ConfigError
from scanner.index import VectorIndex
from scanner.index.choose import choose_index, make_index
from scanner.index.faiss_index import load_index
from scanner.types import Metric

SEARCH_K = 10


@dataclass(frozen=True)
class Embedding:
    """Signals for one media item: zero or more rows. No rows means "not comparable", with ``note`` saying why.

    ``extra`` holds per-row side arrays (face boxes, time spans, keypoints) that searches report back.
    """

    vectors: np.ndarray
    note: str = ""
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.vectors.shape[0] == 0


@dataclass(frozen=True)
class Hit:
    """A reference close to a query, with the evidence the detector can give (box, span, polygon...)."""

    ref_id: int
    score: float
    extra: dict[str, Any] = field(default_factory=dict)


class Detector(ABC):
    """One signal type. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    modality: ClassVar[str]  # media it reads: "image" or "audio"
    references: ClassVar[str] = "work"  # what its index holds: "work" or "talent"
    metric: ClassVar[Metric]
    model_id: str
    weights_sha256: str
    dim: int

    @property
    def model_label(self) -> str:
        """Model id as reports show it (test models say so)."""
        return self.model_id

    @property
    def params(self) -> dict[str, Any]:
        """Settings that change the signals; an index built with other params is refused."""
        return {}

    def describe(self) -> str:
        return f"{self.name} [{self.model_label}]"

    @abstractmethod
    def embed_references(self, media: Sequence[Any]) -> list[Embedding]:
        """Signals to index for each reference item (PIL image or audio clip, per ``modality``)."""

    def embed_queries(self, media: Sequence[Any]) -> list[Embedding]:
        """Signals to search for each asset; may add variants (flips, rotations). Default: as references."""
        return self.embed_references(media)

    @abstractmethod
    def new_index(self, expected_rows: int = 0) -> VectorIndex:
        """An empty index of this detector's type, sized for about ``expected_rows`` rows."""

    @abstractmethod
    def load_index(self, data: bytes) -> VectorIndex:
        """Inverse of ``VectorIndex.to_bytes`` for this detector's index type."""

    @abstractmethod
    def search(self, index: VectorIndex, queries: Sequence[Embedding]) -> list[list[Hit]]:
        """Candidate hits per query (policy decides which are close enough to report)."""


class VectorDetector(Detector):
    """Detectors whose signals are fixed-size rows searched by FAISS (hashes or embeddings).

    A query's rows are all searched; each reference keeps its closest row, and the hit
    carries that row's ``extra`` entries (e.g. the face box) as evidence.
    """

    def new_index(self, expected_rows: int = 0) -> VectorIndex:
        """Exact below the size bound of ``choose_index``, approximate (HNSW, IVF) above it."""
        return make_index(choose_index(expected_rows, self.dim, self.metric))

    def load_index(self, data: bytes) -> VectorIndex:
        return load_index(data, self.dim, self.metric)

    def search(self, index: VectorIndex, queries: Sequence[Embedding]) -> list[list[Hit]]:
        out: list[list[Hit]] = [[] for _ in queries]
        rows = [(qi, ri) for qi, q in enumerate(queries) for ri in range(q.vectors.shape[0])]
        if not rows or len(index) == 0:
            return out
        matrix = np.concatenate([q.vectors for q in queries if not q.empty])
        scores, ids = index.search(matrix, SEARCH_K)
        best: list[dict[int, Hit]] = [{} for _ in queries]
        for (qi, ri), srow, irow in zip(rows, scores, ids):
            for score, ref_id in zip(srow, irow):
                if ref_id < 0:
                    continue
                cur = best[qi].get(int(ref_id))
                if cur is None or self.metric.closer(float(score), cur.score):
                    extra = {k: _plain(v[ri]) for k, v in queries[qi].extra.items()}
                    best[qi][int(ref_id)] = Hit(int(ref_id), float(score), extra)
        return [list(b.values()) for b in best]


def _plain(value: Any) -> Any:
    """numpy scalars/arrays to JSON-ready Python values."""
    return value.tolist() if isinstance(value, np.ndarray) else value.item() if isinstance(value, np.generic) else value


_REGISTRY: dict[str, Callable[[Settings], Detector]] = {}
# Detector modules are imported on first use so a missing optional dependency only
# affects the detector that needs it.
_MODULES = {
    "image.pdq": "scanner.detectors.pdq",
    "image.sscd": "scanner.detectors.sscd",
    "image.clip": "scanner.detectors.clip",
    "image.local": "scanner.detectors.local",
    "image.face": "scanner.detectors.face",
    "audio.fingerprint": "scanner.detectors.fingerprint",
    "audio.voice": "scanner.detectors.voice",
}


def register(name: str) -> Callable:
    """Class decorator adding a detector factory under ``name``."""

    def wrap(cls):
        if name in _REGISTRY:
            raise ValueError(f"detector {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def detector_names() -> list[str]:
    return sorted(_MODULES)


def create(name: str, settings: Settings) -> Detector:
    """Instantiate detector ``name`` (loading its model)."""
    if name not in _MODULES:
        raise ConfigError(f"unknown detector {name!r}; available: {', '.join(detector_names())}")
    if name not in _REGISTRY:
        importlib.import_module(_MODULES[name])
    return _REGISTRY[name](settings)
