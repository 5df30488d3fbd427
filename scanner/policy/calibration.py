"""Thresholds per (detector, model, stage), read from the calibration file that
``benchmarks/`` writes. Nothing here has a built-in default: an uncalibrated model
is an error, not a guess."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.errors import CalibrationError
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
    return Calibration(str(data.get("version", "unversioned")), str(path), detectors)
