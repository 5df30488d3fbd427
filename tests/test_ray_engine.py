"""The Ray engine on a local Ray instance gives the same results as the single-process scan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scanner.cli import app

ray = pytest.importorskip("ray")
runner = CliRunner()


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_scan_equals_local_scan(local_ray, tmp_path, monkeypatch, works, deliverables):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCANNER_DETECTORS", "image.pdq")
    monkeypatch.setenv("COLUMNS", "250")
    (deliverables / "broken.png").write_text("not an image")
    assert runner.invoke(app, ["refs", "add", *map(str, works)]).exit_code == 0
    rel = str(deliverables.relative_to(tmp_path))  # relative paths: workers run in another directory
    local = runner.invoke(app, ["scan", rel, "--out", str(tmp_path / "local")])
    on_ray = runner.invoke(app, ["scan", rel, "--out", str(tmp_path / "ray"), "--engine", "ray"])
    assert on_ray.exit_code == local.exit_code == 2, on_ray.output

    def records(folder: Path) -> list[dict]:
        return [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]

    assert records(tmp_path / "ray") == records(tmp_path / "local")
    assert (tmp_path / "ray" / "report.html").is_file()
    again = runner.invoke(app, ["scan", rel, "--out", str(tmp_path / "ray"), "--engine", "ray"])
    assert "resuming: 4 earlier results" in again.output and records(tmp_path / "ray") == records(tmp_path / "local")
