"""Every bad input becomes an error result with a reason; the scan completes; exit code 2."""

from __future__ import annotations

import builtins
import json
import os
from pathlib import Path

from typer.testing import CliRunner

import scanner.media.files as files_mod
from scanner.api import Scanner
from scanner.cli import app
from scanner.testing.fixtures import artwork
from tests.conftest import png_bomb


def make_bad_folder(root: Path, works: list[Path]) -> dict[str, str]:
    """Bad files plus one real copy; returns file name -> expected words in the reason."""
    root.mkdir()
    good = works[0].read_bytes()
    png = root / "tmp.png"
    artwork(9).save(png)
    png_bytes = png.read_bytes()
    png.unlink()
    (root / "empty.png").write_bytes(b"")
    (root / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "truncated.png").write_bytes(png_bytes[: len(png_bytes) // 2])
    (root / "text.png").write_text("this is not an image\n")
    (root / "bomb.png").write_bytes(png_bomb())
    (root / "locked.jpg").write_bytes(good)
    os.chmod(root / "locked.jpg", 0)
    os.symlink("loop_b.jpg", root / "loop_a.jpg")
    os.symlink("loop_a.jpg", root / "loop_b.jpg")
    (root / "copy.jpg").write_bytes(good)
    return {
        "empty.png": "empty", "truncated.jpg": "truncated", "truncated.png": "truncated",
        "text.png": "not a recognised", "bomb.png": "limit", "locked.jpg": "ermission",
        "loop_a.jpg": "symbolic links", "loop_b.jpg": "symbolic links",
    }


def deny_locked(monkeypatch):
    """Root ignores file modes, so simulate the permission error the way a normal user sees it."""
    real_open = builtins.open

    def fake_open(path, *a, **k):
        if str(path).endswith("locked.jpg"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **k)

    monkeypatch.setattr(files_mod, "open", fake_open, raising=False)


def test_bad_inputs_become_errors_and_scan_completes(settings, works, tmp_path, monkeypatch):
    expected = make_bad_folder(tmp_path / "bad", works)
    deny_locked(monkeypatch)
    s = Scanner(settings)
    s.add_reference(works)
    results = {Path(r.path).name: r for r in s.scan([tmp_path / "bad"])}
    for name, words in expected.items():
        r = results[name]
        assert r.verdict.value == "error", name
        assert words in r.error, (name, r.error)
    assert results["copy.jpg"].verdict.value == "block"


def test_cli_exit_code_2_with_errors(settings, works, tmp_path, monkeypatch):
    make_bad_folder(tmp_path / "bad", works)
    deny_locked(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCANNER_DETECTORS", "image.pdq")
    runner = CliRunner()
    assert runner.invoke(app, ["refs", "add", *map(str, works)]).exit_code == 0
    r = runner.invoke(app, ["scan", str(tmp_path / "bad"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    records = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sum(rec["verdict"] == "error" for rec in records) == 8
    assert "could not be checked" in (tmp_path / "out" / "report.html").read_text()


def test_non_utf8_file_name_is_scanned_with_escaped_path(settings, works, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/caf\xe9_copy.jpg"
    with open(raw, "wb") as fh:
        fh.write(works[0].read_bytes())
    s = Scanner(settings)
    s.add_reference(works)
    (r,) = list(s.scan([folder]))
    assert r.path.endswith("caf\\xe9_copy.jpg")
    assert r.verdict.value == "block"
    json.dumps(r.to_dict())  # JSON-safe


def test_directory_symlink_loop_terminates(settings, works, tmp_path):
    folder = tmp_path / "loopdir"
    (folder / "inner").mkdir(parents=True)
    os.symlink("..", folder / "inner" / "up")
    artwork(5).save(folder / "inner" / "a.png")
    s = Scanner(settings)
    s.add_reference(works)
    results = list(s.scan([folder]))
    assert [Path(r.path).name for r in results] == ["a.png"]


def test_audio_asset_is_not_passed_silently(settings, works, tmp_path):
    import wave

    p = tmp_path / "tone.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\x00\x01" * 8000)
    s = Scanner(settings)
    s.add_reference(works)
    r = s.check(p)
    assert r.verdict.value == "error" and "audio" in r.error
