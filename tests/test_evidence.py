"""Typed evidence (issue 11 item 6, issue 17's piano roll): every evidence type round-trips through the
JSON keys records always had, detectors' hits carry it, the HTML report draws each type, a results.jsonl
line written before evidence was typed reads and renders the same, and reports name no detector."""

from __future__ import annotations

import ast
import json
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from scanner.detectors.base import Hit, detector_class, detector_names
from scanner.reports.actions import describe_score, likeness_of
from scanner.reports.html import write_html
from scanner.reports.jsonl import read_results, write_jsonl
from scanner.types import (EVIDENCE_TYPES, AssetResult, Box, Denoised, Detection, Duration, FrameRef, ImageSize, Keypoints,
                           Landmarks, Note, Notes, Polygon, Sample, Span, evidence_from_json, evidence_to_json)

ROOT = Path(__file__).resolve().parents[1]

# One instance of every evidence type (several where the JSON layout differs) and the keys it writes:
# exactly the keys findings' ``extra`` had before evidence was typed.
CASES = [
    (Box(10, 20, 100, 200), {"box": [10, 20, 110, 220]}),
    (Box(1.5, 2.5, 3.0, 4.0, "ref"), {"ref_box": [1.5, 2.5, 4.5, 6.5]}),
    (Polygon(((1.5, 2.0), (100.0, 2.0), (100.0, 90.0))), {"asset_polygon": [[1.5, 2.0], [100.0, 2.0], [100.0, 90.0]]}),
    (Polygon(((0, 0), (300, 0), (300, 200)), "ref"), {"ref_polygon": [[0, 0], [300, 0], [300, 200]]}),
    (Polygon(((1, 1), (5, 1), (5, 5)), role="inlier_hull"), {"inlier_hull": [[1, 1], [5, 1], [5, 5]]}),
    (Polygon((), role="work_outline"), {"work_outline": []}),
    (ImageSize(640, 480), {"asset_size": [640, 480]}),
    (ImageSize(300, 200, "ref"), {"ref_size": [300, 200]}),
    (Duration(30.5), {"asset_duration": 30.5}),
    (Duration(180.0, "ref"), {"ref_duration": 180.0}),
    (Span((8.0, 18.5), (15.0, 25.5)), {"asset_start": 8.0, "asset_end": 18.5, "ref_start": 15.0, "ref_end": 25.5}),
    (Span(ref=(1.0, 2.0)), {"ref_start": 1.0, "ref_end": 2.0}),
    (Span((0.5, 4.25), layout="segment"), {"start": 0.5, "end": 4.25}),
    (Span((1.5, 14.0), (0.0, 13.7), "pairs"), {"span": [1.5, 14.0], "ref_span": [0.0, 13.7]}),
    (FrameRef(3, 0.24, "frame 4"), {"frame": 3, "time": 0.24, "timecode": "frame 4"}),
    (FrameRef(timecode="page 2"), {"timecode": "page 2"}),
    (Notes((Note(1.5, 62), Note(1.8, 64, 0.25)), (Note(0.0, 60), Note(0.3, 62, 0.3)), 2, 1.1, 17),
     {"asset_notes": [[1.5, 62], [1.8, 64, 0.25]], "ref_notes": [[0.0, 60], [0.3, 62, 0.3]], "transposition": 2,
      "tempo_ratio": 1.1, "aligned_notes": 17}),
    (Landmarks(41, 1.0, -0.3, 900), {"matches": 41, "time_scale": 1.0, "pitch_shift": -0.3, "asset_landmarks": 900}),
    (Keypoints(40, text_inliers=3, coverage=0.61, tentative=120, ref_visible=0.97, mirrored=False,
               homography=((1.0, 0.0, 5.0), (0.0, 1.0, 7.0), (0.0, 0.0, 1.0)), mostly_text=True,
               summary="40 keypoints on the artwork"),
     {"inliers": 40, "text_inliers": 3, "coverage": 0.61, "tentative": 120, "ref_visible": 0.97, "mirrored": False,
      "homography": [[1.0, 0.0, 5.0], [0.0, 1.0, 7.0], [0.0, 0.0, 1.0]], "mostly_text": True,
      "evidence": "40 keypoints on the artwork"}),
    (Keypoints(9, text_only=True), {"inliers": 9, "text_only": True}),
    (Detection(57, 0.998), {"face_size": 57, "det_score": 0.998}),
    (Sample(9), {"sample_id": 9}),
    (Denoised(), {"denoised": True}),
    (Denoised("music"), {"under_speech": True}),
]


@pytest.mark.parametrize("item,keys", CASES, ids=[f"{type(c[0]).__name__}-{i}" for i, c in enumerate(CASES)])
def test_each_type_round_trips_through_its_legacy_json_keys(item, keys):
    assert item.to_json() == keys
    back = json.loads(json.dumps(item.to_json()))
    assert type(item).from_json(back) == (item,)
    assert evidence_from_json(back) == (item,)


def test_every_type_has_a_case_and_a_whole_set_round_trips():
    assert {type(c[0]) for c in CASES} == set(EVIDENCE_TYPES)
    # one finding's evidence (one item per key layout) in one extra dict
    items = [CASES[i][0] for i in (0, 2, 3, 6, 7, 9, 10, 14, 16, 20, 21)]
    extra = json.loads(json.dumps(evidence_to_json(items)))
    assert set(evidence_from_json(extra)) == set(items)


@pytest.mark.parametrize("extra", [
    {"box": [1, 2, 3]}, {"box": ["1", 2, 3, 4]}, {"box": [5, 5, 1, 1]}, {"asset_size": [0, 10]},
    {"asset_start": math.nan, "asset_end": 2}, {"asset_start": True, "asset_end": 2}, {"frame": -1},
    {"frame": "../x"}, {"sample_id": "9"}, {"matches": 3.5}, {"inliers": "40"}, {"asset_duration": -1},
    {"asset_notes": [[0, 60]], "ref_notes": [[0, "C4"]]}, {"asset_notes": [[0, 60]]}, {"asset_polygon": [[1, 2, 3]]},
    {"asset_notes": [[0, 60]], "ref_notes": [[0, 10 ** 9]]}, {"asset_notes": [[0, -1]], "ref_notes": [[0, 60]]},
    {"span": [1, math.inf]}, {"timecode": 12}, "not a dict", None,
])
def test_malformed_values_give_no_evidence(extra):
    assert evidence_from_json(extra) == ()


def test_a_transposition_beyond_midi_is_dropped():
    (notes,) = Notes.from_json({"transposition": 10 ** 9, "asset_notes": [[0, 60]], "ref_notes": [[0, 60]]})
    assert notes.transposition is None


def test_span_layout_and_image_names_are_checked():
    with pytest.raises(ValueError):
        Span((0, 1), layout="minutes")
    with pytest.raises(ValueError):
        Span((0, 1), (0, 1), layout="segment")
    with pytest.raises(ValueError):
        Box(0, 0, 1, 1, image="thumbnail").to_json()


def test_hits_carry_typed_evidence_and_its_json_view():
    typed = Hit(3, 12.0, {"note": "kept"}, evidence=(Span((1.0, 2.0), (3.0, 4.0)), Landmarks(12)))
    assert typed.extra == {"note": "kept", "asset_start": 1.0, "asset_end": 2.0, "ref_start": 3.0, "ref_end": 4.0,
                           "matches": 12}
    plain = Hit(4, 0.97, {"box": [1, 2, 30, 40], "face_size": 28})  # a vector search's per-row side arrays
    assert plain.evidence == (Box(1, 2, 29, 38), Detection(28))


def _result(extra: dict) -> dict:
    return {"path": "a.png", "sha256": "a" * 64, "media_type": "image", "verdict": "block", "findings": [{
        "detector": "image.local", "model": "rootsift", "reference_id": 7, "reference_title": "Poster",
        "rights_holder": "Studio", "clearance": "uncleared", "score": 40, "metric": "count", "level": "block",
        "threshold_block": 12, "threshold_review": 10, "note": "", "extra": extra, "reference_kind": "work",
        "consent_id": None, "evidence": []}], "error": None, "models": {}, "stage": "final", "calibration": "",
        "indexes": {}, "notes": [], "config": ""}


def test_asset_results_keep_typed_evidence_through_jsonl():
    items = (Polygon(((0, 0), (10, 0), (10, 10))), ImageSize(640, 480), FrameRef(2, 1.0, "00:00:01.000"))
    record = _result(evidence_to_json(items))
    result = AssetResult.from_dict(json.loads(json.dumps(record)))
    assert set(result.findings[0].exhibits) == set(items)
    assert json.loads(json.dumps(result.to_dict())) == record


# ----------------------------------------------------------------------------- the HTML report

class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def _tags(page: Path) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.tags


def _finding(detector: str, extra: dict, **over) -> dict:
    return {"detector": detector, "model": "m", "reference_id": 7, "reference_title": "Work", "rights_holder": "Studio",
            "clearance": "uncleared", "score": 20, "metric": "count", "level": "block", "threshold_block": 17,
            "threshold_review": 16, "note": "", "extra": extra, "reference_kind": "work", **over}


MELODY = Notes(tuple(Note(1.5 + 0.3 * i, 62 + (i % 5)) for i in range(12)),
               tuple(Note(0.0 + 0.33 * i, 60 + (i % 5)) for i in range(12)), 2, 0.91, 30)


def _thumbs(folder: Path, sha: str) -> None:
    (folder / "thumbs").mkdir(parents=True, exist_ok=True)
    (folder / "thumbs" / f"{sha}.jpg").write_bytes(b"jpg")


def test_html_draws_each_evidence_type(tmp_path):
    sha_img, sha_audio, sha_video = "a" * 64, "b" * 64, "c" * 64
    for sha in (sha_img, sha_audio, sha_video):
        _thumbs(tmp_path, sha)
    (tmp_path / "thumbs" / f"{sha_video}-f12.jpg").write_bytes(b"frame")
    image = evidence_to_json([ImageSize(640, 480), ImageSize(300, 200, "ref"), Box(10, 20, 100, 200),
                              Box(5, 6, 7, 8, "ref"), Polygon(((0, 0), (300, 0), (300, 200)), "ref"),
                              Keypoints(40, ref_visible=0.9, summary="40 keypoints on the artwork")])
    audio = evidence_to_json([Duration(60.0), Duration(120.0, "ref"), Span((8.0, 18.0), (15.0, 25.0)),
                              Landmarks(41, 1.0, 0.0)])
    melody = evidence_to_json([Duration(30.0), Span((1.5, 4.8), (0.0, 3.63), "pairs"), MELODY])
    video = evidence_to_json([ImageSize(640, 360), Box(1, 2, 3, 4), FrameRef(12, 2.5, "00:00:02.500")])
    records = [
        {"path": "shot.png", "sha256": sha_img, "media_type": "image", "verdict": "block",
         "findings": [_finding("image.local", image)]},
        {"path": "mix.wav", "sha256": sha_audio, "media_type": "audio", "verdict": "block",
         "findings": [_finding("audio.fingerprint", audio), _finding("audio.melody", melody, reference_id=8)]},
        {"path": "reel.mp4", "sha256": sha_video, "media_type": "video", "verdict": "block",
         "findings": [_finding("image.face", video)]},
    ]
    page = write_html(records, tmp_path / "report.html", lambda f: b"ref-jpg")
    text = page.read_text(encoding="utf-8")
    tags = _tags(page)
    rects = {(a.get("x"), a.get("y"), a.get("width"), a.get("height")) for t, a in tags if t == "rect"}
    assert ("10", "20", "100", "200") in rects and ("5", "6", "7", "8") in rects  # boxes on asset and reference
    assert ("1", "2", "3", "4") in rects  # the face box on the matched video frame
    assert ("8", "0", "10", "1") in rects and ("15", "0", "10", "1") in rects  # spans on both waveform strips
    assert [a["points"] for t, a in tags if t == "polygon"] == ["0,0 300,0 300,200"]
    assert "thumbs/" + sha_video + "-f12.jpg" in text and "asset @ 00:00:02.500" in text
    assert "00:00:02.500 (frame 12)" in text  # frame ref as timecode
    assert "40 keypoints on the artwork" in text and "<th>matches</th><td>41</td>" in text
    # spans as a timeline bar: asset and reference lanes, each span marked
    timelines = [a for t, a in tags if t == "svg" and a.get("class") == "timeline"]
    assert len(timelines) == 2 and sum(1 for t, a in tags if t == "rect" and a.get("class") == "span") == 4
    # the melody's piano roll: every aligned note of both sequences, the transposition and tempo said
    rolls = [a for t, a in tags if t == "svg" and a.get("class") == "pianoroll"]
    assert len(rolls) == 1
    assert sum(1 for t, a in tags if t == "rect" and a.get("class") == "asset-note") == 12
    assert sum(1 for t, a in tags if t == "rect" and a.get("class") == "ref-note") == 12
    assert "transposed +2 semitones" in text and "+2 semitones (asset = reference +2)" in text
    assert "12 of 30 aligned notes" in text and "×0.91" in text


def test_a_voice_match_on_a_denoised_window_says_so(tmp_path):
    assert evidence_from_json({"denoised": False, "start": 1.0, "end": 4.0}) == (Span((1.0, 4.0), layout="segment"),)
    _thumbs(tmp_path, "e" * 64)
    voice = {"denoised": True, "start": 1.0, "end": 4.0}
    record = {"path": "dialogue.wav", "sha256": "e" * 64, "media_type": "audio", "verdict": "review",
              "findings": [_finding("audio.voice", voice)]}
    text = write_html([record], tmp_path / "report.html", lambda f: None).read_text(encoding="utf-8")
    assert "<th>compared</th><td>the asset&#x27;s speech after denoising (RNNoise)" in text
    record["findings"] = [_finding("audio.voice", dict(voice, denoised=False))]
    text = write_html([record], tmp_path / "report.html", lambda f: None).read_text(encoding="utf-8")
    assert "after denoising" not in text
    record["findings"] = [_finding("audio.melody", evidence_to_json([Span((1.5, 4.8), (0.0, 3.63), "pairs"), MELODY,
                                                                      Denoised("music")]))]
    text = write_html([record], tmp_path / "report.html", lambda f: None).read_text(encoding="utf-8")
    assert "<th>read from</th><td>the music under the dialogue" in text


def test_piano_roll_lays_reference_notes_over_the_asset_notes_they_match(tmp_path):
    """Transposed and mapped onto the asset's time, a faithful cover's reference notes sit on its asset notes."""
    _thumbs(tmp_path, "d" * 64)
    record = {"path": "cover.wav", "sha256": "d" * 64, "verdict": "block",
              "findings": [_finding("audio.melody", evidence_to_json([MELODY]))]}
    tags = _tags(write_html([record], tmp_path / "report.html", lambda f: None))
    asset = [a for t, a in tags if t == "rect" and a.get("class") == "asset-note"]
    ref = [a for t, a in tags if t == "rect" and a.get("class") == "ref-note"]
    assert [a["y"] for a in asset] == [r["y"] for r in ref]  # same pitch row after the transposition
    assert all(abs(float(a["x"]) - float(r["x"])) < 6 for a, r in zip(asset, ref))  # same place in time


# A results.jsonl written before evidence was typed (same keys, written by the earlier code): it
# still reads back field for field and renders with its boxes, polygons, spans and timecode.
OLD_JSONL = Path(__file__).parent / "fixtures" / "results_before_typed_evidence.jsonl"


def test_old_jsonl_reads_back_field_for_field_and_still_renders(tmp_path):
    lines = [json.loads(line) for line in OLD_JSONL.read_text().splitlines() if line.strip()]
    for line in lines:
        again = AssetResult.from_dict(line).to_dict()
        assert json.dumps(again, sort_keys=True) == json.dumps(line, sort_keys=True)
    out = tmp_path / "results.jsonl"
    write_jsonl(out, lines)
    records = list(read_results(out))
    for r in records:
        _thumbs(tmp_path, r["sha256"])
    page = write_html(records, tmp_path / "report.html", lambda f: b"ref")
    tags, text = _tags(page), page.read_text(encoding="utf-8")
    assert any(t == "polygon" for t, _ in tags)  # image.local's matched region
    assert any(t == "rect" and a.get("width") == "100" for t, a in tags)  # the face box
    assert any(t == "svg" and a.get("class") == "timeline" for t, a in tags)  # the fingerprint's spans
    assert "asset @ 00:00:02.500" in text and "00:00:00.500 – 00:00:04.250" in text  # frame timecode, voice segment


# ----------------------------------------------------------------------------- reports name no detector

def _literals(path: Path) -> list[tuple[int, str]]:
    """String constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


@pytest.mark.parametrize("package", ["reports", "service", "policy"])
def test_reports_service_and_policy_name_no_detector(package):
    names = set(detector_names())
    found = [(p.name, line, s) for p in sorted((ROOT / "scanner" / package).glob("*.py"))
             for line, s in _literals(p) if any(n in s for n in names)]
    assert not found, found


def test_reports_read_units_and_likeness_from_the_detector_class(monkeypatch):
    pdq, local = detector_class("image.pdq"), detector_class("image.local")
    ev = {"detector": "image.pdq", "score": 30, "metric": "hamming", "threshold_block": 82, "threshold_review": 85}
    assert describe_score(ev)[0].startswith("Hamming 30 of 256 bits")
    monkeypatch.setattr(pdq, "hash_bits", 64)
    assert describe_score(ev)[0].startswith("Hamming 30 of 64 bits")
    monkeypatch.setattr(local, "score_unit", "verified blobs")
    assert describe_score({**ev, "detector": "image.local", "metric": "count"})[0].startswith("30 verified blobs")
    assert describe_score({**ev, "detector": "no.such", "metric": "count"})[0].startswith("30 verified matches")
    assert likeness_of("image.face") == "face" and likeness_of("audio.voice") == "voice"
    assert likeness_of("image.pdq") == "likeness" and likeness_of("<script>") == "likeness"


# ----------------------------------------------------------------------------- in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")
def test_piano_roll_is_painted_in_chromium(tmp_path):
    record = {"path": "cover.wav", "sha256": "e" * 64, "verdict": "block",
              "findings": [_finding("audio.melody", evidence_to_json([MELODY, Span((1.5, 4.8), (0, 3.6), "pairs")]))]}
    page = write_html([record], tmp_path / "report.html", lambda f: None)
    shot = tmp_path / "shot.png"
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1000,900", f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    colours = {c for _, c in Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 24)}

    def near(rgb: tuple[int, int, int]) -> bool:
        return any(sum(abs(a - b) for a, b in zip(c, rgb)) < 40 for c in colours)

    assert near((0xef, 0x6c, 0x00)), "no reference-note outline painted"
    assert near((0x50, 0x8e, 0xd2)) or near((0x15, 0x65, 0xc0)), "no asset note painted"


def test_policy_findings_carry_typed_evidence_and_score_rows():
    from scanner.policy.calibration import Thresholds
    from scanner.policy.rules import Match, decide
    from scanner.types import Clearance, DetectorScore, Metric, Reference

    ref = Reference(5, "f" * 64, "Theme", "Label", Clearance.UNCLEARED, "audio", "theme.wav", "2026-01-01")
    hit = Hit(5, 20.0, evidence=(Span((1.5, 9.0), (0.0, 7.5), "pairs"), MELODY))
    m = Match("audio.melody", "melody-basic-pitch", ref, hit.score, Thresholds(Metric.COUNT, 17, 16),
              {**hit.extra, **FrameRef(time=2.0).to_json()})
    assert set(m.exhibits) == {*hit.evidence, FrameRef(time=2.0)}
    _, (f,) = decide([m])
    assert set(f.exhibits) == set(m.exhibits)
    assert f.scores == (DetectorScore("audio.melody", "melody-basic-pitch", 20.0, "count", 17, 16, "block"),)
    assert DetectorScore.from_json(f.scores[0].to_json()) == f.scores[0] and DetectorScore.from_json({"x": 1}) is None
