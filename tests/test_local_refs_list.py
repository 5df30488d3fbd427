"""`scanner refs list` warns about works a detector cannot see (issue 13: a flat reference has too few
keypoints for ``image.local``), naming the reason and what still covers them; read from the index manifests."""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw, ImageFilter
from typer.testing import CliRunner

from scanner.cli import app
from scanner.testing.fixtures import artwork

runner = CliRunner()


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCANNER_DETECTORS", "image.pdq,image.local")
    monkeypatch.setenv("SCANNER_MODEL_CACHE", str(tmp_path / "models-cache"))
    monkeypatch.setenv("COLUMNS", "250")

    def run(*args):
        return runner.invoke(app, [str(a) for a in args])

    return run


def test_refs_list_names_works_a_detector_cannot_see(cli, tmp_path):
    textured, flat = tmp_path / "textured.png", tmp_path / "flat.png"
    artwork(3).save(textured)
    # a blurred 3 x 3 checkerboard: a whole-image hash still describes it, SIFT finds two keypoints on it
    img = Image.new("RGB", (640, 480), (40, 90, 160))
    for i in range(3):
        for j in range(3):
            if (i + j) % 2:
                ImageDraw.Draw(img).rectangle((i * 213, j * 160, (i + 1) * 213, (j + 1) * 160), fill=(220, 210, 60))
    img.filter(ImageFilter.GaussianBlur(8)).save(flat)
    assert cli("refs", "add", textured, "--title", "Busy").exit_code == 0
    assert cli("refs", "add", flat, "--title", "Plain").exit_code == 0

    before = cli("refs", "list")
    assert before.exit_code == 0, before.output
    assert "index build" in before.output  # nothing built yet: it says how to find out

    assert cli("index", "build").exit_code == 0
    listed = cli("refs", "list")
    assert listed.exit_code == 0, listed.output
    assert "1 work cannot be seen by some detectors" in listed.output
    line = next(ln for ln in listed.output.splitlines() if "#2 Plain" in ln)
    assert "image.local" in line and "keypoints" in line  # which detector, and why
    assert "still covered by image.pdq" in line
    assert "#1 Busy" not in listed.output.split("cannot be seen")[1]

    rows = {r["title"]: r for r in map(json.loads, cli("refs", "list", "--json").stdout.splitlines())}
    assert set(rows["Plain"]["unseen_by"]) == {"image.local"} and rows["Plain"]["covered_by"] == ["image.pdq"]
    assert rows["Busy"]["unseen_by"] == {} and rows["Busy"]["covered_by"] == ["image.pdq", "image.local"]
