"""Detector contract and registry (keyed by name; duplicate names are rejected).

A detector turns decoded media into signals (``Embedding``), owns the index type those
signals live in, and knows how to search it. Vector detectors (hashes and embeddings
searched with FAISS) get all of that from ``VectorDetector``; detectors with their own
index type (audio landmarks, local keypoints) override ``new_index``/``load_index``/``search``.

A detector describes its user-settable settings as ``Options`` (a frozen dataclass deriving from
``DetectorOptions``: at least ``model``), which settings fill from ``[detectors."<name>"]`` in
``scanner.toml``, ``SCANNER_<NAME>_<KEY>`` or ``--<kind>-model`` (``options_for``). What decides what
calibration sees (``k``, minimum inliers or matches, quality floors) is not an option: it is calibration
data, read with ``floors_for`` from the detector's entry in the calibration file (names in ``FLOORS``).
"""

from __future__ import annotations

import importlib
import pkgutil
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from scanner.config import Settings
from scanner.errors import ConfigError
from scanner.index import VectorIndex
from scanner.index.base import expect_family
from scanner.index.choose import choose_index, make_index
from scanner.index.faiss_index import load_index
from scanner.types import Metric, Modality, ReferenceKind
from scanner.types import Evidence, evidence_from_json, evidence_to_json

OPTION_TYPES = (str, int, float, bool)  # what an option may be: plain values TOML, env and flags can give


@dataclass(frozen=True)
class DetectorOptions:
    """User-settable settings of a detector (``[detectors."<name>"]`` in ``scanner.toml``).

    A detector's ``Options`` derives from this and adds its own knobs; every field has a default
    and one of the ``OPTION_TYPES``. Settings store only what the user changed (``Settings.detector_options``).
    """

    model: str = ""  # registry model name (``scanner models list``); "" for an algorithm without learned weights


@dataclass(frozen=True)
class Embedding:
    """Signals for one media item: zero or more rows. No rows means "not comparable", with ``note`` saying why.

    ``extra`` holds per-row side arrays (face boxes, time spans, keypoints) that searches report back.
    """

    vectors: np.ndarray
    note: str = ""
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    # Detector-private work its search may need but usually does not (image.local: an asset's text
    # boxes, needed only to verify a candidate, which most assets never have). Not part of equality.
    deferred: Any = field(default=None, compare=False, repr=False)

    @property
    def empty(self) -> bool:
        return self.vectors.shape[0] == 0


@dataclass(frozen=True)
class Hit:
    """A reference close to a query, with the evidence the detector can give.

    ``evidence`` is typed (``Box``, ``Span``, ``Polygon``, ``Notes``... from ``scanner.types``); ``extra``
    is its JSON view (the keys findings' ``extra`` has always had) plus any untyped facts. Give either:
    a hit built from typed evidence gets its ``extra`` written, one built from a plain dict (e.g. the
    per-row side arrays of a vector search) gets its evidence read from it.
    """

    ref_id: int
    score: float
    extra: dict[str, Any] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()

    def __post_init__(self) -> None:
        if self.evidence:
            object.__setattr__(self, "extra", {**self.extra, **evidence_to_json(self.evidence)})
        elif self.extra:
            object.__setattr__(self, "evidence", evidence_from_json(self.extra))


class Detector(ABC):
    """One signal type. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    modality: ClassVar[Modality]  # media it reads
    references: ClassVar[ReferenceKind] = ReferenceKind.WORK  # what its index holds
    metric: ClassVar[Metric]
    # How reports put the score in words: what a count score counts, a hash's length in bits.
    score_unit: ClassVar[str | None] = None
    hash_bits: ClassVar[int | None] = None
    # Likeness detectors: the talent sample kind they read and the consent scopes that cover them.
    sample_kind: ClassVar[str | None] = None
    consent_scopes: ClassVar[tuple[str, ...]] = ()
    # Its query work runs on one core (dlib's HOG face finder, the voice model at one torch thread): a scan
    # runs it beside the other detectors, which share the cores among themselves.
    one_thread: ClassVar[bool] = False
    Options: ClassVar[type[DetectorOptions]] = DetectorOptions
    # Gating floors (and the search ``k``) this detector reads from its calibration entry's "floors".
    FLOORS: ClassVar[tuple[str, ...]] = ()
    floors: dict[str, float]

    @classmethod
    def summary(cls) -> str:
        """What it finds, in one line (the class docstring's first line)."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
    model_id: str
    weights_sha256: str
    dim: int

    @property
    def model_label(self) -> str:
        """Model id as reports show it (test models say so)."""
        return self.model_id

    @property
    def calibration_id(self) -> str:
        """The key of this detector's thresholds, floors and fusion in the calibration file: the model id,
        unless a query-side setting that leaves the index as it is changes the scores (SSCD's query crops)."""
        return self.model_id

    @property
    def params(self) -> dict[str, Any]:
        """Settings that change the signals; an index built with other params is refused."""
        return {}

    def describe(self) -> str:
        return f"{self.name} [{self.model_label}]"

    def warm_up(self) -> None:
        """Pay first-use costs (a model loaded on first use) now: a long-running process (the service)
        calls it at start so its first request is not the slow one. Nothing to do by default."""

    @abstractmethod
    def embed_references(self, media: Sequence[Any]) -> list[Embedding]:
        """Signals to index for each reference item (PIL image or audio clip, per ``modality``)."""

    def embed_queries(self, media: Sequence[Any]) -> list[Embedding]:
        """Signals to search for each asset; may add variants (flips, rotations). Default: as references."""
        return self.embed_references(media)

    @abstractmethod
    def new_index(self, expected_rows: int = 0, memory_bytes: int | None = None) -> VectorIndex:
        """An empty index of this detector's type, sized for about ``expected_rows`` rows within
        ``memory_bytes`` (``Settings.index_memory_mb``; None: no budget) where its type can trade memory."""

    @abstractmethod
    def load_index(self, data: bytes) -> VectorIndex:
        """Inverse of ``VectorIndex.to_bytes`` for this detector's index type."""

    @abstractmethod
    def search(self, index: VectorIndex, queries: Sequence[Embedding]) -> list[list[Hit]]:
        """Candidate hits per query (policy decides which are close enough to report)."""


class VectorDetector(Detector):
    """Detectors whose signals are fixed-size rows searched by FAISS (hashes or embeddings).

    A query's rows are all searched; each reference keeps its closest row, and the hit
    carries that row's ``extra`` entries (e.g. the face box) as evidence. ``search_k`` (neighbours
    per row) is a calibration floor: a subclass's ``__init__`` sets ``self.floors = floors_for(...)``.
    """

    FLOORS = ("search_k",)

    def new_index(self, expected_rows: int = 0, memory_bytes: int | None = None) -> VectorIndex:
        """Exact below the size bound of ``choose_index``, approximate (PQ fast-scan, IVF) above it or over budget."""
        return make_index(choose_index(expected_rows, self.dim, self.metric, memory_bytes))

    def load_index(self, data: bytes) -> VectorIndex:
        return load_index(data, self.dim, self.metric)

    def search(self, index: VectorIndex, queries: Sequence[Embedding]) -> list[list[Hit]]:
        out: list[list[Hit]] = [[] for _ in queries]
        rows = [(qi, ri) for qi, q in enumerate(queries) for ri in range(q.vectors.shape[0])]
        if not rows or len(index) == 0:
            return out
        matrix = np.concatenate([q.vectors for q in queries if not q.empty])
        scores, ids = index.search(matrix, int(self.floors["search_k"]))
        best: list[dict[int, Hit]] = [{} for _ in queries]
        for (qi, ri), srow, irow in zip(rows, scores, ids):
            srow = self.row_scores(queries[qi], ri, srow)
            for score, ref_id in zip(srow, irow):
                if ref_id < 0:
                    continue
                cur = best[qi].get(int(ref_id))
                if cur is None or self.metric.closer(float(score), cur.score):
                    extra = {k: _plain(v[ri]) for k, v in queries[qi].extra.items()}
                    best[qi][int(ref_id)] = Hit(int(ref_id), float(score), extra)
        return [list(b.values()) for b in best]

    def row_scores(self, query: Embedding, row: int, scores: np.ndarray) -> np.ndarray:
        """The scores a hit reports for row ``row`` of ``query`` from the index's scores of its neighbours: as
        they are, unless the detector normalises them per query (an order-preserving map: the index's
        neighbour order stays right)."""
        return scores


class OwnIndexDetector(Detector):
    """Detectors whose index type is their own (audio landmarks, melody n-grams, local keypoints).

    ``index_type`` names it (a ``VectorIndex`` with ``family`` and ``from_bytes``); each query is
    searched on its own by ``_search_one`` (an empty query or index gives no hits)."""

    index_type: ClassVar[Any]

    def new_index(self, expected_rows: int = 0, memory_bytes: int | None = None) -> VectorIndex:
        return self.index_type(self.dim)

    def load_index(self, data: bytes) -> VectorIndex:
        return self.index_type.from_bytes(data, self.dim)

    def search(self, index: VectorIndex, queries: Sequence[Embedding]) -> list[list[Hit]]:
        expect_family(index, self.index_type.family, self.name)
        return [[] if q.empty or len(index) == 0 else self._search_one(index, q) for q in queries]

    @abstractmethod
    def _search_one(self, index: Any, query: Embedding) -> list[Hit]:
        """Candidate hits for one non-empty query."""


def _plain(value: Any) -> Any:
    """numpy scalars/arrays to JSON-ready Python values."""
    return value.tolist() if isinstance(value, np.ndarray) else value.item() if isinstance(value, np.generic) else value


_REGISTRY: dict[str, type["Detector"]] = {}
_DISCOVERED = False
_BROKEN: dict[str, str] = {}  # module -> why it could not be imported
# Modules of this package that hold shared code, not detectors.
_NOT_DETECTORS = {"base"}


def register(name: str) -> Callable:
    """Class decorator adding a detector class under ``name`` (duplicate names are refused)."""

    def wrap(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"detector {name!r} is already registered")
        if not issubclass(cls.Options, DetectorOptions):
            raise TypeError(f"{name}: Options must derive from DetectorOptions")
        odd = {k: t for k, t in option_types(cls).items() if t not in OPTION_TYPES}
        if odd:
            raise TypeError(f"{name}: options {sorted(odd)} are not of a plain type ({OPTION_TYPES})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _discover() -> None:
    """Import every module of ``scanner.detectors`` once, so their ``@register`` runs.

    A detector module imports its heavy libraries (torch, dlib, onnxruntime) only when a detector
    is created, so discovery is cheap; one that fails to import is remembered, not fatal.
    """
    global _DISCOVERED
    if _DISCOVERED:
        return
    import scanner.detectors as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name in _NOT_DETECTORS:
            continue
        try:
            importlib.import_module(f"{package.__name__}.{info.name}")
        except ImportError as exc:
            _BROKEN[info.name] = str(exc)
    _DISCOVERED = True


def detector_names() -> list[str]:
    """Names of every registered detector."""
    _discover()
    return sorted(_REGISTRY)


def detector_class(name: str) -> type["Detector"]:
    """The class registered under ``name`` (its declaration: modality, references, metric, scopes...)."""
    _discover()
    if name not in _REGISTRY:
        broken = "".join(f"; module {m} could not be imported: {why}" for m, why in _BROKEN.items())
        raise ConfigError(f"unknown detector {name!r}; available: {', '.join(sorted(_REGISTRY))}{broken}")
    return _REGISTRY[name]


def likeness_detector(sample_kind: str) -> type["Detector"]:
    """The detector that reads talent samples of ``sample_kind`` ("face", "voice")."""
    for name in detector_names():
        cls = _REGISTRY[name]
        if cls.references == ReferenceKind.TALENT and cls.sample_kind == sample_kind:
            return cls
    raise ConfigError(f"no detector reads talent samples of kind {sample_kind!r}")


def create(name: str, settings: Settings) -> Detector:
    """Instantiate detector ``name`` (loading its model)."""
    return detector_class(name)(settings)


# ------------------------------------------------------------------ options and floors


def _class_of(detector: "type[Detector] | Detector | str") -> type["Detector"]:
    if isinstance(detector, str):
        return detector_class(detector)
    return detector if isinstance(detector, type) else type(detector)


def option_types(detector: "type[Detector] | Detector | str") -> dict[str, type]:
    """``detector``'s option names and their types (``{"model": str, "min_face": int, ...}``); a detector
    without a learned model (``Options.model`` defaults to '') has no ``model`` option."""
    opts = _class_of(detector).Options
    hints = typing.get_type_hints(opts)
    return {f.name: hints[f.name] for f in fields(opts) if f.name != "model" or opts().model}


def _coerce_option(kind: type, value: Any) -> Any:
    """``value`` (from TOML, the environment or a flag: maybe a string) as ``kind``; ValueError if it is none."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
            raise ValueError("expected true or false")
        return text in {"1", "true", "yes", "on"}
    if isinstance(value, bool):
        raise ValueError(f"expected {kind.__name__}, not a boolean")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("expected a whole number")
        return int(value)
    if kind is float:
        return float(value)
    if not isinstance(value, (str, int, float)):
        raise ValueError(f"expected text, not {type(value).__name__}")
    return str(value)


def check_options(name: str, values: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``values`` for detector ``name`` checked against its ``Options`` and coerced to their types.

    ``ConfigError`` (naming ``where`` the values came from) for an unknown detector, an unknown key
    (listing the known ones) or a value of the wrong type.
    """
    cls = detector_class(name)
    kinds = option_types(cls)
    out: dict[str, Any] = {}
    src = f" ({where})" if where else ""
    for key, value in values.items():
        if key not in kinds:
            known = f"its options: {', '.join(kinds)}" if kinds else "it has no options"
            raise ConfigError(f"unknown option {key!r} for detector {name}{src}; {known}")
        try:
            out[key] = _coerce_option(kinds[key], value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"bad value for option {key!r} of detector {name}{src}: {value!r} "
                              f"({exc}; expected {kinds[key].__name__})") from None
    return out


def options_for(detector: "type[Detector] | Detector | str", settings: Settings) -> DetectorOptions:
    """``detector``'s ``Options``: its defaults with what ``settings`` change for it."""
    cls = _class_of(detector)
    return cls.Options(**settings.options_of(cls.name))


def floors_for(detector: "type[Detector] | Detector | str", settings: Settings, model: str) -> dict[str, float]:
    """The gating floors ``detector`` (running ``model``) reads from the calibration file: every name in its
    ``FLOORS``. ``CalibrationError`` when the entry has none or lacks one."""
    from scanner.policy.calibration import gating_floors

    cls = _class_of(detector)
    return gating_floors(settings.calibration, cls.name, model, cls.FLOORS)
