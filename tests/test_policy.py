"""Calibration file parsing and the pure verdict rules."""

from __future__ import annotations

import json

import pytest

from scanner.errors import CalibrationError
from scanner.policy import Calibration, Match, Thresholds, decide, load_calibration
from scanner.policy.rules import level_of, verdict_of
from scanner.types import Clearance, Metric, Reference, Stage, Verdict

HAM = Thresholds(Metric.HAMMING, block=20.0, review=40.0)
COS = Thresholds(Metric.COSINE, block=0.95, review=0.85)


def _ref(i: int, clearance: Clearance = Clearance.UNCLEARED) -> Reference:
    return Reference(
        id=i, sha256=f"{i:064x}", title=f"Ref {i}", rights_holder="Holder", clearance=clearance,
        media_type="image", path=f"/refs/{i}.png", added_at="2024-01-01T00:00:00+00:00",
    )


def _pdq(score, ref=None, **kw) -> Match:
    return Match("image.pdq", "pdq", ref or _ref(1), score, HAM, **kw)


def _clip(score, ref=None, **kw) -> Match:
    return Match("image.clip", "clip-x", ref or _ref(1), score, COS, **kw)


# --------------------------------------------------------------------------- levels


@pytest.mark.parametrize(
    "score, level",
    [(0, "block"), (19, "block"), (20, "block"), (21, "review"), (39, "review"), (40, "review"),
     (41, None), (256, None)],
)
def test_hamming_levels_at_boundaries(score, level):
    decided = level_of(_pdq(score))
    assert (decided[0] if decided else None) == level
    verdict, findings = decide([_pdq(score)])
    expected = {"block": Verdict.BLOCK, "review": Verdict.REVIEW, None: Verdict.PASS}[level]
    assert verdict is expected
    assert [f.level for f in findings] == ([level] if level else [])


@pytest.mark.parametrize(
    "score, level",
    [(1.0, "block"), (0.96, "block"), (0.95, "block"), (0.9499, "review"), (0.9, "review"),
     (0.85, "review"), (0.8499, None), (0.0, None), (-1.0, None)],
)
def test_cosine_levels_at_boundaries(score, level):
    decided = level_of(_clip(score))
    assert (decided[0] if decided else None) == level
    verdict, findings = decide([_clip(score)])
    expected = {"block": Verdict.BLOCK, "review": Verdict.REVIEW, None: Verdict.PASS}[level]
    assert verdict is expected
    assert [f.level for f in findings] == ([level] if level else [])


def test_metric_direction():
    assert Metric.HAMMING.closer_or_equal(10, 10) and Metric.HAMMING.closer_or_equal(9, 10)
    assert not Metric.HAMMING.closer_or_equal(11, 10)
    assert Metric.COSINE.closer_or_equal(0.9, 0.9) and not Metric.COSINE.closer_or_equal(0.89, 0.9)
    assert Metric.HAMMING.closer(3, 4) and not Metric.HAMMING.closer(4, 4)
    assert Metric.COSINE.closer(0.5, 0.4) and not Metric.COSINE.closer(0.4, 0.4)


def test_no_matches_is_pass():
    assert decide([]) == (Verdict.PASS, [])


# --------------------------------------------------------------------------- clearance


@pytest.mark.parametrize("clearance", [Clearance.LICENSED, Clearance.OWNED])
@pytest.mark.parametrize("make, score", [(_pdq, 0), (_pdq, 30), (_clip, 0.99), (_clip, 0.9)])
def test_cleared_references_pass_with_cleared_finding(clearance, make, score):
    verdict, findings = decide([make(score, _ref(7, clearance))])
    assert verdict is Verdict.PASS
    assert len(findings) == 1
    f = findings[0]
    assert f.level == "cleared"
    assert f.clearance == clearance.value
    assert f.reference_id == 7
    assert "cleared" in f.note and clearance.value in f.note


@pytest.mark.parametrize("clearance", [Clearance.LICENSED, Clearance.OWNED])
def test_cleared_reference_below_review_has_no_finding(clearance):
    assert decide([_pdq(100, _ref(7, clearance)), _clip(0.1, _ref(7, clearance))]) == (Verdict.PASS, [])


def test_cleared_does_not_hide_an_uncleared_match():
    verdict, findings = decide([_pdq(0, _ref(1, Clearance.OWNED)), _pdq(35, _ref(2))])
    assert verdict is Verdict.REVIEW
    assert [(f.level, f.reference_id) for f in findings] == [("review", 2), ("cleared", 1)]


# --------------------------------------------------------------------------- best score, ordering


def test_best_hamming_score_per_detector_and_reference():
    verdict, findings = decide([_pdq(35), _pdq(12), _pdq(30)])
    assert verdict is Verdict.BLOCK
    assert len(findings) == 1
    assert findings[0].score == 12


def test_best_cosine_score_per_detector_and_reference():
    verdict, findings = decide([_clip(0.86), _clip(0.97), _clip(0.90)])
    assert verdict is Verdict.BLOCK
    assert len(findings) == 1
    assert findings[0].score == 0.97


def test_best_match_wins_even_when_it_comes_last():
    _, findings = decide([_clip(0.5), _clip(0.88)])
    assert [f.score for f in findings] == [0.88]
    _, findings = decide([_pdq(200), _pdq(39)])
    assert [f.score for f in findings] == [39]


def test_same_reference_different_detectors_are_one_finding_with_all_evidence():
    verdict, findings = decide([_pdq(30), _clip(0.96)])
    assert verdict is Verdict.BLOCK
    [f] = findings
    assert (f.detector, f.level) == ("image.clip", "block")  # the most severe detector leads
    assert [(e["detector"], e["level"], e["score"]) for e in f.evidence] == [
        ("image.clip", "block", 0.96), ("image.pdq", "review", 30.0)]
    assert f.evidence[1]["threshold_block"] == 20.0 and f.evidence[1]["metric"] == "hamming"


class _Fusion:
    """A stand-in fusion: mean of 'closeness' so the test controls the fused level exactly."""

    name, model = "fused", "fusion-test"
    thresholds = Thresholds(Metric.PROBABILITY, block=0.9, review=0.5)

    def covers(self, detector, model):
        return detector in {"image.pdq", "image.clip"}

    def score(self, scores):
        closeness = [1 - scores.get("image.pdq", 256) / 256, scores.get("image.clip", 0.0)]
        return sum(closeness) / 2


def test_fusion_decides_for_the_detectors_it_covers():
    # each alone only at review level (or below), together the fused score blocks
    _, [f] = decide([_pdq(30), _clip(0.94)], fusion=_Fusion())
    assert f.detector == "fused" and f.metric == "probability" and f.level == "block"
    assert f.score == round((1 - 30 / 256 + 0.94) / 2, 4)
    assert {e["detector"]: e["level"] for e in f.evidence} == {"image.pdq": "review", "image.clip": "review"}
    # and a pair that an individual detector would flag is passed when the fused score is low
    verdict, findings = decide([_clip(0.86)], fusion=_Fusion())
    assert findings == [] and verdict is Verdict.PASS


def test_fusion_keeps_uncovered_detectors_levels():
    other = Match("image.face", "face-x", _ref(1), 0.99, COS)
    _, [f] = decide([_pdq(200), other], fusion=_Fusion())
    assert f.detector == "image.face" and f.level == "block"
    assert {e["detector"] for e in f.evidence} == {"image.pdq", "image.face"}


def test_cleared_reference_shows_fused_evidence():
    _, [f] = decide([_pdq(10, _ref(2, Clearance.LICENSED)), _clip(0.99, _ref(2, Clearance.LICENSED))],
                    fusion=_Fusion())
    assert f.level == "cleared" and len(f.evidence) == 2


def test_findings_ordering():
    matches = [
        _pdq(38, _ref(1)),                            # review
        _clip(0.99, _ref(2, Clearance.LICENSED)),     # cleared
        _clip(0.86, _ref(3)),                         # review
        _pdq(10, _ref(4)),                            # block
        _clip(0.96, _ref(5)),                         # block
        _pdq(5, _ref(6)),                             # block, closer than ref 4
        _clip(0.92, _ref(7)),                         # review, closer than ref 3
    ]
    verdict, findings = decide(matches)
    assert verdict is Verdict.BLOCK
    assert [(f.level, f.detector, f.reference_id) for f in findings] == [
        ("block", "image.clip", 5),
        ("block", "image.pdq", 6),
        ("block", "image.pdq", 4),
        ("review", "image.clip", 7),
        ("review", "image.clip", 3),
        ("review", "image.pdq", 1),
        ("cleared", "image.clip", 2),
    ]


def test_finding_carries_evidence():
    _, [f] = decide([_clip(0.912345678, _ref(3), extra={"orientation": "flip_h"})])
    assert f.detector == "image.clip" and f.model == "clip-x"
    assert f.reference_title == "Ref 3" and f.rights_holder == "Holder"
    assert f.clearance == "uncleared"
    assert f.score == 0.9123
    assert f.metric == "cosine"
    assert (f.threshold_block, f.threshold_review) == (0.95, 0.85)
    assert f.extra == {"orientation": "flip_h"}
    assert f.note == ""


def test_verdict_of_precedence():
    _, [block] = decide([_pdq(0, _ref(1))])
    _, [review] = decide([_pdq(30, _ref(2))])
    _, [cleared] = decide([_pdq(0, _ref(3, Clearance.OWNED))])
    assert verdict_of([cleared, review, block]) is Verdict.BLOCK
    assert verdict_of([cleared, review]) is Verdict.REVIEW
    assert verdict_of([cleared]) is Verdict.PASS
    assert verdict_of([]) is Verdict.PASS


# --------------------------------------------------------------------------- calibration file


def _cal_data() -> dict:
    return {
        "version": "2024-06-01",
        "detectors": {
            "image.pdq": {
                "pdq": {
                    "metric": "hamming",
                    "final": {"block": 31, "review": 63},
                    "ideation": {"block": 20, "review": 40},
                }
            },
            "image.clip": {
                "clip-x": {
                    "metric": "cosine",
                    "final": {"block": 0.93, "review": 0.85},
                    "ideation": {"block": 0.97, "review": 0.9},
                }
            },
        },
    }


def _write(tmp_path, data, name="calibration.json"):
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def test_load_calibration_and_thresholds(tmp_path):
    cal = load_calibration(_write(tmp_path, _cal_data()))
    assert isinstance(cal, Calibration)
    assert cal.version == "2024-06-01"
    assert cal.thresholds("image.pdq", "pdq", Stage.FINAL) == Thresholds(Metric.HAMMING, 31.0, 63.0)
    assert cal.thresholds("image.pdq", "pdq", Stage.IDEATION) == Thresholds(Metric.HAMMING, 20.0, 40.0)
    t = cal.thresholds("image.clip", "clip-x", Stage.IDEATION)
    assert t.metric is Metric.COSINE and (t.block, t.review) == (0.97, 0.9)


def test_unversioned_calibration(tmp_path):
    data = _cal_data()
    del data["version"]
    assert load_calibration(_write(tmp_path, data)).version == "unversioned"


def test_missing_detector_or_model_is_calibration_error(tmp_path):
    cal = load_calibration(_write(tmp_path, _cal_data()))
    with pytest.raises(CalibrationError) as err:
        cal.thresholds("image.clip", "uncalibrated-model", Stage.FINAL)
    assert "uncalibrated-model" in str(err.value)
    assert "calibrated models of image.clip: clip-x" in str(err.value)  # says what would run instead
    with pytest.raises(CalibrationError, match="audio.chroma"):
        cal.thresholds("audio.chroma", "x", Stage.FINAL)
    with pytest.raises(CalibrationError):
        cal.thresholds("image.pdq", "clip-x", Stage.FINAL)


def test_missing_calibration_file(tmp_path):
    with pytest.raises(CalibrationError, match="not found"):
        load_calibration(tmp_path / "nope.json")


def _broken(mutate):
    data = _cal_data()
    mutate(data)
    return data


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{not json",
        "[]",
        "{}",
        {"detectors": {"image.pdq": {"pdq": {"metric": "euclid", "final": {"block": 1, "review": 2},
                                             "ideation": {"block": 1, "review": 2}}}}},
        _broken(lambda d: d["detectors"]["image.pdq"]["pdq"].pop("ideation")),
        _broken(lambda d: d["detectors"]["image.pdq"]["pdq"].pop("metric")),
        _broken(lambda d: d["detectors"]["image.pdq"]["pdq"]["final"].pop("review")),
        _broken(lambda d: d["detectors"]["image.clip"]["clip-x"]["final"].update(block="high")),
        _broken(lambda d: d["detectors"]["image.clip"]["clip-x"]["final"].update(block=None)),
        _broken(lambda d: d["detectors"]["image.clip"]["clip-x"].update(final=[0.9, 0.8])),
        _broken(lambda d: d["detectors"]["image.clip"].update({"clip-y": "0.9"})),
    ],
)
def test_malformed_calibration_rejected(tmp_path, content):
    with pytest.raises(CalibrationError, match="malformed"):
        load_calibration(_write(tmp_path, content))


@pytest.mark.parametrize(
    "content",
    [
        {"detectors": []},
        {"detectors": {"image.pdq": ["pdq"]}},
        {"detectors": "image.pdq"},
    ],
)
def test_wrongly_shaped_calibration_is_calibration_error(tmp_path, content):
    """Lists or strings where objects belong must be CalibrationError, not AttributeError."""
    with pytest.raises(CalibrationError, match="malformed"):
        load_calibration(_write(tmp_path, content))


def test_merge_calibration_keeps_other_entries_and_versions(tmp_path):
    from scanner.policy.calibration import merge_calibration

    path = tmp_path / "cal.json"
    a = {"metric": "hamming", "final": {"block": 10, "review": 20}, "ideation": {"block": 10, "review": 10}}
    b = {"metric": "cosine", "final": {"block": 0.9, "review": 0.8}, "ideation": {"block": 0.9, "review": 0.9}}
    v1 = merge_calibration(path, {("image.pdq", "pdq"): a}, "image_copy", "benchmarks/image_copy.py run 1")
    v2 = merge_calibration(path, {("audio.voice", "m"): b}, "likeness", "benchmarks/likeness.py run 1")
    v3 = merge_calibration(path, {("image.pdq", "pdq"): a}, "image_copy", "benchmarks/image_copy.py run 2")
    cal = load_calibration(path)
    assert set(cal.detectors) == {"image.pdq", "audio.voice"} and v1 != v2
    assert v3.split("-")[-1] == v2.split("-")[-1]  # same thresholds, same digest
    assert json.loads(path.read_text())["source"] == "benchmarks/likeness.py run 1; benchmarks/image_copy.py run 2"


def _fusion_entry() -> dict:
    return {"detectors": {"image.pdq": "pdq", "image.clip": "clip-x"},
            "features": [{"detector": "image.clip", "transform": "fisher", "closer": "higher"},
                         {"detector": "image.pdq", "transform": "linear", "scale": 256, "closer": "lower"}],
            "coef": [4.0, -12.0], "intercept": 0.0, "impute": {"image.clip": 0.0, "image.pdq": 0.5},
            "final": {"block": 0.99, "review": 0.9}, "ideation": {"block": 0.995, "review": 0.99}}


def test_calibration_fusion_per_stage_feeds_decide(tmp_path):
    data = {**_cal_data(), "fusion": {"image": _fusion_entry()}}
    cal = load_calibration(_write(tmp_path, data))
    final, ideation = cal.fusion("image", Stage.FINAL), cal.fusion("image", Stage.IDEATION)
    assert (final.thresholds.block, final.thresholds.review) == (0.99, 0.9)
    assert (ideation.thresholds.block, ideation.thresholds.review) == (0.995, 0.99)
    assert final.covers("image.pdq", "pdq") and not final.covers("image.pdq", "other-model")
    assert cal.fusion("audio", Stage.FINAL) is None
    _, [f] = decide([_pdq(4), _clip(0.97)], fusion=final)
    assert f.detector == "fused.image" and f.level == "block" and f.score >= 0.99
    # a pair only the clip model half-likes stays below the fused review level: no finding
    assert decide([_clip(0.5)], fusion=final)[1] == []


def test_calibration_with_bad_fusion_entry_is_refused(tmp_path):
    bad = {**_fusion_entry(), "coef": [-4.0, -12.0]}  # closer clip score would lower the fused score
    with pytest.raises(CalibrationError, match="fusion"):
        load_calibration(_write(tmp_path, {**_cal_data(), "fusion": {"image": bad}}))


def test_fusion_is_used_only_when_all_its_detectors_run(tmp_path):
    data = {**_cal_data(), "fusion": {"image": _fusion_entry(),
                                      "image@clip-y": {**_fusion_entry(), "detectors": {"image.pdq": "pdq",
                                                                                        "image.clip": "clip-y"}}}}
    cal = load_calibration(_write(tmp_path, data))
    assert cal.fusion("image", Stage.FINAL, {"image.pdq": "pdq", "image.clip": "clip-x"}).fit.detectors[
        "image.clip"] == "clip-x"
    assert cal.fusion("image", Stage.FINAL, {"image.pdq": "pdq", "image.clip": "clip-y"}).fit.detectors[
        "image.clip"] == "clip-y"
    assert cal.fusion("image", Stage.FINAL, {"image.pdq": "pdq"}) is None  # clip switched off: per-detector levels
    assert cal.fusion("image", Stage.FINAL, {"image.pdq": "pdq", "image.clip": "other"}) is None
