"""Farm shards, merge and resume give the same results as one plain scan."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scanner.cli import app
from scanner.errors import ConfigError
from scanner.jobs.shards import Shard, in_shard, shard_key
from scanner.testing.fixtures import artwork

runner = CliRunner()


@pytest.fixture
def farm(tmp_path, monkeypatch, works, deliverables):
    """A workspace with works registered and a deliverables folder of 12 assets."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCANNER_DETECTORS", "image.pdq")
    for seed in range(600, 608):
        artwork(seed).save(deliverables / f"extra_{seed}.jpg", quality=80)
    assert runner.invoke(app, ["refs", "add", *map(str, works)]).exit_code == 0
    return deliverables


def _records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _essence(records: list[dict]) -> list[tuple]:
    return sorted((Path(r["path"]).name, r["verdict"], r["sha256"],
                   tuple((f["reference_id"], f["score"]) for f in r["findings"])) for r in records)


def test_shard_parse():
    assert Shard.parse("2/5") == Shard(1, 5)
    for bad in ("0/3", "4/3", "x", "", "1/0"):
        with pytest.raises(ConfigError):
            Shard.parse(bad)


def test_partition_is_complete_disjoint_and_mount_independent(tmp_path):
    keys = [f"ep1/shot_{i:03d}.exr" for i in range(200)]
    owners = [[k for k in keys if in_shard(k, Shard(i, 4))] for i in range(4)]
    assert sorted(sum(owners, [])) == sorted(keys)
    assert all(owners)  # every shard gets work
    a, b = tmp_path / "mnt_a" / "deliv", tmp_path / "other" / "deliv"
    assert shard_key(str(a / "x" / "y.png"), [str(a)]) == shard_key(str(b / "x" / "y.png"), [str(b)])


def test_shards_then_merge_equal_single_scan(farm, tmp_path):
    single = runner.invoke(app, ["scan", str(farm), "--out", str(tmp_path / "single")])
    codes = [runner.invoke(app, ["scan", str(farm), "--out", str(tmp_path / "farm"), "--shard", f"{k}/3"]).exit_code
             for k in (1, 2, 3)]
    assert codes.count(1) >= 1  # the copies land in some shard
    merged = runner.invoke(app, ["merge", str(tmp_path / "farm")])
    assert merged.exit_code == single.exit_code == 1, merged.output
    assert _essence(_records(tmp_path / "farm" / "results.jsonl")) == _essence(
        _records(tmp_path / "single" / "results.jsonl"))
    assert (tmp_path / "farm" / "report.html").is_file()


def test_merge_refuses_incomplete_set(farm, tmp_path):
    runner.invoke(app, ["scan", str(farm), "--out", str(tmp_path / "farm"), "--shard", "1/3"])
    r = runner.invoke(app, ["merge", str(tmp_path / "farm")])
    assert r.exit_code == 4 and "[2, 3]" in r.output


def test_resume_reuses_unchanged_and_redoes_changed(farm, tmp_path):
    out = tmp_path / "out"
    first = runner.invoke(app, ["scan", str(farm), "--out", str(out)])
    full = _records(out / "results.jsonl")
    again = runner.invoke(app, ["scan", str(farm), "--out", str(out)])
    assert f"{len(full)} earlier results" in again.output
    assert _essence(_records(out / "results.jsonl")) == _essence(full) and again.exit_code == first.exit_code
    artwork(999).save(farm / "extra_600.jpg", quality=80)  # changed bytes: must be checked again
    runner.invoke(app, ["scan", str(farm), "--out", str(out)])
    changed = {Path(r["path"]).name: r for r in _records(out / "results.jsonl")}
    old = {Path(r["path"]).name: r for r in full}
    assert changed["extra_600.jpg"]["sha256"] != old["extra_600.jpg"]["sha256"]


def test_killed_scan_rerun_gives_same_report(farm, tmp_path):
    reference = tmp_path / "ref"
    runner.invoke(app, ["scan", str(farm), "--out", str(reference)])
    expected = _records(reference / "results.jsonl")
    out = tmp_path / "killed"
    out.mkdir()
    lines = (reference / "results.jsonl").read_text().splitlines()
    # what a kill leaves: some complete lines and a torn last line
    (out / "results.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][: len(lines[5]) // 2])
    r = runner.invoke(app, ["scan", str(farm), "--out", str(out)])
    assert "5 earlier results" in r.output
    assert _records(out / "results.jsonl") == expected


def test_config_change_invalidates_reuse(farm, tmp_path, works):
    out = tmp_path / "out"
    runner.invoke(app, ["scan", str(farm), "--out", str(out)])
    extra = tmp_path / "new_work.png"
    artwork(4242).save(extra)
    runner.invoke(app, ["refs", "add", str(extra)])
    r = runner.invoke(app, ["scan", str(farm), "--out", str(out)])
    assert "earlier results" not in r.output  # new index checksum: everything is checked again


def test_errors_are_redone_on_resume(farm, tmp_path):
    out = tmp_path / "out"
    bad = farm / "broken.png"
    bad.write_text("not an image")
    runner.invoke(app, ["scan", str(farm), "--out", str(out)])
    shutil.copy(farm / "extra_601.jpg", bad)  # fixed in place
    r = runner.invoke(app, ["scan", str(farm), "--out", str(out)])
    recs = {Path(x["path"]).name: x for x in _records(out / "results.jsonl")}
    assert recs["broken.png"]["verdict"] == "pass" and r.exit_code == 1


def test_index_parts_built_by_shards_merge_to_the_full_index(farm, tmp_path, works):
    for i in range(5):  # more references so that every part gets some
        p = tmp_path / f"more_{i}.png"
        artwork(700 + i).save(p)
        runner.invoke(app, ["refs", "add", str(p)])
    for k in (1, 2, 3):
        r = runner.invoke(app, ["index", "build", "--shard", f"{k}/3", "--out", str(tmp_path / "parts")])
        assert r.exit_code == 0, r.output
    merged = runner.invoke(app, ["index", "merge", str(tmp_path / "parts")])
    assert merged.exit_code == 0, merged.output
    status = runner.invoke(app, ["index", "status"])
    assert "indexes are current" in status.output
    single = runner.invoke(app, ["scan", str(farm), "--out", str(tmp_path / "a")])
    assert single.exit_code == 1
    runner.invoke(app, ["index", "build", "--rebuild"])
    rebuilt = runner.invoke(app, ["scan", str(farm), "--out", str(tmp_path / "b")])
    assert _essence(_records(tmp_path / "a" / "results.jsonl")) == _essence(_records(tmp_path / "b" / "results.jsonl"))
    assert rebuilt.exit_code == 1


def test_index_merge_refuses_missing_parts(farm, tmp_path):
    runner.invoke(app, ["index", "build", "--shard", "1/2", "--out", str(tmp_path / "parts")])
    r = runner.invoke(app, ["index", "merge", str(tmp_path / "parts")])
    assert r.exit_code == 4 and "[2]" in r.output


# ----- an edited --out is never trusted; records keyed by path bytes (issue 15) ----------------------
def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records))


def test_records_are_signed_with_a_private_catalog_key(farm, tmp_path):
    runner.invoke(app, ["scan", str(farm), "--out", str(tmp_path / "out")])
    recs = _records(tmp_path / "out" / "results.jsonl")
    assert recs and all(r["signature"].startswith("hmac-sha256:") and r["asset_id"] for r in recs)
    key = tmp_path / "catalog.db.results-key"  # with the catalog, not in the report folder
    assert key.is_file() and (key.stat().st_mode & 0o777) == 0o600
    assert not any(p.name.endswith("results-key") for p in (tmp_path / "out").iterdir())


def test_edited_records_are_checked_again_on_resume(farm, tmp_path):
    out = tmp_path / "out"
    first = runner.invoke(app, ["scan", str(farm), "--out", str(out)])
    assert first.exit_code == 1
    recs = _records(out / "results.jsonl")
    blocks = [r for r in recs if r["verdict"] == "block"]
    assert blocks
    for r in blocks:  # what someone with write access to the report folder could do
        r["verdict"], r["findings"] = "pass", []
    unsigned = next(r for r in recs if r["verdict"] == "pass" and r not in blocks)
    del unsigned["signature"]
    _write(out / "results.jsonl", recs)
    again = runner.invoke(app, ["scan", str(farm), "--out", str(out)])
    assert f"{len(blocks) + 1} earlier records" in again.output and "do not verify" in again.output
    assert f"{len(recs) - len(blocks) - 1} earlier results" in again.output
    assert again.exit_code == 1
    final = {r["asset_id"]: r for r in _records(out / "results.jsonl")}
    assert all(final[r["asset_id"]]["verdict"] == "block" for r in blocks)


def test_merge_refuses_edited_or_foreign_shard_records(farm, tmp_path):
    for k in (1, 2):
        runner.invoke(app, ["scan", str(farm), "--out", str(tmp_path / "farm"), "--shard", f"{k}/2"])
    shard_files = sorted((tmp_path / "farm").glob("shard-*/results.jsonl"))
    edited = next(f for f in shard_files if any(r["verdict"] == "block" for r in _records(f)))
    recs = _records(edited)
    for r in recs:
        if r["verdict"] == "block":
            r["verdict"], r["findings"] = "pass", []
    _write(edited, recs)
    r = runner.invoke(app, ["merge", str(tmp_path / "farm")])
    assert r.exit_code not in (0, 1) and "refusing to merge" in r.output, r.output
    assert "does not match its signature" in r.output and not (tmp_path / "farm" / "results.jsonl").exists()

    # signed with another catalog's key: refused too
    other = tmp_path / "other"
    other.mkdir()
    (tmp_path / "catalog.db.results-key").rename(other / "key")
    for k in (1, 2):
        runner.invoke(app, ["scan", str(farm), "--out", str(tmp_path / "farm2"), "--shard", f"{k}/2"])
    (other / "key").replace(tmp_path / "catalog.db.results-key")
    r = runner.invoke(app, ["merge", str(tmp_path / "farm2")])
    assert r.exit_code not in (0, 1) and "another catalog's key" in r.output


def test_merge_keeps_assets_whose_names_display_the_same(farm, tmp_path, works):
    import os

    odd = tmp_path / "odd"
    odd.mkdir()
    raw = os.fsencode(odd) + b"/x_\xff.png"  # a raw 0xFF byte: displayed as x_\xff.png
    with open(raw, "wb") as fh:
        fh.write(works[0].read_bytes())  # a copy: block
    artwork(777).save(odd / "x_\\xff.png", "PNG")  # the four characters \xff literally: an original, pass
    for k in (1, 2):
        runner.invoke(app, ["scan", str(odd), "--out", str(tmp_path / "farm"), "--shard", f"{k}/2"])
    r = runner.invoke(app, ["merge", str(tmp_path / "farm")])
    merged = _records(tmp_path / "farm" / "results.jsonl")
    assert len(merged) == 2, merged
    assert {Path(m["path"]).name for m in merged} == {"x_\\xff.png"}  # the same on screen ...
    assert {m["asset_id"] for m in merged} == {"x_%FF.png", "x_\\xff.png"}  # ... but not the same asset
    assert sorted(m["verdict"] for m in merged) == ["block", "pass"] and r.exit_code == 1


def test_merge_refuses_a_shard_with_a_deleted_record_or_no_seal(farm, tmp_path):
    for k in (1, 2):
        runner.invoke(app, ["scan", str(farm), "--out", str(tmp_path / "farm"), "--shard", f"{k}/2"])
    shard_files = sorted((tmp_path / "farm").glob("shard-*/results.jsonl"))
    assert all((f.parent / "results.seal").is_file() for f in shard_files)
    cut = next(f for f in shard_files if any(r["verdict"] == "block" for r in _records(f)))
    recs = _records(cut)
    _write(cut, [r for r in recs if r["verdict"] != "block"])  # every record left verifies on its own
    r = runner.invoke(app, ["merge", str(tmp_path / "farm")])
    assert r.exit_code not in (0, 1) and "were removed, added or reordered" in r.output, r.output
    _write(cut, recs)
    assert runner.invoke(app, ["merge", str(tmp_path / "farm")]).exit_code == 1  # restored: merges
    (cut.parent / "results.seal").unlink()  # what a killed shard task leaves
    r = runner.invoke(app, ["merge", str(tmp_path / "farm")])
    assert r.exit_code not in (0, 1) and "did not finish" in r.output, r.output
