"""Audio works end to end: register a recording, find an excerpt of it inside a generated track."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from scanner.cli import app
from scanner.testing.audio import encode_audio, synth_music

SR = 16000
runner = CliRunner()


def test_excerpt_of_a_registered_recording_is_found_with_spans(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCANNER_DETECTORS", "audio.fingerprint,image.pdq")
    song, other = synth_music(11, seconds=40.0), synth_music(12, seconds=40.0)
    (tmp_path / "song.ogg").write_bytes(encode_audio(song, SR, "ogg"))
    deliv = tmp_path / "deliv"
    deliv.mkdir()
    # 10 s of the song (from 15 s) inside new material, at 8 s of the asset, as MP3
    mix = np.concatenate([other[: 8 * SR], song[15 * SR: 25 * SR], other[8 * SR: 16 * SR]])
    (deliv / "score_v2.mp3").write_bytes(encode_audio(mix, SR, "mp3"))
    (deliv / "clean.wav").write_bytes(encode_audio(synth_music(13, seconds=20.0), SR, "wav"))
    (deliv / "silence.wav").write_bytes(encode_audio(np.zeros(5 * SR, np.float32), SR, "wav"))
    r = runner.invoke(app, ["refs", "add", str(tmp_path / "song.ogg"), "--title", "Main Theme", "--owner", "Label"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["scan", str(deliv), "--out", str(tmp_path / "out")])
    recs = {Path(x["path"]).name: x for x in map(json.loads, (tmp_path / "out" / "results.jsonl").read_text().splitlines())}
    hit = recs["score_v2.mp3"]
    assert hit["verdict"] == "block", hit
    f = hit["findings"][0]
    assert f["reference_title"] == "Main Theme" and f["detector"] == "audio.fingerprint"
    assert abs(f["extra"]["asset_start"] - 8.0) < 1.0 and abs(f["extra"]["asset_end"] - 18.0) < 1.0
    assert abs(f["extra"]["ref_start"] - 15.0) < 1.0
    assert recs["clean.wav"]["verdict"] == "pass"
    assert recs["silence.wav"]["verdict"] == "pass" and recs["silence.wav"]["notes"]
    assert r.exit_code == 1
    html = (tmp_path / "out" / "report.html").read_text()
    assert "asset span" in html and "<rect" in html
