"""One calibrated score per (asset, reference) pair from every detector's score for that pair.

A fusion entry (written by ``benchmarks/image_copy.py`` under the top-level ``"fusion"`` key of the
calibration file, one entry per modality) is a logistic model whose every part is data::

    {"detectors": {"image.pdq": "pdq", "image.sscd": "sscd-disc-mixup"},   # detector -> calibrated model
     "features": [{"detector": "image.sscd", "transform": "fisher", "closer": "higher"},
                  {"detector": "image.pdq", "transform": "linear", "scale": 256, "closer": "lower"}],
     "coef": [3.1, -20.0], "intercept": 1.5,
     "impute": {"image.sscd": 0.05, "image.pdq": 0.35},   # feature value when a detector gave no score
     "final": {"block": 0.99, "review": 0.9}, "ideation": {"block": 0.99, "review": 0.97}}

``fused = 1 / (1 + exp(-(intercept + sum(coef_i * x_i))))`` with ``x_i`` the feature transform of the
detector's score: ``linear`` (score / scale), ``capped`` (min(score, scale) / scale: a distance that
carries evidence only below ``scale``, e.g. PDQ bits), ``fisher`` (atanh of a cosine, clipped to
+-0.9999) or ``log1p`` (log(1 + count), for inlier counts). A detector that produced no score for the pair
(absent, None, NaN or infinite: not comparable) contributes its ``impute`` value, which is on the
feature scale. Every coefficient must point the closer direction up (``closer: higher`` needs
coef >= 0, ``lower`` needs coef <= 0), so a closer match never lowers the fused score.

Pure: no I/O, no detector imports; the policy and the benchmark call the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from scanner.errors import CalibrationError

FISHER_CLIP = 0.9999  # cosine bound before atanh, so an identical pair gives a finite feature
TRANSFORMS = ("linear", "capped", "fisher", "log1p")
CLOSER = ("higher", "lower")
STAGES = ("final", "ideation")


@dataclass(frozen=True)
class Feature:
    """One input of the logistic model: a detector's score through a monotone increasing transform."""

    detector: str
    transform: str
    scale: float
    closer: str  # "higher" or "lower": which way the detector's score moves for a closer match

    def value(self, scores: np.ndarray) -> np.ndarray:
        """The feature for an array of scores (NaN stays NaN)."""
        s = np.asarray(scores, dtype=np.float64)
        if self.transform == "linear":
            return s / self.scale
        if self.transform == "capped":
            return np.minimum(s, self.scale) / self.scale
        if self.transform == "fisher":
            return np.arctanh(np.clip(s, -FISHER_CLIP, FISHER_CLIP))
        return np.log1p(np.maximum(s, 0.0))


@dataclass(frozen=True)
class FusionModel:
    """A parsed, validated fusion entry."""

    detectors: dict[str, str]  # detector name -> model id the coefficients were fitted for
    features: tuple[Feature, ...]
    coef: tuple[float, ...]
    intercept: float
    impute: dict[str, float]  # detector name -> feature value used when it gave no score
    levels: dict[str, tuple[float, float]]  # stage -> (block, review), block >= review

    def linear(self, scores: Mapping[str, Any]) -> np.ndarray:
        """The logistic model's linear predictor; ``scores`` maps detector names to scalars or arrays."""
        total: np.ndarray | float = self.intercept
        for f, c in zip(self.features, self.coef):
            raw = scores.get(f.detector)
            x = f.value(np.asarray(np.nan if raw is None else raw, dtype=np.float64))
            total = total + c * np.where(np.isfinite(x), x, self.impute[f.detector])
        return np.asarray(total, dtype=np.float64)

    def score(self, scores: Mapping[str, Any]) -> np.ndarray:
        """Fused score(s) in [0, 1] for ``scores`` (scalars or equal-shaped arrays per detector)."""
        z = self.linear(scores)
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function without overflow warnings

    def thresholds(self, stage: str) -> tuple[float, float]:
        """(block, review) for ``stage`` ("final" or "ideation")."""
        try:
            return self.levels[stage]
        except KeyError:
            raise CalibrationError(f"fusion entry has no levels for stage {stage!r}") from None


def _finite(value: Any, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise CalibrationError(f"fusion entry: {what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise CalibrationError(f"fusion entry: {what} must be finite, got {value!r}")
    return out


def parse_fusion(entry: Mapping[str, Any]) -> FusionModel:
    """Validate a fusion entry and return the model; any defect is a ``CalibrationError`` naming it."""
    if not isinstance(entry, Mapping):
        raise CalibrationError(f"fusion entry must be an object, got {type(entry).__name__}")
    for key in ("features", "coef", "intercept", "impute", *STAGES):
        if key not in entry:
            raise CalibrationError(f"fusion entry has no {key!r}")
    raw_features, raw_coef, impute = entry["features"], entry["coef"], entry["impute"]
    if not isinstance(raw_features, list) or not raw_features:
        raise CalibrationError("fusion entry: 'features' must be a non-empty list")
    if not isinstance(raw_coef, list) or len(raw_coef) != len(raw_features):
        raise CalibrationError(f"fusion entry: 'coef' must be a list of {len(raw_features)} numbers (one per feature)")
    if not isinstance(impute, Mapping):
        raise CalibrationError("fusion entry: 'impute' must map detector names to feature values")
    features, coef = [], []
    for i, (f, c) in enumerate(zip(raw_features, raw_coef)):
        if not isinstance(f, Mapping) or not isinstance(f.get("detector"), str):
            raise CalibrationError(f"fusion entry: feature {i} must be an object with a 'detector' name")
        transform, closer = f.get("transform", "linear"), f.get("closer")
        if transform not in TRANSFORMS:
            raise CalibrationError(f"fusion entry: feature {i} has unknown transform {transform!r} "
                                   f"(known: {', '.join(TRANSFORMS)})")
        if closer not in CLOSER:
            raise CalibrationError(f"fusion entry: feature {i} needs 'closer' set to 'higher' or 'lower'")
        scale = _finite(f.get("scale", 1.0), f"feature {i} scale")
        if scale <= 0:
            raise CalibrationError(f"fusion entry: feature {i} scale must be positive, got {scale}")
        value = _finite(c, f"coef[{i}]")
        if (value < 0 and closer == "higher") or (value > 0 and closer == "lower"):
            raise CalibrationError(f"fusion entry: coef[{i}] = {value} for {f['detector']} would make a closer match "
                                   "score lower")
        if f["detector"] not in impute:
            raise CalibrationError(f"fusion entry: no 'impute' value for {f['detector']}")
        features.append(Feature(f["detector"], transform, scale, closer))
        coef.append(value)
    levels = {}
    for stage in STAGES:
        lv = entry[stage]
        if not isinstance(lv, Mapping):
            raise CalibrationError(f"fusion entry: {stage!r} must be an object with 'block' and 'review'")
        block, review = _finite(lv.get("block"), f"{stage}.block"), _finite(lv.get("review"), f"{stage}.review")
        if not (0.0 <= review <= block <= 1.0):
            raise CalibrationError(f"fusion entry: {stage} needs 0 <= review <= block <= 1, got block {block}, "
                                   f"review {review}")
        levels[stage] = (block, review)
    detectors = entry.get("detectors", {})
    if not isinstance(detectors, Mapping) or not all(isinstance(v, str) for v in detectors.values()):
        raise CalibrationError("fusion entry: 'detectors' must map detector names to model ids")
    return FusionModel(dict(detectors), tuple(features), tuple(coef), _finite(entry["intercept"], "intercept"),
                       {f.detector: _finite(impute[f.detector], f"impute[{f.detector}]") for f in features}, levels)


def fused_score(scores: Mapping[str, float], entry: Mapping[str, Any] | FusionModel) -> float:
    """The fused score in [0, 1] of one (asset, reference) pair from its per-detector ``scores``
    (e.g. {"image.pdq": 40, "image.sscd": 0.71}); detectors without a score for the pair may be left out."""
    model = entry if isinstance(entry, FusionModel) else parse_fusion(entry)
    return float(model.score(scores))


def load_fusion(calibration: Mapping[str, Any]) -> dict[str, FusionModel]:
    """Every fusion model (modality -> model) in a parsed calibration file; {} when it has none."""
    section = calibration.get("fusion", {}) if isinstance(calibration, Mapping) else None
    if not isinstance(section, Mapping):
        raise CalibrationError("calibration file: 'fusion' must be an object mapping modalities to entries")
    out = {}
    for name, entry in section.items():
        try:
            out[name] = parse_fusion(entry)
        except CalibrationError as exc:
            raise CalibrationError(f"calibration file: fusion[{name!r}]: {exc}") from None
    return out
