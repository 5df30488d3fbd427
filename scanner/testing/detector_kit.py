"""The detector contract kit: checks every registered detector must pass, run over the registry.

``detector_cases()`` lists one case per (detector, model): the detector's default model and every
test-only model the model registry holds for it (``image.clip`` runs with ``clip-test-tiny`` where
its real weights are absent). ``DetectorKit.from_case(case)`` builds the detector and its example data
(``scanner.testing.examples``; ``DetectorKit(detector, examples)`` takes them ready-made) and offers one ``check_*`` method per contract clause:

* ``check_deterministic``: the same media embed to bit-identical signals, twice in a row;
* ``check_batch_equals_single``: a batch embeds like its items one by one (floats within ``FLOAT_ATOL``:
  batched matrix products may round differently);
* ``check_blank``: blank media give an empty embedding with a note, and search to no hits;
* ``check_params_json``: ``params`` are plain JSON (what the manifest stores reads back equal);
* ``check_store_round_trip``: an index saved and loaded through ``IndexStore`` searches identically;
* ``check_copy_matches``: the transformed copy reaches the calibrated review level, the unrelated
  item does not (thresholds from ``calibration.json`` through ``scanner.policy.calibration``);
* ``check_calibration_entry``: the calibration file has thresholds for the (detector, model) at
  every stage, for the detector's metric, and the gating floors the detector reads.

A detector that cannot be built here (weights or package not installed) raises
``DetectorUnavailable`` with the reason, so a test can skip it. Embeddings are computed once per kit
and shared between checks, which keeps the whole registry under a minute on two cores.

Anchors: open_clip's tests loop over ``list_models()``; ThreatExchange's ``SignalTypeAutoTest`` gives
every signal type the same checks.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from scanner.config import Settings
from scanner.detectors.base import Detector, Embedding, Hit, create, detector_names, options_for
from scanner.models import registry
from scanner.errors import CalibrationError, ModelMissingError
from scanner.index.base import VectorIndex
from scanner.index.store import IndexStore, normalise
from scanner.policy.calibration import Calibration, load_calibration
from scanner.testing.examples import ExampleUnavailable, Examples, examples
from scanner.types import Stage

FLOAT_ATOL = 1e-5  # batch vs single: float rows may differ by rounding (6e-8 measured for image.clip)
ORIGINAL, UNRELATED = 1, 2  # reference ids of the example items in the kit's indexes


class DetectorUnavailable(RuntimeError):
    """The detector (or its example data) cannot be built on this machine; the message says why."""


@dataclass(frozen=True)
class DetectorCase:
    """One detector with one model, as the kit runs it."""

    name: str
    model: str | None = None  # None: whatever the settings choose by default
    options: dict[str, Any] = field(default_factory=dict)  # the detector's options that select ``model``

    @property
    def id(self) -> str:
        """Test id, e.g. ``image.clip[clip-test-tiny]``."""
        return f"{self.name}[{self.model}]" if self.model else self.name

    def settings(self, base: Settings | None = None) -> Settings:
        base = base or Settings()
        return base.with_options(self.name, **self.options) if self.options else base


def detector_cases(settings: Settings | None = None) -> list[DetectorCase]:
    """Every registered detector with its default model (its ``Options.model`` under ``settings``), plus each
    test-only model the registry has for it."""
    settings = settings or Settings()
    specs = registry(settings).values()
    cases = []
    for name in detector_names():
        default = options_for(name, settings).model or None
        cases.append(DetectorCase(name, default, {}))
        if default:
            for spec in sorted((s for s in specs if s.detector == name and s.test_only), key=lambda s: s.name):
                if spec.name != default:
                    cases.append(DetectorCase(name, spec.name, {"model": spec.name}))
    return cases


# ------------------------------------------------------------------ comparisons


def _same(a: Any, b: Any, atol: float = 0.0) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if atol and np.issubdtype(a.dtype, np.floating):
        return bool(np.allclose(a, b, rtol=0.0, atol=atol, equal_nan=True))
    return bool(np.array_equal(a, b, equal_nan=np.issubdtype(a.dtype, np.inexact)))


def embedding_difference(a: Embedding, b: Embedding, atol: float = 0.0) -> str:
    """'' when ``a`` and ``b`` agree (vectors, note, every extra array), else what differs."""
    if not _same(a.vectors, b.vectors, atol):
        if a.vectors.shape != b.vectors.shape:
            return f"vectors of shape {a.vectors.shape} vs {b.vectors.shape}"
        if a.vectors.dtype != b.vectors.dtype:
            return f"vectors of dtype {a.vectors.dtype} vs {b.vectors.dtype}"
        gap = float(np.max(np.abs(a.vectors.astype(np.float64) - b.vectors.astype(np.float64))))
        return f"vectors differ by up to {gap:.3g}"
    if a.note != b.note:
        return f"notes {a.note!r} vs {b.note!r}"
    if set(a.extra) != set(b.extra):
        return f"extra keys {sorted(a.extra)} vs {sorted(b.extra)}"
    for key in a.extra:
        if not _same(a.extra[key], b.extra[key], atol):
            return f"extra[{key!r}] differs"
    return ""


def _describe(item: Any) -> str:
    size = getattr(item, "size", None)
    if isinstance(size, tuple):
        return f"{getattr(item, 'mode', '')} image {size[0]}x{size[1]}"
    duration = getattr(item, "duration", None)
    return f"{duration:.1f} s clip" if duration is not None else type(item).__name__


def build_index(det: Detector, refs: dict[int, Embedding]) -> VectorIndex:
    """A new index of ``det``'s type holding ``refs`` (reference id -> embedding), all rows at once like the API."""
    index = det.new_index(len(refs))
    rows = [(np.full(e.vectors.shape[0], ref_id, np.int64), e.vectors, e.extra) for ref_id, e in refs.items()
            if not e.empty]
    if rows:
        keys = set(rows[0][2])
        extra = {k: np.concatenate([np.asarray(r[2][k]) for r in rows]) for k in keys if all(k in r[2] for r in rows)}
        index.add(np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows]), extra)
    return index


# ------------------------------------------------------------------ the kit


class DetectorKit:
    """The contract checks for one ``DetectorCase``. Each ``check_*`` raises ``AssertionError`` on a breach."""

    CHECKS = ("deterministic", "batch_equals_single", "blank", "params_json", "store_round_trip",
              "copy_matches", "calibration_entry", "warm_up")

    def __init__(self, detector: Detector, examples: Examples, settings: Settings | None = None,
                 label: str | None = None):
        self.detector = detector
        self.examples = examples
        self.settings = settings or Settings()
        self.label = label or detector.name

    @classmethod
    def from_case(cls, case: DetectorCase, settings: Settings | None = None) -> "DetectorKit":
        """Build ``case``'s detector and look up its example data; ``DetectorUnavailable`` says why not."""
        settings = case.settings(settings)
        try:
            detector = create(case.name, settings)
        except (ModelMissingError, ImportError) as exc:
            raise DetectorUnavailable(f"{case.id} cannot be built here: {exc}") from None
        try:
            data = examples(case.name, detector.modality)
        except ExampleUnavailable as exc:
            raise DetectorUnavailable(f"{case.id}: {exc}") from None
        return cls(detector, data, settings, case.id)

    def __repr__(self) -> str:
        return f"DetectorKit({self.label})"

    # ---- shared embeddings (computed once per kit)
    @cached_property
    def references(self) -> list[Embedding]:
        """``embed_references`` of the whole example batch, in one call."""
        return self._embed(self.detector.embed_references, self.examples.batch)

    @cached_property
    def queries(self) -> list[Embedding]:
        """``embed_queries`` of the whole example batch, in one call."""
        return self._embed(self.detector.embed_queries, self.examples.batch)

    def _embed(self, fn, items: Sequence[Any]) -> list[Embedding]:
        out = fn(list(items))
        assert len(out) == len(items), f"{self.label}: {len(out)} embeddings for {len(items)} items"
        for item, e in zip(items, out):
            assert isinstance(e, Embedding) and e.vectors.ndim == 2, f"{self.label}: bad embedding for {_describe(item)}"
            for key, value in e.extra.items():
                assert len(value) == e.vectors.shape[0], (
                    f"{self.label}: extra[{key!r}] has {len(value)} rows for {e.vectors.shape[0]} vectors")
        return out

    def _index(self, item_ids: dict[int, int]) -> VectorIndex:
        """Index of batch items (reference id -> position in ``examples.batch``)."""
        return build_index(self.detector, {ref_id: self.references[i] for ref_id, i in item_ids.items()})

    @cached_property
    def calibration(self) -> Calibration:
        return load_calibration(self.settings.calibration)

    # ---- checks
    def check_deterministic(self) -> None:
        """Embedding the same media again gives bit-identical signals."""
        items = self.examples.batch
        for kind, first, fn in (("reference", self.references, self.detector.embed_references),
                                ("query", self.queries, self.detector.embed_queries)):
            again = fn(list(items))
            for item, a, b in zip(items, first, again):
                diff = embedding_difference(a, b)
                assert not diff, f"{self.label}: {kind} embedding of {_describe(item)} is not deterministic: {diff}"

    def check_batch_equals_single(self) -> None:
        """A batch embeds like its items one at a time (same rows, notes and extras)."""
        items = self.examples.batch
        for kind, batch, fn in (("reference", self.references, self.detector.embed_references),
                                ("query", self.queries, self.detector.embed_queries)):
            for pos, (item, b) in enumerate(zip(items, batch)):
                (single,) = fn([item])
                diff = embedding_difference(b, single, FLOAT_ATOL)
                assert not diff, (f"{self.label}: {kind} embedding of item {pos} ({_describe(item)}) in a batch "
                                  f"of {len(items)} differs from embedding it alone: {diff}")
        assert self.detector.embed_references([]) == [] and self.detector.embed_queries([]) == [], (
            f"{self.label}: an empty batch must give no embeddings")

    def check_blank(self) -> None:
        """Blank media give an empty embedding with a note saying why; they search to no hits."""
        if self.examples.blank is None:
            return
        pos = len(self.examples.batch) - 1  # the blank item is last in the batch
        index = self._index({ORIGINAL: 0})
        for kind, e in (("reference", self.references[pos]), ("query", self.queries[pos])):
            assert e.empty, f"{self.label}: blank {_describe(self.examples.blank)} gave {e.vectors.shape[0]} {kind} rows"
            assert e.note.strip(), f"{self.label}: the empty {kind} embedding of blank media has no note"
        assert self.detector.search(index, [self.queries[pos]]) == [[]], f"{self.label}: a blank query found hits"

    def check_params_json(self) -> None:
        """``params`` are JSON-native: what the manifest stores reads back equal (no tuples, NaN or objects)."""
        params = self.detector.params
        assert isinstance(params, dict), f"{self.label}: params is a {type(params).__name__}, not a dict"
        try:
            text = json.dumps(params, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise AssertionError(f"{self.label}: params are not plain JSON: {exc}") from None
        assert json.loads(text) == params, f"{self.label}: params change in a JSON round trip: {params} -> {text}"
        assert normalise(params) == params
        assert self.detector.params == params, f"{self.label}: params are not stable between calls"

    def check_store_round_trip(self, root: Path | None = None) -> None:
        """Saved and loaded through ``IndexStore``, the index holds the same ids and searches identically."""
        det = self.detector
        index = self._index({ORIGINAL: 0, UNRELATED: 2})
        with tempfile.TemporaryDirectory() as tmp:
            store = IndexStore(Path(root or tmp) / "indexes")
            manifest = store.save(det.name, index, det.model_id, det.weights_sha256, {"9": "example skip"},
                                  det.params)
            loaded = store.load(det.name, det.model_id, det.weights_sha256, det.dim, det.metric, det.load_index,
                                det.params)
        assert loaded is not None, f"{self.label}: the store found no index right after saving it"
        again, m2 = loaded
        assert m2 == manifest, f"{self.label}: the manifest changed on its way through the store"
        assert manifest.count == len(index) == len(again) and manifest.index_type == index.kind
        assert np.array_equal(again.ids(), index.ids()), f"{self.label}: ids {again.ids()} after loading, not {index.ids()}"
        before, after = det.search(index, self.queries), det.search(again, self.queries)
        assert after == before, f"{self.label}: search results change after a store round trip"
        assert again.to_bytes() == index.to_bytes(), f"{self.label}: a loaded index serialises differently"

    def thresholds(self, stage: Stage = Stage.FINAL):
        return self.calibration.thresholds(self.detector.name, self.detector.calibration_id, stage)

    def check_copy_matches(self) -> None:
        """The copy reaches the calibrated review level (final stage, the loosest); the unrelated item does not."""
        det = self.detector
        try:
            th = self.thresholds()
        except CalibrationError as exc:
            raise AssertionError(f"{self.label}: {exc}") from None
        index = self._index({ORIGINAL: 0})
        copy_hits, unrelated_hits = det.search(index, [self.queries[1], self.queries[2]])
        for hit in copy_hits + unrelated_hits:
            assert isinstance(hit, Hit) and math.isfinite(hit.score), f"{self.label}: bad hit {hit}"
        best = [h.score for h in copy_hits if h.ref_id == ORIGINAL]
        assert best and th.metric.closer_or_equal(best[0], th.review), (
            f"{self.label}: the transformed copy scores {best[0] if best else 'no hit'} against its original, "
            f"short of the review level {th.review} ({th.metric.value}); examples: {self.examples.source}")
        cleared = [h.score for h in unrelated_hits if th.metric.closer_or_equal(h.score, th.review)]
        assert not cleared, (f"{self.label}: an unrelated item scores {cleared[0]}, past the review level "
                             f"{th.review} ({th.metric.value})")

    def check_calibration_entry(self) -> None:
        """Thresholds exist for every stage and are for the detector's own metric; the entry's gating floors
        hold every floor the detector reads (``FLOORS``)."""
        det = self.detector
        for stage in Stage:
            try:
                th = self.thresholds(stage)
            except CalibrationError as exc:
                raise AssertionError(f"{self.label}: {exc}") from None
            assert th.metric is self.detector.metric, (
                f"{self.label}: calibrated for metric {th.metric.value}, the detector uses {self.detector.metric.value}")
        try:
            self.calibration.floors(det.name, det.calibration_id, type(det).FLOORS)
        except CalibrationError as exc:
            raise AssertionError(f"{self.label}: {exc}") from None

    def check_warm_up(self) -> None:
        """``warm_up`` may be called at any time, more than once, and leaves the signals as they were."""
        self.detector.warm_up()
        self.detector.warm_up()
        items = self.examples.batch
        for item, a, b in zip(items, self.queries, self.detector.embed_queries(list(items))):
            diff = embedding_difference(a, b, FLOAT_ATOL)
            assert not diff, f"{self.label}: query embedding of {_describe(item)} changed after warm_up: {diff}"

    def run_all(self) -> None:
        """Every check in order (for use outside pytest)."""
        for name in self.CHECKS:
            getattr(self, f"check_{name}")()
