"""CLI through typer's CliRunner: commands, exit codes, messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scanner.cli import app
from tests.conftest import by_name

runner = CliRunner()


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run the CLI inside a temp workspace with PDQ only (fast)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCANNER_DETECTORS", "image.pdq")
    monkeypatch.setenv("SCANNER_MODEL_CACHE", str(tmp_path / "models-cache"))
    monkeypatch.setenv("COLUMNS", "250")  # keep rich tables from wrapping names

    def run(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return run


def test_refs_add_list_remove(cli, works):
    r = cli("refs", "add", *works, "--title", "Key art", "--owner", "Studio X", "--clearance", "licensed")
    assert r.exit_code == 0, r.output
    assert r.output.count("added   #") == 3
    again = cli("refs", "add", works[0])
    assert "already registered" in again.output and again.exit_code == 0
    listed = cli("refs", "list", "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["title"] for r in rows] == ["Key art"] * 3 and rows[0]["clearance"] == "licensed"
    gone = cli("refs", "remove", str(rows[0]["id"]), rows[1]["sha256"][:10])
    assert gone.exit_code == 0 and gone.output.count("removed") == 2
    assert len(cli("refs", "list", "--json").stdout.splitlines()) == 1


def test_refs_import_manifest(cli, works, tmp_path):
    csv = tmp_path / "works" / "manifest.csv"
    csv.write_text("path,title,owner,clearance\n" + "\n".join(
        f"{p.name},Work {i},Owner {i},uncleared" for i, p in enumerate(works)) + "\nmissing.jpg,Gone,X,uncleared\n")
    r = cli("refs", "import", csv)
    assert r.exit_code == 2  # one row failed
    assert "3 added" in r.output and "1 failed" in r.output and "missing.jpg" in r.output


def test_refs_add_bad_clearance_is_one_line(cli, works):
    r = cli("refs", "add", works[0], "--clearance", "stolen")
    assert r.exit_code == 4  # usage error: the scanner could not run
    assert "Traceback" not in r.output and "stolen" in r.output


def test_scan_writes_reports_and_exit_1_when_flagged(cli, works, deliverables, tmp_path):
    assert cli("refs", "add", *works).exit_code == 0
    build = cli("index", "build")
    assert build.exit_code == 0, build.output
    r = cli("scan", deliverables, "--out", tmp_path / "out")
    assert r.exit_code == 1, r.output
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    res = by_name(lines)
    assert res["copy_resized.jpg"]["verdict"] == "block"
    assert res["original_a.jpg"]["verdict"] == "pass"
    html = (tmp_path / "out" / "report.html").read_text()
    assert "copy_resized.jpg" in html and "block: 2" in html
    sha = res["copy_resized.jpg"]["sha256"]
    assert f'thumbs/{sha}.jpg' in html and (tmp_path / "out" / "thumbs" / f"{sha}.jpg").is_file()
    assert (tmp_path / "out" / "thumbs" / f"ref-work-{res['copy_resized.jpg']['findings'][0]['reference_id']}.jpg").is_file()
    assert "2 block" in r.stdout


def test_fail_on_never_and_block(cli, works, deliverables, tmp_path):
    cli("refs", "add", *works)
    assert cli("scan", deliverables, "--out", tmp_path / "o1", "--fail-on", "never").exit_code == 0
    assert cli("scan", deliverables, "--out", tmp_path / "o2", "--fail-on", "block").exit_code == 1


def test_scan_clean_folder_exits_0(cli, works, tmp_path):
    cli("refs", "add", works[0])
    clean = tmp_path / "clean"
    clean.mkdir()
    from scanner.testing.fixtures import artwork

    artwork(777).save(clean / "fresh.png")
    r = cli("scan", clean, "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output


def test_check_prints_json(cli, works, deliverables):
    cli("refs", "add", *works)
    r = cli("check", deliverables / "copy_resized.jpg")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["verdict"] == "block" and data["findings"][0]["reference_title"] == "work_1"


def test_check_missing_file_is_error_exit_2(cli, works, tmp_path):
    cli("refs", "add", works[0])
    r = cli("check", tmp_path / "nope.png")
    assert r.exit_code == 2
    assert json.loads(r.stdout)["verdict"] == "error"


def test_index_status_and_build(cli, works):
    cli("refs", "add", *works)
    assert "3 not yet indexed" in cli("index", "status").output
    assert cli("index", "build").exit_code == 0
    status = cli("index", "status")
    assert "indexes are current" in status.output and "image.pdq" in status.output


def test_models_list_and_missing_model_message(cli, works, monkeypatch):
    listed = cli("models", "list")
    assert "clip-vit-b-32-laion2b" in listed.output and "clip-test-tiny" in listed.output
    monkeypatch.setenv("SCANNER_DETECTORS", "image.clip")
    cli("refs", "add", works[0])
    r = cli("index", "build")
    assert r.exit_code == 4  # missing model: could not run
    assert "scanner models pull" in r.output and "Traceback" not in r.output


def test_models_import_verifies_and_installs(cli, tmp_path):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"not really weights")
    r = cli("models", "import", "clip-vit-b-32-laion2b", weights)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "models-cache" / "clip-vit-b-32-laion2b" / "open_clip_pytorch_model.bin").is_file()
    assert cli("models", "import", "clip-test-tiny", weights).exit_code == 4


def test_bad_arguments_are_short_messages(cli, tmp_path):
    for args in (["scan"], ["scan", tmp_path, "--fail-on", "sometimes"], ["check"], ["nonsense"],
                 ["--catalog"], ["scan", tmp_path, "--stage", "later"]):
        r = cli(*args)
        assert r.exit_code == 4, args  # usage errors: could not run (2 is "an asset could not be checked")
        assert "Traceback" not in r.output


def test_unknown_detector_is_clear(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SCANNER_DETECTORS", "image.magic")
    r = cli("index", "build")
    assert r.exit_code == 4 and "unknown detector 'image.magic'" in r.output


def test_version(cli):
    r = cli("--version")
    assert r.exit_code == 0 and r.output.startswith("scanner ")
