"""Thresholds per (detector, model, stage) and gating floors per (detector, model), read from the
calibration file that ``benchmarks/`` writes. Nothing here has a built-in default: an uncalibrated
model is an error, not a guess.

An entry::

    "image.local": {"rootsift-v1": {"metric": "count", "final": {"block": 12, "review": 10},
                                    "ideation": {...}, "floors": {"search_k": 8, "min_inliers": 10, ...},
                                    "measured": {...}}}

``floors`` are what decides which candidates calibration (and a scan) ever sees: the neighbours
searched per row (``search_k``), the least inliers or matches a hit needs, quality floors. They are
data like the thresholds (they count in ``thresholds_digest``), read when a detector is created
(``gating_floors``). A model not calibrated yet runs with the floors its detector's calibrated models
share, so a benchmark can calibrate it; a benchmark's new entry keeps the floors already stored.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from datetime import datetime, timezone
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from scanner.errors import CalibrationError
from scanner.fsutil import atomic_write_json
from scanner.policy.fusion import FusionModel, load_fusion
from scanner.types import Metric, Stage


@dataclass(frozen=True)
class Thresholds:
    """``block`` is the stricter level; scores between ``review`` and ``block`` need review."""

    metric: Metric
    block: float
    review: float


@dataclass(frozen=True)
class Calibration:
    """The parsed calibration file."""

    version: str
    path: str
    detectors: dict[str, dict[str, Any]]
    fusions: dict[str, FusionModel] = field(default_factory=dict)  # modality -> fused-score model

    def fusion(self, modality: str, stage: Stage, running: dict[str, str] | None = None) -> "StageFusion | None":
        """The fused score for ``modality`` at ``stage`` fitted for exactly the detectors and models that
        run (``running``: detector -> model id; None accepts the default entry), or None.

        A fusion whose detectors do not all run is not used: imputing "no score" for a detector that
        was switched off would demote the matches of the ones that did run.
        """
        for key, model in sorted(self.fusions.items()):
            if key != modality and not key.startswith(modality + "@"):
                continue
            if running is not None and any(running.get(d) != m for d, m in model.detectors.items()):
                continue
            if running is None and key != modality:
                continue
            block, review = model.thresholds(stage.value)
            # Named by what it fuses (its key names the SSCD model) and the calibration it came from; the
            # version alone reads as the last benchmark that wrote the file (e.g. "...-melody-...").
            return StageFusion(f"fused.{modality}", f"{key} (calibration {self.version})",
                               Thresholds(Metric.PROBABILITY, block, review), model)
        return None

    def thresholds(self, detector: str, model: str, stage: Stage) -> Thresholds:
        entry = self.detectors.get(detector, {}).get(model)
        if entry is None:
            raise CalibrationError(f"no calibrated thresholds for {detector} with model {model!r} in {self.path}"
                                   + _calibrated_hint(detector, self.detectors.get(detector, {})))
        levels = entry[stage.value]
        return Thresholds(Metric(entry["metric"]), float(levels["block"]), float(levels["review"]))

    def floors(self, detector: str, model: str, names: Sequence[str] = ()) -> dict[str, float]:
        """The gating floors of ``detector`` running ``model`` (each of ``names`` must be there).

        A model with no entry yet takes the floors its detector's calibrated models agree on (a benchmark
        calibrating it needs a detector to run); anything else missing is a ``CalibrationError``.
        """
        models = self.detectors.get(detector, {})
        entry = models.get(model)
        if entry is not None and "floors" in entry:
            floors = dict(entry["floors"])
        elif entry is None and (shared := _shared_floors(models)) is not None:
            floors = shared
        else:
            raise CalibrationError(
                f"no gating floors for {detector} with model {model!r} in {self.path}: its entry needs "
                f'"floors": {json.dumps({n: "..." for n in names})}' + _calibrated_hint(detector, models))
        missing = [n for n in names if n not in floors]
        if missing:
            raise CalibrationError(f"the gating floors of {detector} ({model!r}) in {self.path} lack "
                                   f"{', '.join(missing)} (it has: {', '.join(sorted(floors)) or 'none'})")
        return floors


@dataclass(frozen=True)
class StageFusion:
    """A fusion model with one stage's levels: what ``policy.rules.decide`` combines scores with."""

    name: str
    model: str
    thresholds: Thresholds
    fit: FusionModel

    def covers(self, detector: str, model: str) -> bool:
        return self.fit.detectors.get(detector) == model

    def score(self, scores: dict[str, float]) -> float:
        return float(self.fit.score(scores))


def _calibrated_hint(detector: str, models: dict[str, Any]) -> str:
    """Which models of ``detector`` are calibrated, and how to calibrate one (from the entries' source)."""
    if not models:
        return f"; {detector} has no calibrated model: run its benchmark (see benchmarks/README.md)"
    return f"; calibrated models of {detector}: {', '.join(sorted(models))} (run its benchmark to add one)"


def _shared_floors(models: dict[str, Any]) -> dict[str, float] | None:
    """The floors every calibrated model of a detector has, if they are all the same."""
    found = [json.dumps(e["floors"], sort_keys=True) for e in models.values() if "floors" in e]
    if not found or len(set(found)) != 1 or len(found) != len(models):
        return None
    return json.loads(found[0])


def _check_floors(where: str, floors: Any) -> None:
    if not isinstance(floors, dict):  # {} is a detector without gating floors
        raise ValueError(f"{where}: 'floors' must be an object of name: number, not {floors!r}")
    for name, value in floors.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{where}: floor {name!r} must be a number >= 0, not {value!r}")


def load_calibration(path: Path) -> Calibration:
    """Read and validate the calibration file (thresholds for every stage, block stricter than review,
    ``floors`` of plain numbers >= 0)."""
    try:
        data = json.loads(Path(path).read_text())
        detectors = data["detectors"]
        for det, models in detectors.items():
            for model, entry in models.items():
                metric = Metric(entry["metric"])
                if "floors" in entry:  # an entry without them is refused when its detector is created
                    _check_floors(f"{det}/{model}", entry["floors"])
                for stage in Stage:
                    block, review = float(entry[stage.value]["block"]), float(entry[stage.value]["review"])
                    if not metric.closer_or_equal(block, review):
                        raise ValueError(f"{det}/{model}/{stage.value}: block threshold {block} is less strict "
                                         f"than review threshold {review}")
    except FileNotFoundError:
        raise CalibrationError(f"calibration file not found: {path}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CalibrationError(f"calibration file {path} is malformed: {exc!r}") from None
    return Calibration(str(data.get("version", "unversioned")), str(path), detectors, load_fusion(data))


@lru_cache(maxsize=8)
def _cached(path: str, mtime_ns: int, size: int) -> Calibration:
    return load_calibration(Path(path))


def cached_calibration(path: Path) -> Calibration:
    """``load_calibration``, read again only when the file changes (every detector reads its floors)."""
    try:
        st = Path(path).stat()
    except OSError:
        return load_calibration(path)  # raises the clear "not found"
    return _cached(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def gating_floors(path: Path, detector: str, model: str, names: Sequence[str] = ()) -> dict[str, float]:
    """The gating floors ``detector`` (running ``model``) was calibrated with, from the file at ``path``."""
    return cached_calibration(path).floors(detector, model, names)


RESERVED_KEYS = ("detectors", "version", "created", "source")


def thresholds_digest(detectors: dict[str, dict[str, Any]],
                      sections: dict[str, dict[str, Any]] | None = None) -> str:
    """Short hash over every stored threshold (and every extra section's entries, such as ``fusion``, less
    their ``measured`` notes), so a file's version changes when any of them does."""
    core: dict[str, Any] = {det: {model: {k: e[k] for k in ("metric", "final", "ideation", "floors") if k in e}
                                  for model, e in models.items()} for det, models in detectors.items()}
    if sections:
        core = {"detectors": core, **{name: {k: {f: v for f, v in e.items() if f != "measured"}
                                             for k, e in sec.items()} for name, sec in sections.items()}}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:8]


def merge_calibration(path: Path, entries: dict[tuple[str, str], dict[str, Any]], benchmark: str,
                      source: str, sections: dict[str, dict[str, Any]] | None = None) -> str:
    """Write ``entries`` ((detector, model) -> entry) into the calibration file at ``path``, keeping every
    other entry; ``source`` replaces this benchmark's earlier source line. Returns the new version.
    ``sections`` (top-level name -> {key: entry}, e.g. ``{"fusion": {"image": ...}}``) are merged the same
    way, key by key.

    Benchmarks run side by side, so the read-modify-write holds an exclusive lock on ``path.lock``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(path.suffix + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
                if not isinstance(data.get("detectors"), dict):
                    raise ValueError("no 'detectors' object")
            except (ValueError, TypeError) as exc:
                raise CalibrationError(f"refusing to overwrite unreadable calibration file {path}: {exc!r}") from None
        detectors = data.setdefault("detectors", {})
        for (det, model), entry in entries.items():
            models = detectors.setdefault(det, {})
            if "floors" not in entry:  # a benchmark's new levels keep the floors they were measured with
                floors = (models.get(model) or {}).get("floors")
                floors = _shared_floors(models) if floors is None else floors
                if floors is not None:
                    entry = {**entry, "floors": floors}
            models[model] = entry
        for name, section in (sections or {}).items():
            if name in RESERVED_KEYS or not isinstance(data.setdefault(name, {}), dict):
                raise CalibrationError(f"cannot merge section {name!r} into calibration file {path}")
            data[name].update(section)
        extra = {k: v for k, v in data.items() if k not in RESERVED_KEYS and isinstance(v, dict)}
        now = datetime.now(timezone.utc)
        data["version"] = f"{now.date().isoformat()}-{benchmark}-{thresholds_digest(detectors, extra)}"
        data["created"] = now.isoformat(timespec="seconds")
        others = [s for s in str(data.get("source", "")).split("; ") if s and not s.startswith(f"benchmarks/{benchmark}.py")]
        data["source"] = "; ".join(others + [source])
        atomic_write_json(path, data)
    return data["version"]
