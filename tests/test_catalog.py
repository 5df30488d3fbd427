"""The SQLite reference catalog."""

from __future__ import annotations

import hashlib

import pytest

from scanner.catalog import Catalog, NewWork
from scanner.errors import CatalogError
from scanner.types import Clearance, Reference


def _sha(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def _work(seed: str, sha: str | None = None, **kw) -> NewWork:
    base = dict(
        sha256=sha or _sha(seed), title=f"Work {seed}", rights_holder="Studio X",
        clearance=Clearance.UNCLEARED, media_type="image", path=f"/refs/{seed}.png",
        width=640, height=480,
    )
    base.update(kw)
    return NewWork(**base)


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "sub" / "catalog.db")
    yield c
    c.close()


def test_add_and_get(cat):
    ref, created = cat.add_work(_work("a"))
    assert created is True
    assert isinstance(ref, Reference)
    assert ref.id >= 1
    assert ref.sha256 == _sha("a")
    assert ref.title == "Work a"
    assert ref.rights_holder == "Studio X"
    assert ref.clearance is Clearance.UNCLEARED
    assert ref.media_type == "image"
    assert ref.path == "/refs/a.png"
    assert (ref.width, ref.height) == (640, 480)
    assert ref.added_at  # ISO timestamp
    assert cat.get(ref.id) == ref
    assert cat.by_sha256(ref.sha256) == ref
    assert cat.count() == 1


def test_catalog_creates_parent_folder(tmp_path):
    path = tmp_path / "deep" / "er" / "cat.db"
    c = Catalog(path)
    c.add_work(_work("x"))
    c.close()
    assert path.is_file()


def test_clearance_given_as_string_is_accepted(cat):
    ref, _ = cat.add_work(_work("lic", clearance="licensed"))
    assert ref.clearance is Clearance.LICENSED


def test_bad_clearance_rejected_and_nothing_written(cat):
    with pytest.raises(ValueError):
        cat.add_work(_work("bad", clearance="stolen"))
    assert cat.count() == 0


def test_readd_same_sha_is_idempotent(cat):
    ref, created = cat.add_work(_work("a"))
    again, created2 = cat.add_work(_work("a", title="A different title"))
    assert created2 is False
    assert again == ref
    assert again.title == "Work a"  # the first registration wins
    assert cat.count() == 1


def test_get_unknown(cat):
    assert cat.get(12345) is None
    assert cat.by_sha256("0" * 64) is None


def test_find_by_id_full_sha_and_prefix(cat):
    a, _ = cat.add_work(_work("a"))
    b, _ = cat.add_work(_work("b"))
    assert cat.find(str(a.id)) == a
    assert cat.find(str(b.id)) == b
    assert cat.find(a.sha256) == a
    assert cat.find(b.sha256[:6]) == b
    assert cat.find(b.sha256[:10].upper()) == b


def test_find_ambiguous_prefix(cat):
    cat.add_work(_work("one", sha="abcdef01" + "0" * 56))
    cat.add_work(_work("two", sha="abcdef02" + "0" * 56))
    with pytest.raises(CatalogError, match="matches 2"):
        cat.find("abcdef")
    assert cat.find("abcdef01").title == "Work one"


def test_find_short_or_unknown_key(cat):
    a, _ = cat.add_work(_work("a"))
    with pytest.raises(CatalogError, match="no reference"):
        cat.find(a.sha256[:5])  # too short to be a prefix
    with pytest.raises(CatalogError, match="no reference"):
        cat.find("999")
    with pytest.raises(CatalogError, match="no reference"):
        cat.find("f" * 64 if not a.sha256.startswith("f") else "e" * 64)


def test_find_digit_prefix_falls_back_to_sha(cat):
    ref, _ = cat.add_work(_work("digits", sha="123456" + "a" * 58))
    assert cat.find("123456") == ref  # no work with id 123456, so it is a sha prefix


@pytest.mark.parametrize("key", ["______", "abc%%%"])
def test_find_treats_prefix_literally_not_as_like_pattern(cat, key):
    """`refs remove ______` must not pick an arbitrary work: '_' and '%' are not hex digits."""
    cat.add_work(_work("only", sha="abcdef" + "1" * 58))
    with pytest.raises(CatalogError):
        cat.find(key)


def test_works_listing_and_filter(cat):
    a, _ = cat.add_work(_work("a"))
    s, _ = cat.add_work(_work("s", media_type="audio"))
    b, _ = cat.add_work(_work("b"))
    assert [r.id for r in cat.works()] == [a.id, s.id, b.id]
    assert [r.id for r in cat.works("image")] == [a.id, b.id]
    assert [r.id for r in cat.works("audio")] == [s.id]
    assert cat.works("video") == []


def test_remove(cat):
    a, _ = cat.add_work(_work("a"))
    b, _ = cat.add_work(_work("b"))
    assert cat.remove([a.id, 999]) == 1
    assert cat.get(a.id) is None
    assert cat.by_sha256(a.sha256) is None
    assert cat.get(b.id) == b
    assert cat.count() == 1
    assert cat.remove([a.id]) == 0
    assert cat.remove([]) == 0
    with pytest.raises(CatalogError):
        cat.find(a.sha256)


def test_ids_never_reused_after_remove(tmp_path):
    path = tmp_path / "cat.db"
    c = Catalog(path)
    ids = [c.add_work(_work(str(i)))[0].id for i in range(3)]
    c.remove(ids)
    assert c.count() == 0
    new, _ = c.add_work(_work("new"))
    assert new.id > max(ids)
    c.remove([new.id])
    c.close()
    # also after reopening an emptied catalog
    c = Catalog(path)
    newer, _ = c.add_work(_work("newer"))
    assert newer.id > new.id
    # re-adding a removed work gives it a fresh id, not its old one
    back, created = c.add_work(_work("0"))
    assert created and back.id > newer.id and back.id != ids[0]
    c.close()


def test_thumbnails(cat):
    thumb = b"\xff\xd8\xff" + bytes(range(256)) * 4
    a, _ = cat.add_work(_work("a", thumbnail=thumb))
    b, _ = cat.add_work(_work("b"))
    assert cat.thumbnail(a.id) == thumb
    assert cat.thumbnail(b.id) is None
    assert cat.thumbnail(4242) is None


def test_persistence_across_reopen(tmp_path):
    path = tmp_path / "cat.db"
    c = Catalog(path)
    a, _ = c.add_work(_work("a", thumbnail=b"thumb", clearance=Clearance.OWNED))
    b, _ = c.add_work(_work("b"))
    c.remove([b.id])
    c.close()
    c2 = Catalog(path)
    assert c2.count() == 1
    assert c2.get(a.id) == a
    assert c2.get(a.id).clearance is Clearance.OWNED
    assert c2.thumbnail(a.id) == b"thumb"
    assert c2.get(b.id) is None
    _, created = c2.add_work(_work("a"))
    assert created is False
    c2.close()


def test_two_connections_see_each_others_writes(tmp_path):
    path = tmp_path / "cat.db"
    c1, c2 = Catalog(path), Catalog(path)
    ref, _ = c1.add_work(_work("a"))
    assert c2.get(ref.id) == ref
    c1.close()
    c2.close()


def test_not_a_database_is_catalog_error(tmp_path):
    path = tmp_path / "catalog.db"
    path.write_bytes(b"this is definitely not sqlite" * 100)
    with pytest.raises(CatalogError, match="cannot open catalog"):
        Catalog(path)


def test_in_memory_catalog():
    c = Catalog(":memory:")
    ref, _ = c.add_work(_work("m"))
    assert c.get(ref.id) == ref
    c.close()


# ----- issue 15 item 4: concurrent adds of the same file ---------------------------------------
def test_add_that_loses_the_race_reports_present_instead_of_crashing(cat, monkeypatch):
    """Another writer inserts the same sha256 between our lookup and our insert: no IntegrityError."""
    other = Catalog(cat.path)
    real = type(cat).by_sha256
    calls = []

    def racing(self, sha256):
        if not calls:  # the first lookup misses, then the other process wins the insert
            calls.append(1)
            other.add_work(_work("race"))
            return None
        return real(self, sha256)

    monkeypatch.setattr(type(cat), "by_sha256", racing)
    ref, created = cat.add_work(_work("race", title="loser"))
    assert created is False and ref.title == "Work race" and cat.count() == 1
    other.close()


def test_two_processes_adding_overlapping_files_register_every_file(tmp_path):
    """Two `scanner refs add` runs over overlapping sets: both finish, every file is registered once."""
    import os
    import re
    import subprocess
    import sys

    from scanner.testing.fixtures import artwork

    files = []
    for i in range(30):
        p = tmp_path / "refs" / f"w{i:02d}.png"
        p.parent.mkdir(exist_ok=True)
        artwork(100 + i).resize((64, 48)).save(p)
        files.append(str(p))
    env = {**os.environ, "SCANNER_CATALOG": str(tmp_path / "catalog.db"), "SCANNER_DETECTORS": "image.pdq"}
    cmd = [sys.executable, "-c", "from scanner.cli import main; main()", "refs", "add"]
    procs = [subprocess.Popen(cmd + part, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for part in (files[:20], files[10:])]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (so, se) in zip(procs, outputs):
        assert p.returncode == 0, se
        assert "Traceback" not in se and "0 failed" in se
    counts = [re.search(r"(\d+) added, (\d+) already present", " ".join(se.split())) for _, se in outputs]
    assert all(counts), outputs
    assert sum(int(m.group(1)) for m in counts) == 30 and sum(int(m.group(2)) for m in counts) == 10
    c = Catalog(tmp_path / "catalog.db")
    assert sorted(w.path for w in c.works()) == sorted(files)
    c.close()


# ----- issue 15 item 11: the catalog file is private -------------------------------------------
def test_catalog_and_wal_files_are_created_0600(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        c = Catalog(tmp_path / "catalog.db")
        c.add_work(_work("p"))  # the write creates -wal and -shm
        modes = {s: stat.S_IMODE(os.stat(tmp_path / f"catalog.db{s}").st_mode) for s in ("", "-wal", "-shm")}
        c.close()
    finally:
        os.umask(old)
    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}


def test_existing_world_readable_catalog_is_made_private(tmp_path):
    import os
    import stat

    path = tmp_path / "catalog.db"
    Catalog(path).close()
    os.chmod(path, 0o644)
    Catalog(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


# ----- issue 18: network filesystems, schema versions, URLs ------------------------------------
@pytest.fixture
def mounts(tmp_path, monkeypatch):
    """A fake mount table: / is local, tmp_path/share is NFS, tmp_path/share/scratch a local disk again."""
    import scanner.catalog.sqlite as sq

    share = tmp_path / "share"
    (share / "scratch").mkdir(parents=True)
    table = tmp_path / "mounts"
    table.write_text(f"/dev/sda1 / ext4 rw 0 0\nnas:/vol {share} nfs4 rw,vers=4.2 0 0\n"
                     f"/dev/sdb1 {share}/scratch xfs rw 0 0\n")
    monkeypatch.setattr(sq, "MOUNTS", table)
    return share


def test_sqlite_catalog_on_nfs_is_refused_with_the_fix(mounts):
    from scanner.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        Catalog(mounts / "catalog.db")
    msg = str(err.value)
    assert "network filesystem (nfs4" in msg and "postgresql://" in msg and "scanner catalog migrate" in msg
    assert not (mounts / "catalog.db").exists()  # nothing created on the share


def test_network_check_can_be_overridden_for_one_writer(mounts, monkeypatch):
    monkeypatch.setenv("SCANNER_ALLOW_NETWORK_SQLITE", "1")
    Catalog(mounts / "catalog.db").close()


def test_migrate_reads_a_catalog_off_a_share(mounts):
    from scanner.catalog.sqlite import SQLiteCatalog

    SQLiteCatalog(mounts / "catalog.db", allow_network=True).close()  # what `catalog migrate --from` does


def test_postgres_url_without_the_driver_says_what_to_install(monkeypatch):
    import sys

    from scanner.errors import ConfigError

    monkeypatch.setitem(sys.modules, "psycopg", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'scanner\[postgres\]'"):
        Catalog("postgresql://u@h/db")


def test_local_disk_mounted_inside_a_share_is_fine(mounts):
    Catalog(mounts / "scratch" / "catalog.db").close()


def test_mount_points_with_spaces_are_read(tmp_path, monkeypatch):
    import scanner.catalog.sqlite as sq

    share = tmp_path / "my share"
    share.mkdir()
    table = tmp_path / "mounts"
    table.write_text(f"/dev/sda1 / ext4 rw 0 0\n//srv/x {str(share).replace(' ', chr(92) + '040')} cifs rw 0 0\n")
    assert sq.network_mount(share / "catalog.db", table) == ("cifs", str(share))
    monkeypatch.setattr(sq, "MOUNTS", tmp_path / "absent")
    assert sq.network_mount(share) is None  # no mount table: no check


def _v1_catalog(path) -> None:
    """A catalog as scanner wrote it before schema versions (user_version 0, no audit prev_hash index)."""
    import sqlite3

    from scanner.catalog.audit import SCHEMA as AUDIT
    from scanner.catalog.keys import SCHEMA as KEYS
    from scanner.catalog.sqlite import SCHEMA as WORKS
    from scanner.catalog.talent import SCHEMA as TALENT

    raw = sqlite3.connect(path)
    raw.executescript(WORKS + TALENT + AUDIT + KEYS)
    raw.execute("INSERT INTO works (sha256, title, rights_holder, clearance, media_type, path, added_at)"
                " VALUES (?, 'old', 'x', 'uncleared', 'image', '/old.png', '2025-01-01')", (_sha("old"),))
    raw.commit()
    raw.close()


def test_catalog_from_before_versioning_is_migrated(tmp_path):
    import sqlite3

    from scanner.catalog import SCHEMA_VERSION

    path = tmp_path / "old.db"
    _v1_catalog(path)
    c = Catalog(path)
    assert c.schema_version() == SCHEMA_VERSION and c.by_sha256(_sha("old")).title == "old"
    c.close()
    indexes = sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='index'").fetchall()
    assert ("audit_prev_hash",) in indexes


def test_catalog_from_a_newer_scanner_is_refused(tmp_path):
    import sqlite3

    path = tmp_path / "new.db"
    Catalog(path).close()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version=99")
    raw.close()
    with pytest.raises(CatalogError, match="schema version 99, newer than this scanner"):
        Catalog(path)


def test_catalog_setting_keeps_a_url_as_a_string(tmp_path, monkeypatch):
    from scanner.config import load_settings
    from scanner.errors import ConfigError

    url = "postgresql://farm:pw@db.studio:5432/scanner"
    assert load_settings(catalog=url).catalog == url
    cfg = tmp_path / "scanner.toml"
    cfg.write_text(f'catalog = "{url}"\n')
    assert load_settings(cfg).catalog == url  # not joined onto the config file's folder
    monkeypatch.setenv("SCANNER_CATALOG", url)
    assert load_settings().catalog == url
    with pytest.raises(ConfigError, match="scheme 'mysql' is not supported"):
        load_settings(catalog="mysql://x/y")


@pytest.mark.parametrize("url, expect", [
    ("postgresql://scanner:secret@127.0.0.1:1/scanner", "cannot reach the PostgreSQL catalog"),
    ("postgresql://scanner:secret@[::1/scanner", "not a valid PostgreSQL URL"),
])
def test_unusable_postgres_url_is_one_clear_line(url, expect, monkeypatch):
    from typer.testing import CliRunner

    from scanner.cli import app
    from scanner.errors import ConfigError

    pytest.importorskip("psycopg")
    r = CliRunner().invoke(app, ["--catalog", url, "catalog", "info"])
    assert r.exit_code == ConfigError.exit_code, r.output
    text = " ".join(r.output.split())  # rich wraps long lines
    assert expect in text and "Traceback" not in text and "secret" not in text


def test_opening_while_another_process_creates_the_catalog_waits_for_it(tmp_path, monkeypatch):
    """The switch to WAL can answer 'database is locked' at once while another process creates the file:
    opening tries again instead of failing the command."""
    import sqlite3

    from scanner.catalog import sqlite as mod

    real = sqlite3.connect
    tries = []

    class Busy:
        def __init__(self, db):
            self.db = db

        def execute(self, sql, *args):
            if sql.startswith("PRAGMA journal_mode") and len(tries) < 3:
                tries.append(sql)
                raise sqlite3.OperationalError("database is locked")
            return self.db.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.db, name)

    monkeypatch.setattr(mod.sqlite3, "connect", lambda *a, **k: Busy(real(*a, **k)))
    cat = mod.SQLiteCatalog(tmp_path / "catalog.db")
    assert len(tries) == 3 and cat.count() == 0
    cat.close()
    monkeypatch.setattr(mod, "OPEN_TIMEOUT_S", 0.0)  # past the deadline: one clear error, no traceback
    tries.clear()
    with pytest.raises(CatalogError, match="cannot open catalog .*locked"):
        mod.SQLiteCatalog(tmp_path / "other.db")
