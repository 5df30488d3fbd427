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


def test_two_actors_give_the_results_of_one(local_ray, tmp_path, monkeypatch, works, deliverables):
    """``--actors 2`` (the delivery cut into batches spread over both) writes what ``--actors 1`` writes."""
    from scanner.testing.fixtures import artwork

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCANNER_DETECTORS", "image.pdq")
    for seed in range(8):  # enough files for several batches per actor
        artwork(600 + seed).save(deliverables / f"more_{seed}.jpg", quality=80)
    assert runner.invoke(app, ["refs", "add", *map(str, works)]).exit_code == 0
    outs = {}
    for n in (1, 2):
        outs[n] = tmp_path / f"ray{n}"
        res = runner.invoke(app, ["scan", str(deliverables), "--out", str(outs[n]), "--engine", "ray",
                                  "--actors", str(n), "--no-html"])
        assert res.exit_code == 1, res.output  # the copies are flagged

    def records(folder: Path) -> list[dict]:
        return [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]

    one, two = records(outs[1]), records(outs[2])
    assert len(one) == 12 and sum(r["verdict"] != "pass" for r in one) == 2
    assert two == one


def test_batches_spread_over_actors():
    from scanner.jobs.ray_engine import batch_for, default_actors

    assert batch_for(40, 1, 32) == 32  # one actor keeps whole batches
    assert batch_for(40, 2, 32) == 5  # 8 batches: 4 per actor
    assert batch_for(1000, 4, 32) == 32  # large deliveries: the scan's batch size
    assert batch_for(3, 2, 32) == 1
    assert default_actors({"CPU": 2.0}) == 1 and default_actors({"CPU": 16.0}) == 8
    assert default_actors({"CPU": 16.0, "GPU": 2.0}) == 2


def test_actor_count_is_checked(tmp_path, monkeypatch, deliverables):
    from scanner.config import Settings
    from scanner.errors import ConfigError
    from scanner.jobs.ray_engine import scan_with_ray

    with pytest.raises(ConfigError, match="at least one actor"):
        next(scan_with_ray(Settings(), [], "test", actors=0))
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["scan", str(deliverables), "--actors", "2"])
    assert res.exit_code != 0 and "--engine ray" in res.output
    res = runner.invoke(app, ["scan", str(deliverables), "--engine", "ray", "--actors", "0"])
    assert res.exit_code != 0 and "--actors" in res.output
