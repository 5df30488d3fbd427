"""The first hour with the CLI (issue 14): options where users put them, hints that work when pasted,
honest exit codes for empty folders and usage errors, one default detector list, a fast start."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from scanner.cli import app
from scanner.config import Settings
from scanner.detectors.base import options_for
from tests.conftest import REPO, by_name

runner = CliRunner()


class ExitCode:
    """The documented table (README, `scanner --help`), spelled out: the numbers are the contract."""

    PASS, FLAGGED, UNCHECKED, NOTHING_TO_SCAN, CANNOT_RUN = 0, 1, 2, 3, 4


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """The CLI in a temp workspace, PDQ only (fast), no config file or SCANNER_* from the caller."""
    for key in list(os.environ):
        if key.startswith("SCANNER_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCANNER_DETECTORS", "image.pdq")
    monkeypatch.setenv("SCANNER_MODEL_CACHE", str(tmp_path / "models-cache"))
    monkeypatch.setenv("COLUMNS", "250")

    def run(*args):
        return runner.invoke(app, [str(a) for a in args])

    return run


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ----- 1. --stage -------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["final", "ideation"])
def test_stage_option_on_scan_and_check(cli, works, deliverables, tmp_path, stage):
    assert cli("refs", "add", *works).exit_code == 0
    r = cli("scan", deliverables, "--stage", stage, "--out", tmp_path / "o")
    assert r.exit_code == ExitCode.FLAGGED, r.output
    assert {rec["stage"] for rec in _records(tmp_path / "o" / "results.jsonl")} == {stage}
    c = cli("check", deliverables / "copy_resized.jpg", "--stage", stage)
    assert c.exit_code == ExitCode.FLAGGED, c.output
    assert json.loads(c.stdout)["stage"] == stage
    before = cli("--stage", stage, "check", deliverables / "copy_resized.jpg")  # the same before the command
    assert json.loads(before.stdout)["stage"] == stage


# ----- 2. check FOLDER -------------------------------------------------------------------------
def test_check_folder_is_a_one_line_usage_error_pointing_to_scan(cli, works, deliverables, tmp_path, monkeypatch):
    cli("refs", "add", *works)
    monkeypatch.setenv("COLUMNS", "60")  # one line even where the terminal is narrower than the message
    empty = tmp_path / "empty dir"
    empty.mkdir()
    for folder in (deliverables, empty):
        r = cli("check", folder)
        assert r.exit_code == ExitCode.CANNOT_RUN, r.output
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output
        hint = re.search(r"scanner scan .+$", r.output.strip()).group(0)
        assert shlex.split(hint) == ["scanner", "scan", str(folder)]
    # ...and the hint works when pasted (flagged copies in deliverables: exit 1).
    pasted = cli(*shlex.split(re.search(r"scanner scan .+$", cli("check", deliverables).output.strip())
                              .group(0))[1:], "--out", tmp_path / "o")
    assert pasted.exit_code == ExitCode.FLAGGED, pasted.output


# ----- 3. scan of an empty folder ---------------------------------------------------------------
def test_scan_of_empty_or_media_free_folder_writes_empty_report_and_exits_3(cli, works, tmp_path):
    cli("refs", "add", works[0])
    empty, sidecars = tmp_path / "empty", tmp_path / "sidecars"
    empty.mkdir()
    sidecars.mkdir()
    (sidecars / "notes.txt").write_text("not media")
    for folder in (empty, sidecars):
        out = tmp_path / f"out-{folder.name}"
        r = cli("scan", folder, "--out", out)
        assert r.exit_code == ExitCode.NOTHING_TO_SCAN == 3, r.output
        assert "no media files found" in r.output
        assert (out / "results.jsonl").read_text() == ""
        assert "total: 0" in (out / "report.html").read_text()


def test_empty_shard_is_not_an_empty_delivery(cli, works, tmp_path):
    """A farm with more tasks than files has empty shards: they exit 0; merge judges the delivery."""
    cli("refs", "add", works[0])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("scan", empty, "--out", tmp_path / "farm", "--shard", "1/2").exit_code == 0
    assert cli("scan", empty, "--out", tmp_path / "farm", "--shard", "2/2").exit_code == 0
    assert cli("merge", tmp_path / "farm").exit_code == ExitCode.NOTHING_TO_SCAN


# ----- 4. options after the command, and hints -------------------------------------------------
def test_settings_options_work_before_and_after_the_command(cli, works, deliverables, tmp_path, monkeypatch):
    monkeypatch.delenv("SCANNER_DETECTORS")
    ws = tmp_path / "ws"
    opts = ["--catalog", ws / "c.db", "--index-dir", ws / "idx", "--detectors", "image.pdq", "--device", "cpu"]
    assert cli("refs", "add", *works, *opts).exit_code == 0  # after
    assert (ws / "c.db").exists()
    assert cli(*opts, "index", "build").exit_code == 0  # before
    assert (ws / "idx").is_dir()
    after = cli("scan", deliverables, *opts, "--out", tmp_path / "a")
    before = cli(*opts, "scan", deliverables, "--out", tmp_path / "b")
    assert after.exit_code == before.exit_code == ExitCode.FLAGGED, after.output
    assert by_name(_records(tmp_path / "a" / "results.jsonl"))["copy_resized.jpg"]["verdict"] == "block"
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'catalog = "{ws / "c.db"}"\nindex_dir = "{ws / "idx"}"\ndetectors = ["image.pdq"]\n')
    via_config = cli("check", deliverables / "copy_resized.jpg", "--config", cfg)
    assert via_config.exit_code == ExitCode.FLAGGED, via_config.output
    # the option after the command wins over the one before it
    r = cli("--catalog", tmp_path / "other.db", "refs", "list", "--json", "--catalog", ws / "c.db")
    assert len(r.stdout.splitlines()) == 3, r.output


def test_model_hint_works_when_pasted(cli, works, deliverables, tmp_path, monkeypatch):
    """The missing-model error suggests `--clip-model clip-test-tiny`; pasted after the command it must parse."""
    monkeypatch.setenv("SCANNER_DETECTORS", "image.clip")
    cli("refs", "add", works[0])
    r = cli("check", deliverables / "copy_resized.jpg")
    assert r.exit_code == ExitCode.CANNOT_RUN and "--clip-model clip-test-tiny" in r.output, r.output
    # The option is accepted after the command: what fails now is the model name, not the option.
    bad = cli("check", deliverables / "copy_resized.jpg", "--clip-model", "no-such-model")
    assert "No such option" not in bad.output and "unknown model 'no-such-model'" in bad.output, bad.output


def _hints() -> set[str]:
    """Every `scanner ...` command the program prints between backticks (placeholders made concrete)."""
    found = set()
    for path in (REPO / "scanner").rglob("*.py"):
        for m in re.finditer(r"`(scanner [^`]+)`", path.read_text(encoding="utf-8")):
            hint = re.sub(r"\{[^}]*\}", "X", m.group(1))
            found.add(hint)
    return found


def _resolves(words: list[str]) -> str | None:
    """None when ``words`` (after `scanner`) name a command and only options it accepts; else what is wrong."""
    cmd = typer.main.get_command(app)
    words = list(words)
    while words:
        word = words.pop(0)
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            param = next((p for p in cmd.params if name in (p.opts + p.secondary_opts)), None)
            if param is None and name != "--help":
                return f"{name} is not an option of {cmd.name}"
            if param is not None and not param.is_flag and "=" not in word and words:
                words.pop(0)  # the option's value
        elif hasattr(cmd, "commands"):
            choices = word.split("|")  # `scanner models pull|import`
            if not all(c in cmd.commands for c in choices):
                return f"{word} is not a command of {cmd.name}"
            cmd = cmd.commands[choices[0]]
    return None


def test_every_printed_hint_names_real_commands_and_options():
    hints = _hints()
    assert {"scanner models list", "scanner index build --rebuild", "scanner keys create --scope check"} <= hints
    bad = {h: why for h in hints if (why := _resolves([w for w in shlex.split(h)[1:] if w not in ("...",)]))}
    assert not bad, bad


def test_catalog_hint_works_after_the_command(cli, tmp_path):
    """`no catalog at ... (use --catalog ...)`: the user adds --catalog to the command they ran."""
    r = cli("audit", "list", "--catalog", tmp_path / "none.db")
    assert r.exit_code == ExitCode.CANNOT_RUN and "use --catalog" in r.output
    cli("keys", "create", "--scope", "check", "--catalog", tmp_path / "c.db")
    assert cli("audit", "list", "--catalog", tmp_path / "c.db").exit_code == 0


# ----- 5. one default detector list; `scanner detectors` ----------------------------------------
def test_help_prints_the_real_default_detectors(cli):
    text = " ".join(cli("--help").output.split())
    default = ", ".join(Settings().detectors)
    assert f"(default: {default};" in text, text
    assert "Exit codes: 0" in text and "4 the scanner could not run" in text


def test_detectors_command_lists_every_registered_detector(cli):
    from scanner.detectors.base import detector_names

    r = cli("detectors", "--json")
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in map(json.loads, r.stdout.splitlines())}
    assert sorted(rows) == detector_names()
    for name, row in rows.items():
        assert row["finds"] and not row["finds"].startswith("``"), row
        assert row["installed"], row
    assert rows["image.pdq"]["model"] == "" and rows["image.pdq"]["installed"] == "no weights needed"
    assert rows["image.pdq"]["enabled"] and not rows["image.face"]["enabled"]  # SCANNER_DETECTORS=image.pdq
    assert rows["image.clip"]["model"] == options_for("image.clip", Settings()).model
    table = cli("detectors")
    assert table.exit_code == 0 and all(name in table.output for name in rows)


def test_detectors_installed_state_follows_the_model_cache(cli, tmp_path):
    clip = options_for("image.clip", Settings()).model
    before = {r["name"]: r for r in map(json.loads, cli("detectors", "--json").stdout.splitlines())}
    assert before["image.clip"]["installed"] == "no"
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"not really weights")
    assert cli("models", "import", clip, weights).exit_code == 0
    after = {r["name"]: r for r in map(json.loads, cli("detectors", "--json").stdout.splitlines())}
    assert after["image.clip"]["installed"] == "yes"


# ----- 6. exit codes ------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["scan"], ["check"], ["nonsense"], ["--catalog"], ["scan", ".", "--fail-on", "x"],
                                  ["scan", ".", "--stage", "later"], ["scan", ".", "--no-such-option"]])
def test_usage_errors_exit_4(cli, args):
    r = cli(*args)
    assert r.exit_code == ExitCode.CANNOT_RUN, (args, r.output)
    assert "Traceback" not in r.output


def test_config_errors_exit_4_and_unreadable_assets_exit_2(cli, works, tmp_path, monkeypatch):
    cli("refs", "add", works[0])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert cli("check", bad).exit_code == ExitCode.UNCHECKED
    monkeypatch.setenv("SCANNER_DETECTORS", "image.magic")
    r = cli("check", bad)
    assert r.exit_code == ExitCode.CANNOT_RUN and "unknown detector" in r.output


# ----- 9. start-up ----------------------------------------------------------------------------------
HEAVY = ("torch", "open_clip", "dlib", "librosa", "ray", "fastapi", "numpy", "faiss", "cv2", "PIL", "scanner.api")


def test_help_and_light_commands_import_no_heavy_library(tmp_path):
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom scanner.cli import app\n"
            "for args in (['--help'], ['--version'], ['scan', '--help'], ['refs', '--help']):\n"
            "    r = CliRunner().invoke(app, args)\n    assert r.exit_code == 0, (args, r.output)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANNER_")}
    env["PYTHONPATH"] = str(REPO)  # this checkout, whatever is installed
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_listing_detectors_loads_no_model_framework(tmp_path):
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom scanner.cli import app\n"
            "r = CliRunner().invoke(app, ['detectors', '--json'])\nassert r.exit_code == 0, r.output\n"
            "print(sorted(m for m in ('torch', 'open_clip', 'dlib', 'librosa', 'ray', 'fastapi', 'onnxruntime')"
            " if m in sys.modules))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANNER_")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


# ----- 10. terminal summary in 80 columns -----------------------------------------------------------
def test_summary_fits_80_columns_and_keeps_names_apart(cli, works, tmp_path, monkeypatch):
    from PIL import Image

    cli("refs", "add", works[0])
    folder = tmp_path / "deliv"
    folder.mkdir()
    stem = "EP104_sq020_sh0140_comp_lighting_denoise_final_approved"
    for v in (1, 2, 3):
        Image.open(works[0]).resize((300, 200)).save(folder / f"{stem}_v00{v}.jpg", quality=70)
    monkeypatch.setenv("COLUMNS", "80")
    r = cli("scan", folder, "--out", tmp_path / "o")
    assert r.exit_code == ExitCode.FLAGGED, r.output
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    for v in (1, 2, 3):
        assert any(f"_v00{v}.jpg" in line for line in lines), r.stdout


def test_shorten_middle():
    from scanner.reports.summary import shorten_middle

    assert shorten_middle("short.png", 20) == "short.png"
    cut = shorten_middle("a_very_long_common_prefix_for_every_shot_v003.png", 20)
    assert len(cut) == 20 and cut.startswith("a_very_l") and cut.endswith("_v003.png") and "…" in cut


def test_exit_code_table_matches_the_code():
    from scanner.reports.summary import EXIT_CODE_MEANINGS, ExitCode as Codes

    assert {c.name: int(c) for c in Codes} == {k: v for k, v in vars(ExitCode).items() if k.isupper()}
    readme = (REPO / "README.md").read_text()
    for code in Codes:
        assert f"| {int(code)} |" in readme, code
    assert set(EXIT_CODE_MEANINGS) == set(Codes)


def test_settings_options_clash_with_no_command_option():
    """Every command gets the settings options; none may already use one of their flags for something else."""
    clashes = []

    def walk(cmd, path):
        seen: dict[str, str] = {}
        for p in cmd.params:
            for flag in p.opts + p.secondary_opts:
                if flag in seen:
                    clashes.append((" ".join(path), flag, seen[flag], p.name))
                seen[flag] = p.name
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    root = typer.main.get_command(app)
    walk(root, ["scanner"])
    assert not clashes
    scan = root.commands["scan"]
    assert {"--catalog", "--detectors", "--device", "--index-dir", "--config", "--stage", "--clip-model"} <= {
        f for p in scan.params for f in p.opts}
