"""report.html as a reviewer reads it (issue 14): one card per matched reference with every detector's
evidence in words, the record a cleared or consented match rests on, what to do next, test models marked."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from scanner.reports.actions import describe_score, error_action, finding_action, next_step
from scanner.reports.html import write_html

SHA = "d" * 64
TEST_LABEL = "clip-test-tiny (TEST MODEL, random weights)"


class _Cards(HTMLParser):
    """Cards (``article.card``) and their text, images and attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cards: list[dict] = []
        self.sections: list[dict] = []
        self.options: dict[str, list[str]] = {}
        self._select: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append({**a, "cards": 0})
        if tag == "article":
            self.cards.append({**a, "text": "", "imgs": []})
            self.sections[-1]["cards"] += 1
            self._depth = 1
        elif self._depth and tag in ("article", "div", "table"):
            self._depth += 1
        if tag == "img" and self._depth:
            self.cards[-1]["imgs"].append(a.get("src"))
        if tag == "select":
            self._select = a.get("id")
            self.options[self._select or ""] = []
        if tag == "option" and self._select:
            self.options[self._select].append(a.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        if self._depth and tag in ("article", "div", "table"):
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.cards[-1]["text"] += data


def _parse(page: Path) -> _Cards:
    p = _Cards()
    p.feed(page.read_text(encoding="utf-8"))
    return p


def _ev(detector, model, score, metric, block, review, level):
    return {"detector": detector, "model": model, "score": score, "metric": metric, "threshold_block": block,
            "threshold_review": review, "level": level}


def _work_finding(ref_id=1, **over):
    f = {"reference_id": ref_id, "reference_kind": "work", "reference_title": "Neon City key art",
         "rights_holder": "Example Pictures", "clearance": "uncleared", "detector": "image.pdq", "model": "pdq",
         "score": 30.0, "metric": "hamming", "level": "block", "threshold_block": 82.0, "threshold_review": 85.0,
         "note": "", "consent_id": None, "extra": {"asset_size": [640, 480]},
         "evidence": [_ev("image.local", "rootsift", 412, "count", 10, 6, "block"),
                      _ev("image.pdq", "pdq", 30.0, "hamming", 82.0, 85.0, "block"),
                      _ev("image.sscd", "sscd-disc-mixup", 0.91, "cosine", 0.8, 0.7, "block")]}
    f.update(over)
    return f


def _talent_finding(level="consented", consent_id=7, note="covered by consent #7", **over):
    f = {"reference_id": 4, "reference_kind": "talent", "reference_title": "Ann Actor", "rights_holder": "Ann Actor",
         "clearance": "consent valid", "detector": "image.face", "model": "face-dlib-resnet-v1", "score": 0.97,
         "metric": "cosine", "level": level, "threshold_block": 0.93, "threshold_review": 0.91, "note": note,
         "consent_id": consent_id, "extra": {"box": [1, 2, 30, 40], "sample_id": 9, "asset_size": [100, 100]},
         "evidence": [_ev("image.face", "face-dlib-resnet-v1", 0.97, "cosine", 0.93, 0.91, "block")]}
    f.update(over)
    return f


def _record(path, verdict, findings=(), **over):
    r = {"path": path, "sha256": SHA, "verdict": verdict, "media_type": "image", "findings": list(findings),
         "models": {"image.pdq": "pdq", "image.sscd": "sscd-disc-mixup", "image.local": "rootsift"}, "notes": []}
    r.update(over)
    return r


def _thumbs(folder: Path) -> None:
    (folder / "thumbs").mkdir(parents=True, exist_ok=True)
    (folder / "thumbs" / f"{SHA}.jpg").write_bytes(b"jpg")


def test_one_card_per_reference_with_each_detectors_evidence_in_words(tmp_path):
    _thumbs(tmp_path)
    fused = _work_finding(2, reference_title="Poster B", detector="fused.image", model="fusion-v1", score=0.97,
                          metric="probability", threshold_block=0.9, threshold_review=0.5,
                          evidence=[_ev("image.pdq", "pdq", 90.0, "hamming", 82.0, 85.0, "below review"),
                                    _ev("image.sscd", "sscd-disc-mixup", 0.62, "cosine", 0.8, 0.7, "below review")])
    page = write_html([_record("shot_010.png", "block", [_work_finding(), fused])], tmp_path / "report.html",
                      lambda f: b"ref")
    doc = _parse(page)
    assert len(doc.cards) == 2 and doc.sections[0]["cards"] == 2  # one per reference, not one per detector
    first, second = doc.cards
    assert first["imgs"] == [f"thumbs/{SHA}.jpg", "thumbs/ref-work-1.jpg"]  # the pair once, with 3 detectors
    text = " ".join(first["text"].split())
    assert "Hamming 30 of 256 bits, block ≤ 82, review ≤ 85" in text
    assert "412 matching keypoints (geometrically verified), block ≥ 10" in text
    assert "cosine 0.91, block ≥ 0.8" in text and "lower is closer" in text and "higher is closer" in text
    assert first["data-detectors"] == "image.pdq image.local image.sscd" and first["data-ref"] == "work-1"
    fused_text = " ".join(second["text"].split())
    assert "calibrated fused score 0.97, block ≥ 0.9, review ≥ 0.5" in fused_text
    assert "Hamming 90 of 256 bits" in fused_text and "below review" in fused_text


def test_a_finding_made_by_a_test_model_is_marked_on_its_card(tmp_path):
    models = {"image.clip": TEST_LABEL, "image.pdq": "pdq"}
    by_test = _work_finding(1, detector="image.clip", model="clip-test-tiny", score=0.99, metric="cosine",
                            threshold_block=0.9, threshold_review=0.8,
                            evidence=[_ev("image.clip", "clip-test-tiny", 0.99, "cosine", 0.9, 0.8, "block")])
    real = _work_finding(2, evidence=[_ev("image.clip", "clip-test-tiny", 0.2, "cosine", 0.9, 0.8, "below review"),
                                      _ev("image.pdq", "pdq", 30.0, "hamming", 82.0, 85.0, "block")])
    page = write_html([_record("a.png", "block", [by_test, real], models=models)], tmp_path / "r.html", lambda f: None)
    marked, clean = _parse(page).cards
    assert marked.get("data-test-model") == "1" and "TEST MODEL: not evidence" in marked["text"]
    assert "data-test-model" not in clean and "not evidence" not in clean["text"]
    assert "TEST MODEL" in clean["text"]  # its clip row still says which model gave that score


def test_cleared_and_consented_matches_show_the_record_they_rely_on(tmp_path):
    consents = {7: {"id": 7, "action": "grant", "scope": "face", "project": "EP104", "valid_from": "2026-01-01",
                    "valid_until": "2026-12-31", "document": "CONTRACT-1234", "recorded_at": "2026-01-02",
                    "recorded_by": "cli:legal",
                    "revoked_by": {"id": 9, "valid_from": "2026-11-30", "document": "NOTICE-88"}}}
    works = {2: {"title": "Licensed still", "rights_holder": "Stock Co", "clearance": "licensed",
                 "added_at": "2026-02-03", "path": "/refs/still.jpg", "sha256": "e" * 64}}
    cleared = _work_finding(2, reference_title="Licensed still", rights_holder="Stock Co", clearance="licensed",
                            level="cleared", note="reference is licensed: cleared for use")
    records = [_record("consented.png", "pass", [_talent_finding()]), _record("cleared.png", "pass", [cleared]),
               _record("plain.png", "pass")]
    page = write_html(records, tmp_path / "r.html", lambda f: None, meta={"project": "EP104"},
                      work=works.get, consent=consents.get)
    doc = _parse(page)
    by_level = {c["data-level"]: " ".join(c["text"].split()) for c in doc.cards}
    consent = by_level["consented"]
    for part in ("consent record #7", "scope face", "project EP104", "valid 2026-01-01 → 2026-12-31",
                 "CONTRACT-1234", "by cli:legal", "revoked by record #9 from 2026-11-30, document NOTICE-88"):
        assert part in consent, (part, consent)
    assert "clearance: licensed" in by_level["cleared"] and "Stock Co" in by_level["cleared"]
    assert "registered 2026-02-03" in by_level["cleared"] and "/refs/still.jpg" in by_level["cleared"]
    # A pass with matches is a card (auditable); a plain pass stays a row of the table.
    assert [s["data-path"] for s in doc.sections] == ["cleared.png", "consented.png"]
    assert 'data-path="plain.png"' in page.read_text()


def test_filter_bar_offers_every_verdict_detector_and_reference(tmp_path):
    records = [_record("a.png", "block", [_work_finding()]), _record("b.png", "pass", [_talent_finding()]),
               _record("c.png", "error", error="corrupt image header")]
    doc = _parse(write_html(records, tmp_path / "r.html", lambda f: None))
    assert {"block", "review", "error", "pass", "cleared", "consented"} <= set(doc.options["f-verdict"])
    assert doc.options["f-detector"] == ["", "image.face", "image.local", "image.pdq", "image.sscd"]
    assert doc.options["f-ref"] == ["", "talent-4", "work-1"]
    assert set(doc.options["f-sort"]) == {"severity", "path", "reference", "verdict"}
    assert [s["data-verdict"] for s in doc.sections] == ["block", "error", "pass"]


def test_next_step_per_verdict():
    block = _record("a.png", "block", [_work_finding()])
    assert next_step(block, "EP104") == "uncleared work by Example Pictures: obtain clearance or replace the shot"
    face = _talent_finding("block", None, "no consent on record for face likeness in project 'EP104'")
    assert next_step(_record("b.png", "block", [face]), "EP104").startswith(
        "no consent on record for Ann Actor's face in project EP104")
    assert "replace the audio" in finding_action({**face, "detector": "audio.voice"}, "EP104", "audio")
    assert "Ann Actor's voice" in finding_action({**face, "detector": "audio.voice"}, "EP104", "audio")
    expired = _talent_finding("block", 3, "consent #3 (face, project EP104, document C-1) expired on 2026-01-31")
    assert finding_action(expired, "EP104").endswith("expired on 2026-01-31: renew consent or replace the shot")
    union = _talent_finding("review", 3, "union-covered talent: review required although covered by consent #3")
    assert finding_action(union).startswith("union-covered talent: Ann Actor's face needs union review")
    review = _work_finding(level="review")
    assert finding_action(review).startswith("possible copy of 'Neon City key art', compare by eye")
    two = _record("c.png", "block", [_work_finding(), _work_finding(2, level="review")])
    assert next_step(two).endswith("(and 1 more match)")
    assert next_step(_record("d.png", "error", error="corrupt image header: Truncated File Read")).startswith(
        "unreadable file: re-export")
    assert next_step(_record("e.png", "pass", [_talent_finding()])).startswith("no action")
    assert next_step(_record("f.png", "pass")) == ""


def test_error_steps_follow_the_error():
    assert error_action("no enabled detector reads audio assets (enabled: image.pdq)").startswith("no enabled detector")
    assert "limits" in error_action("file is 3.0 GB, over the 2.0 GB limit")
    assert "permissions" in error_action("cannot read file: Permission denied")
    assert "part of the file" in error_action("video is truncated or damaged after 3.0 s: the rest could not be checked")
    assert "a model failed" in error_action("image.sscd could not check this asset: RuntimeError: x")
    assert error_action("not a decodable video file (corrupt or truncated container): x").startswith("unreadable")


def test_scores_in_words_per_metric():
    assert describe_score(_ev("image.pdq", "pdq", 30.0, "hamming", 82.0, 85.0, "block"))[0] == \
        "Hamming 30 of 256 bits, block ≤ 82, review ≤ 85"
    assert describe_score(_ev("x.hash", "m", 3, "hamming", 5, 8, "block"))[0].startswith("Hamming distance 3 bits")
    assert describe_score(_ev("audio.fingerprint", "-", 41, "count", 12, 8, "block"))[0] == \
        "41 matching landmark hashes (aligned in time), block ≥ 12, review ≥ 8"
    assert describe_score(_ev("image.face", "m", 0.97591, "cosine", 0.93, 0.91, "block"))[0] == \
        "cosine 0.9759, block ≥ 0.93, review ≥ 0.91"
    assert re.match(r"calibrated fused score 0\.97, block ≥ 0\.9",
                    describe_score(_ev("fused.image", "f", 0.97, "probability", 0.9, 0.5, "block"))[0])


def test_terminal_summary_says_what_to_do_next_in_80_columns(monkeypatch):
    import io

    from rich.console import Console

    from scanner.cli import scan as scan_cli

    buf = io.StringIO()
    monkeypatch.setattr(scan_cli, "out", Console(file=buf, width=80, highlight=False, soft_wrap=True))
    stem = "EP104_sq020_sh0140_comp_lighting_denoise_final_approved"
    face = _talent_finding("block", None, "no consent on record for face likeness in project 'EP104'")
    records = [_record(f"deliv/{stem}_v001.png", "block", [_work_finding()]),
               _record(f"deliv/{stem}_v002.png", "block", [face]),
               _record(f"deliv/{stem}_v003.png", "error", error="corrupt image header: Truncated File Read"),
               _record("deliv/ok.png", "pass", [_talent_finding()])]
    scan_cli._print_summary(records, "EP104")
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    assert all(any(f"_v00{v}.png" in line for line in lines) for v in (1, 2, 3)), buf.getvalue()
    cells = " ".join(line.split("│")[3].strip() for line in lines if line.count("│") == 4)  # the last column
    for step in ("→ uncleared work by Example Pictures: obtain clearance or replace the shot",
                 "→ no consent on record for Ann Actor's face in project EP104",
                 "→ unreadable file: re-export"):
        assert step in cells, (step, cells)
    words = " ".join(lines)
    assert "1 cleared or consented matches" in words
    # The folder they share is said once above the table; the column keeps the part that differs.
    assert "flagged assets under deliv/:" in lines and not any("│ deliv/" in line for line in lines)


def test_common_folder_of_flagged_assets():
    from scanner.cli.scan import _common_folder

    assert _common_folder(["/m/ep104/reel_01/a.png", "/m/ep104/reel_02/b.png"]) == (
        "/m/ep104/", ["reel_01/a.png", "reel_02/b.png"])
    assert _common_folder(["a.png", "b/c.png"]) == ("", ["a.png", "b/c.png"])  # nothing shared: paths as they are
    assert _common_folder(["/a/x.png", "b/y.png"]) == ("", ["/a/x.png", "b/y.png"])
