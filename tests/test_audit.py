"""The audit trail: every check recorded, tampering detected, and the `scanner audit` CLI."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3

import pytest
from typer.testing import CliRunner

from scanner.api import Scanner
from scanner.catalog import Catalog
from scanner.cli import app
from scanner.config import Settings
from scanner.errors import CatalogError
from scanner.testing.fixtures import artwork

runner = CliRunner()


@pytest.fixture(scope="module")
def _trail_template(tmp_path_factory):
    """A catalog with works and four audited checks, made once per module."""
    root = tmp_path_factory.mktemp("trail")
    settings = Settings(catalog=root / "catalog.db", index_dir=root / "indexes", model_cache=root / "models",
                        detectors=("image.pdq",))
    for seed in (1, 2):
        artwork(seed).save(root / f"work_{seed}.jpg", quality=92)
    deliv = root / "deliv"
    deliv.mkdir()
    artwork(1).resize((400, 267)).save(deliv / "copy.jpg", quality=60)
    artwork(2).save(deliv / "copy2.png")
    artwork(501).save(deliv / "original_a.jpg")
    artwork(502).save(deliv / "original_b.jpg")
    s = Scanner(settings, caller="cli:tester")
    s.add_reference([root / "work_1.jpg", root / "work_2.jpg"], rights_holder="Studio X")
    s.build_index()
    assert len(list(s.scan([deliv]))) == 4
    s.catalog.close()
    return root / "catalog.db"


@pytest.fixture
def trail(_trail_template, tmp_path):
    """A private copy of the template catalog (tests tamper with it)."""
    shutil.copy(_trail_template, tmp_path / "catalog.db")
    return Settings(catalog=tmp_path / "catalog.db", index_dir=tmp_path / "indexes", detectors=("image.pdq",))


@pytest.fixture
def cli(trail, monkeypatch):
    monkeypatch.setenv("SCANNER_CATALOG", str(trail.catalog))
    monkeypatch.setenv("SCANNER_DETECTORS", "image.pdq")
    monkeypatch.setenv("COLUMNS", "250")

    def run(*args):
        return runner.invoke(app, [str(a) for a in args])

    return run


def tamper(db_path, sql: str, *args) -> None:
    """Edit the trail the way an attacker with file access would: drop the guards, change rows."""
    raw = sqlite3.connect(db_path)
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("DROP TRIGGER audit_no_delete")
    raw.execute(sql, args)
    raw.commit()
    raw.close()


def test_every_check_is_recorded_with_its_context(trail):
    cat = Catalog(trail.catalog)
    entries = list(cat.audit_entries())
    assert [e.id for e in entries] == [1, 2, 3, 4]
    assert {e.caller for e in entries} == {"cli:tester"}
    rec = entries[0].record
    assert rec["weights"] == {"image.pdq": "none"} and rec["calibration"] and rec["stage"] == "final"
    assert "project" in rec and rec["indexes"]["image.pdq"]
    assert cat.verify_audit() == (4, None)
    assert cat.audit_entry(2).id == 2 and cat.audit_entry(99) is None


def test_triggers_refuse_edits_through_sqlite(trail):
    raw = sqlite3.connect(trail.catalog)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("UPDATE audit SET verdict='pass' WHERE id=1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("DELETE FROM audit WHERE id=1")
    raw.close()


def test_edited_record_is_detected(trail, cli):
    cat = Catalog(trail.catalog)
    victim = next(e for e in cat.audit_entries() if e.verdict == "block")
    cat.close()
    row = sqlite3.connect(trail.catalog).execute("SELECT record FROM audit WHERE id=?", (victim.id,)).fetchone()[0]
    forged = row.replace('"verdict":"block"', '"verdict":"pass"')
    assert forged != row
    tamper(trail.catalog, "UPDATE audit SET record=?, verdict='pass' WHERE id=?", forged, victim.id)
    assert Catalog(trail.catalog).verify_audit()[1] == victim.id
    r = cli("audit", "verify")
    assert r.exit_code == 1 and f"broken {victim.id}" in r.stdout and f"#{victim.id}" in r.output


def test_deleted_record_is_detected(trail, cli):
    tamper(trail.catalog, "DELETE FROM audit WHERE id=2")
    assert Catalog(trail.catalog).verify_audit()[1] == 3
    assert cli("audit", "verify").exit_code == 1


def test_rehashed_record_breaks_the_next_link(trail):
    """Recomputing one record's own hash is not enough: its successor still points at the old one."""
    from scanner.catalog.audit import chain_hash

    raw = sqlite3.connect(trail.catalog)
    rec, prev = raw.execute("SELECT record, prev_hash FROM audit WHERE id=2").fetchone()
    raw.close()
    forged = rec.replace('"final"', '"ideation"')
    tamper(trail.catalog, "UPDATE audit SET record=?, hash=? WHERE id=2", forged, chain_hash(prev, forged))
    assert Catalog(trail.catalog).verify_audit()[1] == 3


def test_edited_verdict_column_is_detected(trail):
    tamper(trail.catalog, "UPDATE audit SET verdict='pass' WHERE verdict='block'")
    assert Catalog(trail.catalog).verify_audit()[1] is not None


def test_cli_reads_verdicts_from_the_hashed_record(trail, cli):
    tamper(trail.catalog, "UPDATE audit SET verdict='pass'")
    listed = cli("audit", "list")
    assert "block" in listed.stdout  # the hashed record still says block


def test_cli_verify_intact(cli):
    r = cli("audit", "verify")
    assert r.exit_code == 0 and r.stdout.strip() == "ok" and "4 records" in r.output


def test_cli_list_show_export(cli, tmp_path):
    listed = cli("audit", "list", "--limit", "2")
    assert listed.exit_code == 0, listed.output
    assert "cli:tester" in listed.stdout and "│ 4 " in listed.stdout and "│ 1 " not in listed.stdout
    since = cli("audit", "list", "--since", "1", "--limit", "1")
    assert "│ 2 " in since.stdout and "│ 3 " not in since.stdout
    shown = cli("audit", "show", "3")
    entry = json.loads(shown.stdout)
    assert entry["id"] == 3 and entry["record"]["models"] == {"image.pdq": "pdq"} and len(entry["hash"]) == 64
    assert cli("audit", "show", "42").exit_code == CatalogError.exit_code
    jsonl = cli("audit", "export", "--format", "jsonl")
    lines = [json.loads(x) for x in jsonl.stdout.splitlines()]
    assert [x["id"] for x in lines] == [1, 2, 3, 4] and lines[1]["prev_hash"] == lines[0]["hash"]
    out = tmp_path / "audit.csv"
    r = cli("audit", "export", "--format", "csv", "--out", out)
    assert r.exit_code == 0 and "4 audit records" in r.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4"]
    assert {r["verdict"] for r in rows} == {"block", "pass"} and rows[0]["caller"] == "cli:tester"
    flagged = next(r for r in rows if r["verdict"] == "block")
    assert flagged["top_detector"] == "image.pdq" and flagged["findings"] == "1"


def test_cli_on_missing_catalog_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SCANNER_CATALOG", str(tmp_path / "none.db"))
    r = runner.invoke(app, ["audit", "verify"])
    assert r.exit_code == CatalogError.exit_code and "no catalog" in r.output and not (tmp_path / "none.db").exists()


# ----- issue 15 item 6: a truncated tail ---------------------------------------------------------
def test_cut_tail_passes_the_chain_but_fails_against_the_anchor(trail, cli, tmp_path):
    anchor = tmp_path / "anchor.json"
    r = cli("audit", "export", "--out", tmp_path / "trail.jsonl", "--anchor", anchor)
    assert r.exit_code == 0 and json.loads(anchor.read_text())["id"] == 4 and "audit head 4:" in r.output
    tamper(trail.catalog, "DELETE FROM audit WHERE id >= 3")
    assert Catalog(trail.catalog).verify_audit() == (2, None)  # what is left is a consistent chain
    r = cli("audit", "verify", "--anchor", anchor)
    assert r.exit_code == 1 and "broken 3" in r.stdout and "removed from the end" in " ".join(r.output.split())
    head = json.loads(anchor.read_text())
    assert cli("audit", "verify", "--expect-head", f"{head['id']}:{head['hash']}").exit_code == 1


def test_cut_tail_then_new_appends_fails_against_the_anchor(trail, cli, tmp_path):
    anchor = tmp_path / "anchor.json"
    cli("audit", "export", "--anchor", anchor)
    tamper(trail.catalog, "DELETE FROM audit WHERE id >= 3")
    cat = Catalog(trail.catalog)
    for i in range(3):  # the trail grows past the anchor's id again, with other records
        cat.append_audit("cli:intruder", {"sha256": None, "verdict": "pass", "i": i})
    cat.close()
    r = cli("audit", "verify", "--anchor", anchor)
    assert r.exit_code == 1 and "broken 4" in r.stdout and "differs from the recorded head anchor" in r.output


def test_everything_deleted_fails_against_the_anchor(trail, cli, tmp_path):
    anchor = tmp_path / "anchor.json"
    cli("audit", "export", "--anchor", anchor)
    tamper(trail.catalog, "DELETE FROM audit")
    assert cli("audit", "verify").exit_code == 0  # an empty trail is consistent on its own
    assert cli("audit", "verify", "--anchor", anchor).exit_code == 1


def test_anchor_still_verifies_after_honest_appends(trail, cli, tmp_path):
    anchor = tmp_path / "anchor.json"
    cli("audit", "export", "--anchor", anchor)
    cat = Catalog(trail.catalog)
    cat.append_audit("cli:tester", {"sha256": None, "verdict": "pass"})
    cat.close()
    r = cli("audit", "verify", "--anchor", anchor)
    assert r.exit_code == 0 and r.stdout.strip() == "ok" and "5 records" in r.output


def test_removed_row_with_the_rest_rehashed_shows_as_an_id_gap(trail):
    """An attacker who deletes #2 and recomputes every later hash leaves a valid chain: only the id gap shows."""
    from scanner.catalog.audit import chain_hash

    raw = sqlite3.connect(trail.catalog)
    rows = raw.execute("SELECT id, record, hash FROM audit ORDER BY id").fetchall()
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("DROP TRIGGER audit_no_delete")
    raw.execute("DELETE FROM audit WHERE id=2")
    prev = rows[0][2]
    for rid, record, _ in rows[2:]:
        digest = chain_hash(prev, record)
        raw.execute("UPDATE audit SET prev_hash=?, hash=? WHERE id=?", (prev, digest, rid))
        prev = digest
    raw.commit()
    raw.close()
    check = Catalog(trail.catalog).check_audit()
    assert check.broken == 3 and "record #2 is missing" in check.reason


def test_malformed_anchor_is_a_clear_error(cli, tmp_path):
    from scanner.errors import ConfigError

    r = cli("audit", "verify", "--expect-head", "4:nothex")
    assert r.exit_code == ConfigError.exit_code and "ID:SHA256" in r.output
    r = cli("audit", "verify", "--anchor", tmp_path / "missing.json")
    assert r.exit_code == ConfigError.exit_code and "cannot read audit anchor" in r.output
