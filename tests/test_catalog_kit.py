"""The catalog contract kit over both backends: SQLite on local disk and a real PostgreSQL server.

The PostgreSQL half uses ``SCANNER_TEST_PG_URL`` when set (``.ci/run`` sets it), else starts a
throw-away cluster, and skips with the reason only when no server can be started here.
"""

from __future__ import annotations

import importlib.util
import uuid

import pytest

from scanner.catalog import Catalog
from scanner.testing.catalog_kit import CatalogKit, pg_base_url, pg_schema_url
from scanner.testing.pg_cluster import ClusterUnavailable


@pytest.fixture(scope="session")
def pg_url() -> str:
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("PostgreSQL half skipped: psycopg is not installed (pip install 'scanner[postgres]')")
    try:
        return pg_base_url()
    except ClusterUnavailable as exc:
        pytest.skip(f"PostgreSQL half skipped: no server could be started ({exc}); set SCANNER_TEST_PG_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def kit(request, tmp_path) -> CatalogKit:
    if request.param == "sqlite":
        target = tmp_path / "catalog.db"
    else:
        target = pg_schema_url(request.getfixturevalue("pg_url"), f"kit_{uuid.uuid4().hex[:12]}")
    return CatalogKit(lambda: Catalog(target))


@pytest.mark.parametrize("check", CatalogKit.CHECKS)
def test_catalog_contract(kit: CatalogKit, check: str) -> None:
    getattr(kit, f"check_{check}")()


# ----- PostgreSQL only ------------------------------------------------------------------------
@pytest.fixture
def pg_catalog_url(pg_url) -> str:
    return pg_schema_url(pg_url, f"t_{uuid.uuid4().hex[:12]}")


def _filled_sqlite(path) -> Catalog:
    from scanner.catalog import NewSample
    from scanner.testing.catalog_kit import sha, work

    cat = Catalog(path)
    for i in range(5):
        cat.add_work(work(f"w{i}", thumbnail=bytes([i]) * 10))
    cat.remove([cat.by_sha256(sha("w4")).id])  # id 5 is retired: the copy must not hand it out again
    t = cat.add_talent("Ada", samples=[NewSample("face", sha("f"), "/f.jpg", b"face")])
    g = cat.grant_consent(t.id, "face", "ep1", "2026-01-01", "", "doc-1")
    cat.revoke_consent(g.id, "legal")
    cat.create_key(["check"], "ci")
    for i in range(130):  # more than one page of audit rows (pages are made small by `small_pages`)
        cat.append_audit("cli:x", {"sha256": sha(str(i)), "verdict": "pass" if i % 3 else "block"})
    return cat


@pytest.fixture
def small_pages(monkeypatch):
    """Page and batch sizes of 50 rows, so a small catalog exercises the paging code."""
    import scanner.catalog.audit as audit
    import scanner.catalog.migrate as migrate

    monkeypatch.setattr(audit, "_PAGE", 50)
    monkeypatch.setattr(migrate, "_BATCH", 50)


def test_migrate_sqlite_to_postgres_copies_everything_and_verifies(tmp_path, pg_catalog_url, small_pages):
    from typer.testing import CliRunner

    from scanner.cli import app
    from scanner.testing.catalog_kit import work

    src = _filled_sqlite(tmp_path / "catalog.db")
    head = src.audit_head()
    works, consents, keys = src.works(), src.consents(), src.api_keys()
    src.close()
    r = CliRunner().invoke(app, ["catalog", "migrate", "--from", str(tmp_path / "catalog.db"), "--to", pg_catalog_url])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "4 works" in text and "130 audit" in text and f"head {head}" in text
    with Catalog(pg_catalog_url) as pg:
        assert pg.backend == "postgresql" and pg.works() == works and pg.consents() == consents
        assert pg.api_keys() == keys and pg.thumbnail(works[0].id) == bytes([0]) * 10
        assert pg.check_audit(head).ok and pg.audit_head() == head
        new, created = pg.add_work(work("after"))
        assert created and new.id == 6  # continues after the retired id 5
        assert pg.append_audit("cli:y", {"verdict": "pass"}) == head.id + 1
    again = CliRunner().invoke(app, ["catalog", "migrate", "--from", str(tmp_path / "catalog.db"),
                                     "--to", pg_catalog_url])
    assert again.exit_code != 0 and "not empty" in " ".join(again.output.split())


def test_migrate_refuses_a_broken_source_and_writes_nothing(tmp_path, pg_catalog_url, small_pages):
    import sqlite3

    from scanner.catalog.migrate import migrate
    from scanner.errors import CatalogError

    _filled_sqlite(tmp_path / "catalog.db").close()
    raw = sqlite3.connect(tmp_path / "catalog.db")
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("UPDATE audit SET verdict='pass' WHERE id=70")
    raw.commit()
    raw.close()
    with pytest.raises(CatalogError, match="broken at record #70"):
        migrate(tmp_path / "catalog.db", pg_catalog_url)
    with Catalog(pg_catalog_url) as pg:
        assert pg.count() == 0 and pg.audit_count() == 0


def test_audit_cli_on_a_postgres_catalog(pg_catalog_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from scanner.cli import app

    with Catalog(pg_catalog_url) as pg:
        for i in range(3):
            pg.append_audit("key:abc", {"sha256": None, "verdict": "pass", "i": i})
    monkeypatch.setenv("SCANNER_CATALOG", pg_catalog_url)
    runner = CliRunner()
    anchor = tmp_path / "anchor.json"
    assert runner.invoke(app, ["audit", "export", "--anchor", str(anchor)]).exit_code == 0
    r = runner.invoke(app, ["audit", "verify", "--anchor", str(anchor)])
    assert r.exit_code == 0 and r.stdout.strip() == "ok"
    info = runner.invoke(app, ["catalog", "info"])
    assert info.exit_code == 0 and "postgresql, schema version" in info.stdout and "3 records" in info.stdout


def test_truncate_is_refused_too(pg_catalog_url):
    from scanner.errors import CatalogError

    with Catalog(pg_catalog_url) as pg:
        pg.append_audit("kit", {"verdict": "pass"})
        for table in ("audit", "consent"):
            with pytest.raises(CatalogError, match="append-only"):
                with pg._tx() as tx:
                    tx.execute(f"TRUNCATE {table} CASCADE")
        assert pg.audit_count() == 1


def test_newer_postgres_schema_is_refused(pg_catalog_url):
    from scanner.errors import CatalogError

    with Catalog(pg_catalog_url) as pg:
        with pg._tx() as tx:
            tx.execute("INSERT INTO schema_version VALUES (99, 'later')")
    with pytest.raises(CatalogError, match="schema version 99, newer than this scanner"):
        Catalog(pg_catalog_url)


def test_missing_database_is_one_clear_config_error(pg_url):
    from scanner.errors import ConfigError

    url = pg_url.replace("postgresql:///postgres", "postgresql:///no_such_db", 1)
    if url == pg_url:
        pytest.skip("SCANNER_TEST_PG_URL has another shape")
    with pytest.raises(ConfigError, match="database 'no_such_db' does not exist"):
        Catalog(url)


def test_unknown_role_is_one_clear_config_error(pg_url):
    from scanner.errors import ConfigError

    url = pg_url.replace("user=postgres", "user=nobody_here", 1)
    if url == pg_url:
        pytest.skip("SCANNER_TEST_PG_URL has another shape")
    with pytest.raises(ConfigError, match="refused the login"):
        Catalog(url)


def test_lost_server_mid_run_is_a_catalog_error_and_keeps_nothing_half_written(tmp_path):
    """Stop the server under an open catalog: the next append fails with one clear error, and after
    a restart the chain holds exactly the appends that returned."""
    pytest.importorskip("psycopg")
    from scanner.catalog.postgres import PostgresCatalog
    from scanner.errors import CatalogError
    from scanner.testing.pg_cluster import PgCluster

    try:
        cluster = PgCluster().start()
    except ClusterUnavailable as exc:
        pytest.skip(f"PostgreSQL half skipped: {exc}")
    try:
        cat = PostgresCatalog(cluster.url, wait_timeout=3, connect_timeout=2)
        ids = [cat.append_audit("svc", {"verdict": "pass", "i": i}) for i in range(3)]
        cluster.stop(remove=False)
        with pytest.raises(CatalogError, match="PostgreSQL catalog"):
            cat.append_audit("svc", {"verdict": "pass", "i": 3})
        cat.close()
        cluster.start()
        with PostgresCatalog(cluster.url) as again:
            check = again.check_audit()
            assert ids == [1, 2, 3] and check.ok and check.records == 3
    finally:
        cluster.stop()


def _append_many(url: str, worker: int, n: int) -> None:
    with Catalog(url) as c:
        for i in range(n):
            c.append_audit(f"proc{worker}", {"sha256": f"{worker}-{i}", "verdict": "pass"})


def test_processes_appending_at_once_keep_one_chain(pg_catalog_url):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(pg_catalog_url, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 4
    with Catalog(pg_catalog_url) as pg:
        check = pg.check_audit()
        assert check.ok and check.records == 160
        assert len({e.sha256 for e in pg.audit_entries()}) == 160


def test_migrate_copies_one_consistent_snapshot_while_the_source_is_written(tmp_path, pg_catalog_url, small_pages):
    """A scan appending to the SQLite catalog during the copy neither tears it nor fails it."""
    from scanner.catalog.migrate import migrate

    src = _filled_sqlite(tmp_path / "catalog.db")
    head = src.audit_head()
    writer = Catalog(tmp_path / "catalog.db")

    def append_midway(table: str, n: int) -> None:  # after the works, before the audit rows are copied
        if table == "works":
            writer.append_audit("cli:late", {"verdict": "pass"})

    report = migrate(tmp_path / "catalog.db", pg_catalog_url, progress=append_midway)
    assert report.head == head and report.copied["audit"] == head.id
    assert writer.audit_count() == head.id + 1  # the late record is in the source, after the snapshot
    writer.close()
    src.close()
