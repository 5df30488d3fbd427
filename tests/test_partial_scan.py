"""A registered work pasted into a larger generated scene: found by image.local, with its polygon."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from scanner.cli import app
from tests.test_local import paste, rect, work

runner = CliRunner()


def test_pasted_poster_is_found_where_it_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCANNER_DETECTORS", "image.pdq,image.local")
    poster = work(31)
    poster.save(tmp_path / "poster.png")
    deliv = tmp_path / "deliv"
    deliv.mkdir()
    quad = np.array([[380, 240], [820, 270], [800, 540], [390, 560]], dtype=np.float32)  # poster on a wall
    paste(poster, quad).save(deliv / "scene.jpg", quality=85)
    paste(work(32), quad).save(deliv / "other_scene.jpg", quality=85)  # an unregistered work, same placement
    assert runner.invoke(app, ["refs", "add", str(tmp_path / "poster.png"), "--title", "Poster"]).exit_code == 0
    r = runner.invoke(app, ["scan", str(deliv), "--out", str(tmp_path / "out")])
    recs = {Path(x["path"]).name: x for x in map(json.loads, (tmp_path / "out" / "results.jsonl").read_text().splitlines())}
    scene = recs["scene.jpg"]
    assert scene["verdict"] == "block", scene
    local = [f for f in scene["findings"] if f["detector"] == "image.local"][0]
    poly = np.array(local["extra"]["asset_polygon"], dtype=float)
    assert poly.shape == (4, 2) and np.abs(poly.mean(axis=0) - quad.mean(axis=0)).max() < 40
    assert recs["other_scene.jpg"]["verdict"] == "pass"
    assert r.exit_code == 1
    assert "<polygon" in (tmp_path / "out" / "report.html").read_text()
