"""Talent likeness end to end with the real face and voice models: registration, scan, consent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scanner.cli import app

FIX = Path(__file__).parent / "fixtures"
runner = CliRunner()


@pytest.fixture
def studio(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCANNER_DETECTORS", "image.face,audio.voice")
    monkeypatch.setenv("COLUMNS", "250")
    deliv = tmp_path / "deliv"
    deliv.mkdir()
    shutil.copy(FIX / "faces" / "person_a_2.jpg", deliv / "gen_a.jpg")
    shutil.copy(FIX / "faces" / "person_b_1.jpg", deliv / "gen_b.jpg")
    shutil.copy(FIX / "voices" / "speaker_a_2.flac", deliv / "gen_voice_a.flac")
    shutil.copy(FIX / "voices" / "speaker_b_2.flac", deliv / "gen_voice_b.flac")
    return deliv


def run(*args) -> "object":
    return runner.invoke(app, [str(a) for a in args])


def records(folder: Path) -> dict[str, dict]:
    lines = (folder / "results.jsonl").read_text().splitlines()
    return {Path(r["path"]).name: r for r in map(json.loads, lines)}


def test_group_photo_rejected_at_registration(studio):
    r = run("talent", "add", "Ann Actor", "--photo", FIX / "faces" / "group_two.jpg")
    assert r.exit_code == 4 and "exactly one face" in r.output
    assert "Ann Actor" not in run("talent", "list").output


def test_likeness_blocked_without_consent_and_passes_with_it(studio, tmp_path):
    r = run("talent", "add", "Ann Actor", "--photo", FIX / "faces" / "person_a_1.jpg",
            "--voice", FIX / "voices" / "speaker_a_1.flac")
    assert r.exit_code == 0, r.output
    out1 = tmp_path / "r1"
    assert run("scan", studio, "--out", out1, "--project", "EP1").exit_code == 1
    recs = records(out1)
    face = recs["gen_a.jpg"]
    assert face["verdict"] == "block" and face["findings"][0]["reference_title"] == "Ann Actor"
    assert len(face["findings"][0]["extra"]["box"]) == 4 and "no consent" in face["findings"][0]["note"]
    voice = recs["gen_voice_a.flac"]
    assert voice["verdict"] == "block" and voice["findings"][0]["detector"] == "audio.voice"
    assert voice["findings"][0]["extra"]["end"] > voice["findings"][0]["extra"]["start"]
    assert recs["gen_b.jpg"]["verdict"] == "pass" and recs["gen_voice_b.flac"]["verdict"] == "pass"
    assert "Ann Actor" in (out1 / "report.html").read_text()

    g = run("consent", "grant", "Ann Actor", "--scope", "digital-replica", "--project", "EP1",
            "--document", "CONTRACT-42", "--from", "2020-01-01")
    assert g.exit_code == 0, g.output
    out2 = tmp_path / "r2"
    assert run("scan", studio, "--out", out2, "--project", "EP1").exit_code == 0
    face = records(out2)["gen_a.jpg"]
    assert face["verdict"] == "pass" and face["findings"][0]["level"] == "consented"
    assert "CONTRACT-42" in face["findings"][0]["note"]
    # another project is not covered
    assert records_of(run, studio, tmp_path / "r3", "EP2")["gen_a.jpg"]["verdict"] == "block"

    grant_id = face["findings"][0]["consent_id"]
    assert run("consent", "revoke", grant_id, "--document", "NOTICE-1").exit_code == 0
    assert records_of(run, studio, tmp_path / "r4", "EP1")["gen_a.jpg"]["verdict"] == "block"
    history = run("consent", "list", "Ann Actor").output
    assert "grant" in history and "revoke" in history


def records_of(run_, folder: Path, out: Path, project: str) -> dict[str, dict]:
    run_("scan", folder, "--out", out, "--project", project)
    return records(out)


def test_union_covered_talent_needs_review_even_with_consent(studio, tmp_path):
    run("talent", "add", "Uma Union", "--photo", FIX / "faces" / "person_a_1.jpg", "--union-covered")
    run("consent", "grant", "Uma Union", "--scope", "face", "--project", "*", "--document", "SAG-1")
    assert run("scan", studio / "gen_a.jpg", "--out", tmp_path / "u", "--project", "EP9").exit_code == 1
    finding = records(tmp_path / "u")["gen_a.jpg"]["findings"][0]
    assert finding["level"] == "review" and "union-covered" in finding["note"]
