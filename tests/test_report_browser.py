"""report.html of a real scan in headless Chromium (issue 14): cleared, consented, blocked, error and
video findings as cards, the filter/sort bar working offline, a screenshot kept; scan.json and the page
footer keep the catalog's audit head (issue 15 item 6)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from scanner.api import Scanner
from scanner.config import Settings
from scanner.reports.summary import ExitCode, FailOn
from scanner.testing.fixtures import artwork

FIX = Path(__file__).parent / "fixtures"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> dict:
    """A real scan (PDQ and the real face model) with every kind of finding, into ``out``."""
    from scanner.cli.scan import run_scan
    from tests.test_video_scan import _clip

    root = tmp_path_factory.mktemp("report")
    # The shipped thresholds without a fused score: this test is about the page, and a fusion calibrated
    # for more image detectors than PDQ would decide for it here.
    calibration = json.loads(Settings().calibration.read_text())
    calibration.pop("fusion", None)
    (root / "calibration.json").write_text(json.dumps(calibration))
    settings = Settings(catalog=root / "ws" / "catalog.db", index_dir=root / "ws" / "indexes",
                        model_cache=root / "ws" / "models", detectors=("image.pdq", "image.face"), project="EP104",
                        calibration=root / "calibration.json")
    scanner = Scanner(settings, caller="test")
    works = root / "works"
    works.mkdir()
    for seed in (1, 2, 3):
        artwork(seed).save(works / f"work_{seed}.jpg", quality=92)
    uncleared = scanner.add_reference([works / "work_1.jpg"], title="Neon City key art",
                                      rights_holder="Example Pictures")[0].reference
    licensed = scanner.add_reference([works / "work_2.jpg"], title="Licensed still", rights_holder="Stock Co",
                                     clearance="licensed")[0].reference
    in_video = scanner.add_reference([works / "work_3.jpg"], title="Skyline plate",
                                     rights_holder="Other Studio")[0].reference
    scanner.add_talent("Ann Actor", photos=[FIX / "faces" / "person_a_1.jpg"])
    bob = scanner.add_talent("Bob Builder", photos=[FIX / "faces" / "person_b_1.jpg"])
    grant = scanner.catalog.grant_consent(bob.id, "face", "EP104", "2020-01-01", "2030-12-31", "CONTRACT-1234")
    deliv = root / "deliv"
    deliv.mkdir()
    Image.open(works / "work_1.jpg").resize((400, 267)).save(deliv / "shot_010_v003.jpg", quality=60)
    Image.open(works / "work_2.jpg").save(deliv / "shot_020_licensed.png")
    shutil.copy(FIX / "faces" / "person_a_2.jpg", deliv / "shot_030_ann.jpg")
    Image.open(FIX / "faces" / "person_b_1.jpg").resize((300, 300)).save(deliv / "shot_040_bob.jpg")
    artwork(501).save(deliv / "shot_050_original.jpg")
    (deliv / "shot_060_broken.png").write_bytes(_broken_png())
    _clip(deliv / "reel_070.mp4", [(900, 1.0), (3, 1.5), (901, 1.0)])
    out = root / "out"
    code = run_scan(scanner, [deliv], out, FailOn.REVIEW)
    records = {Path(r["path"]).name: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    return {"out": out, "code": code, "records": records, "scanner": scanner, "grant": grant,
            "refs": {"uncleared": uncleared, "licensed": licensed, "video": in_video}, "root": root}


def _broken_png() -> bytes:
    """A PNG whose header is valid and whose image data is cut off."""
    ihdr = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 4000) + b"IDAT" + zlib.compress(b"\x00" * 9000)[:50]


def test_the_scan_has_every_kind_of_finding(scanned):
    recs = scanned["records"]
    assert scanned["code"] == ExitCode.UNCHECKED
    levels = {name: [f["level"] for f in r["findings"]] for name, r in recs.items()}
    assert levels["shot_010_v003.jpg"] == ["block"] and levels["shot_030_ann.jpg"] == ["block"]
    assert levels["shot_020_licensed.png"] == ["cleared"] and levels["shot_040_bob.jpg"] == ["consented"]
    assert recs["shot_060_broken.png"]["verdict"] == "error" and recs["shot_050_original.jpg"]["verdict"] == "pass"
    reel = recs["reel_070.mp4"]
    assert reel["verdict"] == "block" and "timecode" in reel["findings"][0]["extra"]
    # Cleared and consented matches keep their thumbnails too: the card shows what was cleared.
    thumbs = scanned["out"] / "thumbs"
    assert (thumbs / f"{recs['shot_040_bob.jpg']['sha256']}.jpg").is_file()
    assert (thumbs / f"{recs['shot_020_licensed.png']['sha256']}.jpg").is_file()
    # The page shows the catalog records they rely on (looked up when the report is written).
    page = (scanned["out"] / "report.html").read_text()
    assert f"consent record #{scanned['grant'].id}</b>: grant, scope face, project EP104" in page
    assert "document <b>CONTRACT-1234</b>" in page and "<b>clearance: licensed</b>" in page


def test_scan_json_and_footer_keep_the_audit_head(scanned):
    from scanner.catalog.audit import parse_anchor

    out, scanner = scanned["out"], scanned["scanner"]
    summary = json.loads((out / "scan.json").read_text())
    head = scanner.catalog.audit_head()
    assert head is not None and head.id >= len(scanned["records"])  # every check of this scan is in the chain
    assert summary["audit_head"] == {"id": head.id, "hash": head.hash, "expect_head": f"{head.id}:{head.hash}"}
    assert summary["exit_code"] == ExitCode.UNCHECKED and summary["assets"] == 7
    assert summary["verdicts"] == {"block": 3, "error": 1, "pass": 3} and summary["matches"]["consented"] == 1
    assert f"--expect-head {head.id}:{head.hash}" in (out / "report.html").read_text()
    assert scanner.catalog.check_audit(parse_anchor(summary["audit_head"]["expect_head"])).ok


class _Page(HTMLParser):
    """Sections (assets) and cards of a DOM, with whether the browser hid them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.body: dict = {}
        self.sections: list[dict] = []
        self.rows: list[dict] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "section":
            self.sections.append({**a, "cards": []})
        elif tag == "article" and self.sections:
            self.sections[-1]["cards"].append(a)
        elif tag == "tr" and "item" in (a.get("class") or ""):
            self.rows.append(a)

    def handle_data(self, data: str) -> None:
        self.text += data

    def visible(self) -> list[str]:
        return [Path(s["data-path"]).name for s in self.sections if "hidden" not in s]


def _chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={profile}", "--virtual-time-budget=3000", *args, page],
                          capture_output=True, text=True, timeout=120)


def _dom(scanned: dict, fragment: str = "") -> _Page:
    page = (scanned["out"] / "report.html").as_uri() + fragment
    done = _chromium(page, scanned["root"] / "chromium-profile", "--dump-dom")
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    parsed = _Page()
    parsed.feed(done.stdout)
    assert parsed.body.get("data-ready") == "1", "the page's script did not run"
    return parsed


@needs_chromium
def test_report_cards_in_chromium(scanned):
    page = _dom(scanned)
    recs = scanned["records"]
    by_name = {Path(s["data-path"]).name: s for s in page.sections}
    # Every asset that is not a plain pass is a section; one card per matched reference; errors have none.
    assert set(by_name) == {"shot_010_v003.jpg", "shot_020_licensed.png", "shot_030_ann.jpg", "shot_040_bob.jpg",
                            "shot_060_broken.png", "reel_070.mp4"}
    assert [len(by_name[n]["cards"]) for n in sorted(by_name)] == [
        len(recs[n]["findings"]) for n in sorted(by_name)] and not by_name["shot_060_broken.png"]["cards"]
    assert [Path(r["data-path"]).name for r in page.rows] == ["shot_050_original.jpg"]
    assert page.body["data-shown"] == "7" and page.visible() == list(by_name)  # severity order, nothing hidden
    text = " ".join(page.text.split())
    assert "Next: uncleared work by Example Pictures: obtain clearance or replace the shot" in text
    assert "no consent on record for Ann Actor's face in project EP104" in text
    assert "Next: unreadable file: re-export" in text
    grant = scanned["grant"]
    assert (f"consent record #{grant.id}: grant, scope face, project EP104, valid 2020-01-01 → 2030-12-31, "
            "document CONTRACT-1234") in text
    assert "clearance: licensed — catalog work" in text and "Stock Co" in text
    assert "Hamming" in text and "of 256 bits, block ≤" in text and "asset @ 00:00:0" in text


@needs_chromium
def test_filter_and_sort_bar_in_chromium(scanned):
    refs = scanned["refs"]
    assert _dom(scanned, "#verdict=consented").visible() == ["shot_040_bob.jpg"]
    assert _dom(scanned, "#verdict=cleared").visible() == ["shot_020_licensed.png"]
    assert _dom(scanned, "#verdict=error").visible() == ["shot_060_broken.png"]
    faces = _dom(scanned, "#detector=image.face")
    assert sorted(faces.visible()) == ["shot_030_ann.jpg", "shot_040_bob.jpg"]
    assert faces.body["data-shown"] == "2" and all("hidden" in r for r in faces.rows)
    assert _dom(scanned, f"#ref=work-{refs['video'].id}").visible() == ["reel_070.mp4"]
    assert _dom(scanned, "#q=shot_03").visible() == ["shot_030_ann.jpg"]
    passes = _dom(scanned, "#verdict=pass")
    assert sorted(passes.visible()) == ["shot_020_licensed.png", "shot_040_bob.jpg"]
    assert [Path(r["data-path"]).name for r in passes.rows if "hidden" not in r] == ["shot_050_original.jpg"]
    by_path = _dom(scanned, "#sort=path")
    assert by_path.visible() == sorted(by_path.visible())
    assert _dom(scanned, "#verdict=no-such-verdict").body["data-shown"] == "7"  # unknown values are ignored


@needs_chromium
def test_report_screenshot(scanned):
    shot = scanned["root"] / "report.png"
    done = _chromium((scanned["out"] / "report.html").as_uri(), scanned["root"] / "chromium-profile",
                     "--window-size=1280,2400", f"--screenshot={shot}")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.size == (1280, 2400)
        colours = img.convert("RGB").resize((64, 120)).getcolors(64 * 120)
    assert colours is not None and len(colours) > 200  # thumbnails drawn, not a blank or broken page
