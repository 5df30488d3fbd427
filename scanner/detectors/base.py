"""Detector contract and registry (keyed by name; duplicate names are rejected)."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar, Sequence

import numpy as np
from PIL import Image

from scanner.config import Settings
from scanner.errors import ConfigError
from scanner.types import Metric


@dataclass(frozen=True)
class Embedding:
    """Signals for one image: zero or more rows. No rows means "not comparable", with ``note`` saying why."""

    vectors: np.ndarray
    note: str = ""

    @property
    def empty(self) -> bool:
        return self.vectors.shape[0] == 0


class Detector(ABC):
    """One signal type. Subclasses set the class attributes and implement ``embed_references``."""

    name: ClassVar[str]
    modality: ClassVar[str]
    metric: ClassVar[Metric]
    model_id: str
    weights_sha256: str
    dim: int  # float dimensions, or bits for binary signals

    @abstractmethod
    def embed_references(self, images: Sequence[Image.Image]) -> list[Embedding]:
        """One row (or none, with a note) per reference image."""

    def embed_queries(self, images: Sequence[Image.Image]) -> list[Embedding]:
        """Rows to search for each asset; may add variants (flips, rotations). Default: as references."""
        return self.embed_references(images)

    @property
    def model_label(self) -> str:
        """Model id as reports show it (test models say so)."""
        return self.model_id

    def describe(self) -> str:
        return f"{self.name} [{self.model_label}]"


_REGISTRY: dict[str, Callable[[Settings], Detector]] = {}
# Detector modules are imported on first use so a missing optional dependency only
# affects the detector that needs it.
_MODULES = {"image.pdq": "scanner.detectors.pdq", "image.clip": "scanner.detectors.clip"}


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
