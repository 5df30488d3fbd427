"""Video assets through the whole scan: frames to image detectors with timecodes, report thumbnails."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from scanner.api import Scanner
from scanner.cli import app
from scanner.testing.fixtures import artwork
from tests.test_video import encode

SIZE = (320, 208)


def _clip(path: Path, seeds_and_seconds: list[tuple[int, float]], fps: int = 10) -> None:
    frames, t = [], 0.0
    for seed, seconds in seeds_and_seconds:
        pic = artwork(seed).resize(SIZE)
        for _ in range(int(seconds * fps)):
            frames.append((pic, t))
            t += 1 / fps
    path.write_bytes(encode(frames, size=SIZE, audio="aac"))


def test_registered_work_in_a_video_is_found_with_its_timecode(settings, works, tmp_path):
    deliv = tmp_path / "video"
    deliv.mkdir()
    _clip(deliv / "reel.mp4", [(900, 2.0), (1, 1.5), (901, 2.0)])  # work_1 on screen from 2.0 s to 3.5 s
    _clip(deliv / "clean.mp4", [(902, 2.0), (903, 2.0)])
    s = Scanner(settings)
    s.add_reference(works)
    results = {Path(r.path).name: r for r in s.scan([deliv], thumb_dir=tmp_path / "thumbs")}
    reel, clean = results["reel.mp4"], results["clean.mp4"]
    assert reel.media_type == "video" and reel.verdict.value == "block"
    f = reel.findings[0]
    assert f.reference_title == "work_1"
    assert 2.0 <= f.extra["time"] <= 3.5 and f.extra["timecode"].startswith("00:00:0")
    assert (tmp_path / "thumbs" / f"{reel.sha256}-f{f.extra['frame']}.jpg").is_file()
    assert any("frames sampled" in n for n in reel.notes)
    assert clean.verdict.value == "pass" and reel.models == {"image.pdq": "pdq"}


def test_video_in_cli_report(tmp_path, monkeypatch, works):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCANNER_DETECTORS", "image.pdq")
    deliv = tmp_path / "d"
    deliv.mkdir()
    _clip(deliv / "reel.mov", [(900, 1.0), (2, 1.0)])
    (deliv / "broken.mp4").write_bytes((deliv / "reel.mov").read_bytes()[:2000])
    runner = CliRunner()
    runner.invoke(app, ["refs", "add", *map(str, works)])
    r = runner.invoke(app, ["scan", str(deliv), "--out", str(tmp_path / "out")])
    recs = {Path(x["path"]).name: x for x in map(json.loads, (tmp_path / "out" / "results.jsonl").read_text().splitlines())}
    assert recs["reel.mov"]["verdict"] == "block"
    assert recs["broken.mp4"]["verdict"] == "error" and recs["broken.mp4"]["error"]
    assert r.exit_code == 2
    html = (tmp_path / "out" / "report.html").read_text()
    assert "timecode" in html and f"-f{recs['reel.mov']['findings'][0]['extra']['frame']}.jpg" in html


def test_truncated_video_is_never_a_pass(settings, works, tmp_path):
    from scanner.api import Scanner as _Scanner

    deliv = tmp_path / "v"
    deliv.mkdir()
    _clip(deliv / "full.mp4", [(902, 3.0), (903, 3.0)])
    data = (deliv / "full.mp4").read_bytes()
    (deliv / "cut.mp4").write_bytes(data[: int(len(data) * 0.6)])
    s = _Scanner(settings)
    s.add_reference(works)
    res = {Path(r.path).name: r for r in s.scan([deliv])}
    assert res["full.mp4"].verdict.value == "pass"
    assert res["cut.mp4"].verdict.value == "error" and res["cut.mp4"].error
