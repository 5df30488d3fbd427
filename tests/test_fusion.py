"""scanner.policy.fusion: the logistic fusion of per-detector pair scores."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from scanner.errors import CalibrationError
from scanner.policy.calibration import load_calibration
from scanner.policy.fusion import fused_score, load_fusion, parse_fusion
from scanner.types import Stage

ENTRY = {
    "detectors": {"image.pdq": "pdq", "image.sscd": "sscd-disc-mixup"},
    "features": [
        {"detector": "image.sscd", "transform": "fisher", "closer": "higher"},
        {"detector": "image.pdq", "transform": "linear", "scale": 256, "closer": "lower"},
        {"detector": "image.local", "transform": "log1p", "closer": "higher"},
    ],
    "coef": [6.0, -10.0, 1.5],
    "intercept": 1.0,
    "impute": {"image.sscd": 0.0, "image.pdq": 0.5, "image.local": 0.0},
    "final": {"block": 0.99, "review": 0.9},
    "ideation": {"block": 0.99, "review": 0.97},
}


def test_value_is_the_logistic_of_the_linear_predictor() -> None:
    z = 1.0 + 6.0 * math.atanh(0.5) - 10.0 * 64 / 256 + 1.5 * math.log1p(9)
    got = fused_score({"image.sscd": 0.5, "image.pdq": 64, "image.local": 9}, ENTRY)
    assert got == pytest.approx(1 / (1 + math.exp(-z)), rel=1e-12)


@pytest.mark.parametrize("detector,values", [
    ("image.sscd", [-0.2, 0.1, 0.4, 0.7, 0.95, 1.0]),
    ("image.pdq", [256, 128, 64, 30, 8, 0]),  # Hamming: closer is lower
    ("image.local", [0, 4, 12, 40, 400]),
])
def test_fused_score_rises_as_each_score_gets_closer(detector: str, values: list[float]) -> None:
    base = {"image.sscd": 0.3, "image.pdq": 100, "image.local": 5}
    got = [fused_score({**base, detector: v}, ENTRY) for v in values]
    assert all(b > a for a, b in zip(got, got[1:])), got
    assert all(0.0 <= g <= 1.0 for g in got)


def test_missing_none_nan_and_infinite_scores_use_the_imputed_value() -> None:
    imputed = {"image.sscd": 0.6, "image.pdq": 0.5 * 256, "image.local": 0}  # pdq impute 0.5 on the /256 scale
    expected = fused_score(imputed, ENTRY)
    for missing in ({}, {"image.pdq": None}, {"image.pdq": float("nan")}, {"image.pdq": float("inf")}):
        scores = {"image.sscd": 0.6, "image.local": 0, **missing}
        assert fused_score(scores, ENTRY) == pytest.approx(expected, rel=1e-12)
    # the imputed value is really used: another impute gives another score
    other = copy.deepcopy(ENTRY)
    other["impute"]["image.pdq"] = 0.1
    assert fused_score({"image.sscd": 0.6, "image.local": 0}, other) > expected


def test_a_capped_feature_rises_below_its_cap_and_is_flat_above() -> None:
    entry = copy.deepcopy(ENTRY)
    entry["features"][1] = {"detector": "image.pdq", "transform": "capped", "scale": 64, "closer": "lower"}
    got = [fused_score({"image.sscd": 0.3, "image.pdq": d}, entry) for d in (0, 16, 32, 63, 64, 100, 256)]
    assert got[0] > got[1] > got[2] > got[3] > got[4]
    assert got[4] == got[5] == got[6]


def test_vector_scores_match_the_scalar_function() -> None:
    model = parse_fusion(ENTRY)
    sscd = np.array([0.1, 0.5, 0.9])
    pdq = np.array([np.inf, 40.0, 10.0])
    got = model.score({"image.sscd": sscd, "image.pdq": pdq})
    assert got == pytest.approx([fused_score({"image.sscd": s, "image.pdq": p}, ENTRY) for s, p in zip(sscd, pdq)])


def test_unknown_detectors_in_the_scores_are_ignored() -> None:
    scores = {"image.sscd": 0.5, "image.pdq": 60}
    assert fused_score({**scores, "image.face": 0.99}, ENTRY) == fused_score(scores, ENTRY)


def _broken(path: str, value) -> dict:
    entry = copy.deepcopy(ENTRY)
    *parents, last = path.split(".")
    target = entry
    for p in parents:
        target = target[int(p)] if isinstance(target, list) else target[p]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return entry


@pytest.mark.parametrize("path,value,message", [
    ("coef", [6.0, -10.0], "one per feature"),
    ("coef", [6.0, 10.0, 1.5], "closer match score lower"),  # PDQ distance pushing the score up
    ("coef", [float("nan"), -10.0, 1.5], "finite"),
    ("intercept", "x", "number"),
    ("impute", {"image.sscd": 0.0, "image.pdq": 0.5}, "impute"),
    ("features", [], "non-empty"),
    ("features.0.transform", "cube", "unknown transform"),
    ("features.1.closer", KeyError, "closer"),
    ("features.1.scale", 0, "positive"),
    ("final.block", 0.5, "review <= block"),
    ("ideation", KeyError, "ideation"),
])
def test_bad_entry_is_a_calibration_error(path: str, value, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        fused_score({"image.sscd": 0.5}, _broken(path, value))


def test_load_fusion_reads_every_modality_and_names_the_bad_one() -> None:
    assert load_fusion({"detectors": {}}) == {}
    models = load_fusion({"detectors": {}, "fusion": {"image": ENTRY}})
    assert models["image"].thresholds("final") == (0.99, 0.9)
    assert models["image"].detectors == {"image.pdq": "pdq", "image.sscd": "sscd-disc-mixup"}
    with pytest.raises(CalibrationError, match=r"fusion\['image'\]"):
        load_fusion({"fusion": {"image": _broken("coef", [1.0])}})
    with pytest.raises(CalibrationError, match="'fusion' must be an object"):
        load_fusion({"fusion": [ENTRY]})


def test_a_fusion_section_does_not_break_load_calibration(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"version": "v", "fusion": {"image": ENTRY}, "detectors": {
        "image.pdq": {"pdq": {"metric": "hamming", "final": {"block": 40, "review": 60},
                              "ideation": {"block": 40, "review": 50}}}}}))
    cal = load_calibration(path)
    assert cal.thresholds("image.pdq", "pdq", Stage.FINAL).block == 40
    assert "image" in load_fusion(json.loads(path.read_text()))


def test_the_fused_model_is_named_by_what_it_fuses_and_its_calibration(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"version": "2026-12-01-melody-abc", "detectors": {},
                                "fusion": {"image@sscd-disc-mixup": ENTRY}}))
    fused = load_calibration(path).fusion("image", Stage.FINAL, {"image.pdq": "pdq", "image.sscd": "sscd-disc-mixup"})
    assert fused is not None
    assert fused.model == "image@sscd-disc-mixup (calibration 2026-12-01-melody-abc)"


def test_the_shipped_calibration_file_has_a_valid_fusion_entry_when_present() -> None:
    path = Path(__file__).resolve().parents[1] / "scanner" / "policy" / "calibration.json"
    data = json.loads(path.read_text())
    load_calibration(path)
    models = load_fusion(data)
    for model in models.values():
        for f in model.features:
            assert f.detector in model.detectors


def test_merge_calibration_writes_and_keeps_the_fusion_section(tmp_path: Path) -> None:
    from scanner.policy.calibration import merge_calibration

    path = tmp_path / "calibration.json"
    pdq = {"metric": "hamming", "final": {"block": 40, "review": 60}, "ideation": {"block": 40, "review": 50}}
    v1 = merge_calibration(path, {("image.pdq", "pdq"): pdq}, "image_copy", "run 1", sections={"fusion": {"image": ENTRY}})
    assert json.loads(path.read_text())["fusion"]["image"]["coef"] == ENTRY["coef"]
    # another benchmark's merge keeps the section and the version digest
    v2 = merge_calibration(path, {("audio.voice", "m"): pdq}, "likeness", "run 2")
    data = json.loads(path.read_text())
    assert data["fusion"]["image"] == ENTRY and "image.pdq" in data["detectors"]
    changed = copy.deepcopy(ENTRY)
    changed["final"]["block"] = 0.995
    v3 = merge_calibration(path, {}, "image_copy", "run 3", sections={"fusion": {"image": changed}})
    assert v1.split("-")[-1] != v2.split("-")[-1] != v3.split("-")[-1]
    assert load_fusion(json.loads(path.read_text()))["image"].thresholds("final") == (0.995, 0.9)
    with pytest.raises(CalibrationError, match="cannot merge section"):
        merge_calibration(path, {}, "image_copy", "run 4", sections={"detectors": {}})
