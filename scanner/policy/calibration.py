"""Thresholds per (detector, model, stage), read from the calibration file that
``benchmarks/`` writes. Nothing here has a built-in default: an uncalibrated model
is an error, not a guess."""

from __future__ import annotations

import fcntl
import hashlib
import json
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
            return StageFusion(f"fused.{modality}", f"fusion-{self.version}",
                               Thresholds(Metric.PROBABILITY, block, review), model)
        return None

    def thresholds(self, detector: str, model: str, stage: Stage) -> Thresholds:
        entry = self.detectors.get(detector, {}).get(model)
        if entry is None:
            raise CalibrationError(
                f"no calibrated thresholds for {detector} with model {model!r} in {self.path}; "
                f"run `python benchmarks/image_copy.py --clip-model {model}` to calibrate it"
                if detector == "image.clip"
                else f"no calibrated thresholds for {detector} ({model!r}) in {self.path}"
            )
        levels = entry[stage.value]
        return Thresholds(Metric(entry["metric"]), float(levels["block"]), float(levels["review"]))


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


def load_calibration(path: Path) -> Calibration:
    """Read and validate the calibration file."""
    try:
        data = json.loads(Path(path).read_text())
        detectors = data["detectors"]
        for det, models in detectors.items():
            for model, entry in models.items():
                metric = Metric(entry["metric"])
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


RESERVED_KEYS = ("detectors", "version", "created", "source")


def thresholds_digest(detectors: dict[str, dict[str, Any]],
                      sections: dict[str, dict[str, Any]] | None = None) -> str:
    """Short hash over every stored threshold (and every extra section's entries, such as ``fusion``, less
    their ``measured`` notes), so a file's version changes when any of them does."""
    core: dict[str, Any] = {det: {model: {k: e.get(k) for k in ("metric", "final", "ideation")}
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
            detectors.setdefault(det, {})[model] = entry
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
