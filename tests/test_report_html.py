"""report.html: hostile records cannot put markup into the page (issue 15 item 8); report files honour the umask."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from scanner.reports.html import JS, write_html
from scanner.reports.jsonl import write_jsonl

EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


class _Dom(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []  # the text of every <script> element
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def _dom(page: Path) -> _Dom:
    parser = _Dom()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    return parser


def _assert_inert(dom: _Dom) -> None:
    """No markup from a record: the page's only script is its own constant filter script."""
    tags = dom.tags
    names = [t for t, _ in tags]
    assert dom.scripts == [JS], [s[:200] for s in dom.scripts]
    assert [a for t, a in tags if t == "script"] == [{}]  # no src=, nothing but the inline constant
    assert "iframe" not in names and "object" not in names
    for tag, attrs in tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        for a in ("src", "href"):
            assert not (attrs.get(a) or "").strip().lower().startswith("javascript:"), (tag, attrs)
        if tag == "img":
            assert (attrs.get("src") or "").startswith("thumbs/") or not attrs.get("src"), attrs


def _hostile_finding(EVIL: str = EVIL, **extra) -> dict:  # noqa: N803
    return {"reference_id": EVIL, "reference_kind": EVIL, "reference_title": EVIL, "rights_holder": EVIL,
            "clearance": EVIL, "detector": EVIL, "model": EVIL, "score": EVIL, "metric": EVIL, "level": EVIL,
            "threshold_block": EVIL, "threshold_review": EVIL, "note": EVIL, "consent_id": EVIL, "extra": extra}


def hostile_records(EVIL: str = EVIL) -> list[dict]:  # noqa: N803 - the payload under test
    """Records as a crafted shard file could hold them: markup in every field, wrong types for numbers."""
    extra = {"asset_size": [EVIL, 100], "ref_size": ["1 1\"><script>x()</script>", 5],
             "box": [EVIL, 1, 2, 3], "asset_polygon": [[EVIL, 1], [2, 3], [4, 5]],
             "ref_polygon": [["0\"/><script>p()</script><polygon points=\"0", 0], [1, 1], [2, 2]],
             "asset_start": EVIL, "asset_end": 3, "asset_duration": EVIL, "ref_start": float("nan"),
             "ref_end": float("inf"), "start": EVIL, "end": EVIL, "timecode": EVIL, "frame": "../../x" + EVIL,
             "sample_id": "../../../evil", "matches": EVIL, "inliers": EVIL, "ref_visible": EVIL,
             "time_scale": EVIL, "pitch_shift": EVIL}
    return [
        {"path": EVIL, "sha256": "../../" + EVIL, "verdict": "block", "findings": [_hostile_finding(EVIL, **extra)],
         "models": {EVIL: EVIL}, "notes": [EVIL]},
        {"path": EVIL, "sha256": EVIL, "verdict": EVIL, "findings": [{**_hostile_finding(EVIL, **extra),
                                                                      "reference_kind": "talent"}]},
        {"path": EVIL, "sha256": None, "verdict": "error", "error": EVIL},
        {"path": EVIL, "sha256": EVIL, "verdict": "pass", "notes": [EVIL]},
        {"path": EVIL, "verdict": "review", "findings": [{"reference_id": 1, "extra": {"box": "<script>"}},
                                                         "<script>", {"extra": EVIL}], "notes": EVIL},
    ]


def test_hostile_records_render_without_live_markup(tmp_path):
    asked: list[dict] = []

    def ref_thumbnail(f):
        asked.append(f)
        return b"\xff\xd8not-really-a-jpeg"

    page = write_html(hostile_records(), tmp_path / "report" / "report.html", ref_thumbnail,
                      EVIL, {EVIL: EVIL, "stage": "final"})
    _assert_inert(_dom(page))
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text.replace(f"<script>{JS}</script>", "").lower()
    assert "&lt;script&gt;" in text  # the hostile text is shown, escaped, for the reviewer to see
    # Ids from a record that are not numbers never become thumbnail files, inside or outside thumbs/.
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["report/report.html", "report/thumbs/ref-work-1.jpg"], written
    assert [f["reference_id"] for f in asked] == [1]


def test_well_formed_evidence_is_still_drawn(tmp_path):
    sha = "a" * 64
    (tmp_path / "thumbs").mkdir()
    (tmp_path / "thumbs" / f"{sha}.jpg").write_bytes(b"jpg")
    record = {"path": "shot.png", "sha256": sha, "verdict": "block", "findings": [{
        "reference_id": 7, "reference_kind": "work", "reference_title": "Poster", "rights_holder": "Studio",
        "clearance": "uncleared", "detector": "image.local", "model": "rootsift", "score": 40, "metric": "count",
        "level": "block", "threshold_block": 10, "threshold_review": 6,
        "extra": {"asset_size": [640, 480], "box": [10, 20, 110, 220],
                  "asset_polygon": [[1.5, 2], [100, 2], [100, 90], [1.5, 90]], "ref_size": [300, 200],
                  "ref_polygon": [[0, 0], [300, 0], [300, 200]]}}]}
    page = write_html([record], tmp_path / "report.html", lambda f: b"ref-jpg")
    tags = _dom(page).tags
    svgs = [a for t, a in tags if t == "svg"]
    assert {a["viewbox"] for a in svgs} == {"0 0 640 480", "0 0 300 200"}
    rects = [a for t, a in tags if t == "rect"]
    assert {(a["x"], a["y"], a["width"], a["height"]) for a in rects} == {("10", "20", "100", "200")}
    polys = sorted(a["points"] for t, a in tags if t == "polygon")
    assert polys == ["0,0 300,0 300,200", "1.5,2 100,2 100,90 1.5,90"]
    assert (tmp_path / "thumbs" / "ref-work-7.jpg").read_bytes() == b"ref-jpg"


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_report_files_follow_the_umask(tmp_path, umask_022):
    record = {"path": "a.png", "sha256": "b" * 64, "verdict": "block", "findings": [{
        "reference_id": 3, "reference_title": "W", "rights_holder": "R", "clearance": "uncleared",
        "detector": "image.pdq", "model": "pdq", "score": 4, "metric": "hamming", "level": "block",
        "threshold_block": 30, "threshold_review": 50, "extra": {}}]}
    page = write_html([record], tmp_path / "r" / "report.html", lambda f: b"jpg")
    write_jsonl(tmp_path / "r" / "results.jsonl", [record])
    assert _mode(page) == 0o644
    assert _mode(tmp_path / "r" / "results.jsonl") == 0o644
    assert _mode(tmp_path / "r" / "thumbs" / "ref-work-3.jpg") == 0o644
    os.umask(0o027)  # a stricter umask is honoured too, not overridden with 0644
    write_jsonl(tmp_path / "r" / "results.jsonl", [record])
    assert _mode(tmp_path / "r" / "results.jsonl") == 0o640


def test_private_files_stay_private(tmp_path, umask_022):
    from scanner.fsutil import atomic_write_bytes

    atomic_write_bytes(tmp_path / "secret.bin", b"key table")  # the default, used for secrets and indexes
    assert _mode(tmp_path / "secret.bin") == 0o600


# ----- the same in a real browser ------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# If any of this runs, the page's title becomes PWNED or <body> gets data-pwned.
LIVE = ('"><script>document.title="PWNED"</script><img src=x onerror="document.body.setAttribute(\'data-pwned\',1)">'
        "<svg onload=\"document.body.setAttribute('data-pwned',2)\"></svg>")


def _browser_dom(page: Path) -> str:
    """The DOM after Chromium loaded ``page`` and ran its scripts (headless)."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=2000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")
def test_hostile_records_run_no_script_in_chromium(tmp_path):
    control = tmp_path / "control.html"  # the check can see a live script: a page that has one is caught
    control.write_text(f"<!doctype html><html><head><title>t</title></head><body>{LIVE}</body></html>")
    seen = _browser_dom(control)
    assert "<title>PWNED</title>" in seen and 'data-pwned="' in seen

    # The case from issue 15: a well-formed shard record whose size and polygons carry markup...
    crafted = {"path": "shot.png", "sha256": "c" * 64, "verdict": "block", "findings": [{
        "reference_id": 1, "reference_kind": "work", "reference_title": "W", "rights_holder": "R",
        "clearance": "uncleared", "detector": "image.local", "model": "m", "score": 40, "metric": "count",
        "level": "block", "threshold_block": 10, "threshold_review": 6,
        "extra": {"asset_size": [LIVE, 1], "asset_polygon": [[LIVE, 1], [2, 3], [4, 5]],
                  "ref_size": [1, LIVE], "ref_polygon": [[0, 0], [1, LIVE], [2, 2]]}}]}
    (tmp_path / "a" / "thumbs").mkdir(parents=True)
    (tmp_path / "a" / "thumbs" / f"{'c' * 64}.jpg").write_bytes(b"jpg")
    pages = [lambda: write_html([crafted], tmp_path / "a" / "report.html", lambda f: b"jpg"),
             # ...and records with markup in every field.
             lambda: write_html(hostile_records(LIVE), tmp_path / "b" / "report.html", lambda f: None, LIVE,
                                {LIVE: LIVE})]
    for render in pages:
        page = render()
        dom = _browser_dom(page)
        tags = _Dom()
        tags.feed(dom)
        assert "<title>PWNED</title>" not in dom, page
        assert not [t for t, attrs in tags.tags if "data-pwned" in attrs], f"a script ran in {page}"
        assert tags.scripts == [JS], page  # only the page's own filter script
    assert "PWNED" in dom  # the payload is on the page, as text


def test_hostile_catalog_records_and_footer_are_escaped(tmp_path):
    """The consent and work records a card shows come from the catalog, the footer from the scan: escaped too."""
    consent = {"id": EVIL, "action": EVIL, "scope": EVIL, "project": EVIL, "valid_from": EVIL, "valid_until": EVIL,
               "document": EVIL, "recorded_at": EVIL, "recorded_by": EVIL,
               "revoked_by": {"id": EVIL, "valid_from": EVIL, "document": EVIL}}
    work = {k: EVIL for k in ("title", "rights_holder", "clearance", "added_at", "path", "sha256")}
    talent = {**_hostile_finding(), "reference_kind": "talent", "reference_id": 4, "consent_id": 3,
              "level": "consented", "evidence": [{"detector": EVIL, "model": EVIL, "score": EVIL, "metric": EVIL,
                                                  "level": EVIL, "threshold_block": EVIL, "threshold_review": EVIL}]}
    cleared = {**_hostile_finding(), "reference_id": 2, "level": "cleared", "evidence": [EVIL, {"detector": EVIL}]}
    records = [{"path": EVIL, "sha256": "e" * 64, "verdict": "pass", "findings": [talent, cleared],
                "models": {EVIL: EVIL + " TEST MODEL"}, "media_type": EVIL}]
    page = write_html(records, tmp_path / "report.html", lambda f: None, EVIL, {"project": EVIL},
                      work=lambda i: work, consent=lambda i: consent, footer={EVIL: EVIL})
    _assert_inert(_dom(page))
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text.replace(f"<script>{JS}</script>", "").lower()
    assert text.count("&lt;script&gt;") > 20 and "consent record #3" in text and "catalog work #2" in text
