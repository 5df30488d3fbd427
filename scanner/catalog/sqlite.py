"""The embedded SQLite catalog, for one machine. Every write is one ``BEGIN IMMEDIATE``
transaction; ids are never reused, so an index entry can never point at a different work
after a remove.

The file (and its ``-wal``/``-shm`` companions, which SQLite creates with the file's mode) is
private to its owner: it holds API-key hashes and the audit trail. A catalog on a network
filesystem is refused: WAL needs shared memory that NFS/SMB clients on different hosts do not
share, and their file locks are unreliable, so several nodes writing one file can lose audit
records or corrupt it. A farm shares a PostgreSQL catalog instead.
"""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from scanner.catalog.audit import SCHEMA as AUDIT_SCHEMA
from scanner.catalog.base import SCHEMA_VERSION, Catalog, NewWork
from scanner.catalog.keys import SCHEMA as KEYS_SCHEMA
from scanner.catalog.talent import SCHEMA as TALENT_SCHEMA
from scanner.errors import CatalogError, ConfigError
from scanner.catalog.schema import table_ddl

__all__ = ["SQLiteCatalog", "Catalog", "NewWork", "network_mount"]

SCHEMA = table_ddl("sqlite", ("works", "meta"))

# Steps from version N to N+1, applied in one transaction when an older catalog is opened.
MIGRATIONS: dict[int, str] = {
    1: "CREATE UNIQUE INDEX IF NOT EXISTS audit_prev_hash ON audit(prev_hash);",
}

MOUNTS = Path("/proc/mounts")  # the mount table (tests point this at a fake one)
ALLOW_ENV = "SCANNER_ALLOW_NETWORK_SQLITE"  # "1": skip the check (one writer at a time, at your own risk)
NETWORK_FS = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb3", "smbfs", "ncpfs", "afs", "sshfs", "fuse.sshfs", "davfs",
    "fuse.davfs2", "glusterfs", "fuse.glusterfs", "ceph", "fuse.ceph", "fuse.ceph-fuse", "lustre", "gpfs",
    "beegfs", "fuse.s3fs", "fuse.rclone", "fuse.gcsfuse", "fuse.juicefs", "fuse.mfs", "ocfs2", "gfs2",
})


def _unescape(field: str) -> str:
    """Mount points in /proc/mounts write space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def network_mount(path: Path, mounts: Path | None = None) -> tuple[str, str] | None:
    """(fstype, mount point) when ``path`` lies on a network filesystem, else None.

    The longest mount point containing the path decides (a local disk mounted under an NFS tree
    is local). No readable mount table (not Linux) means no check."""
    try:
        lines = Path(mounts or MOUNTS).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best: tuple[str, str] | None = None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point, fstype = _unescape(parts[1]), parts[2].lower()
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) > len(best[1])):
            best = (fstype, point)
    if best and (best[0] in NETWORK_FS or best[0].startswith(("nfs", "fuse.sshfs"))):
        return best
    return None


def _statements(script: str) -> Iterator[str]:
    """The statements of a schema script (triggers contain ``;``, so split where SQLite says one ends)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf.strip()
            buf = ""
    if buf.strip():
        yield buf.strip()


def _make_private(path: Path) -> None:
    """Create ``path`` as 0600 if absent; take group/other access away from it and its WAL files."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(p.stat().st_mode)
            if mode & 0o077:
                os.chmod(p, mode & 0o700)
        except FileNotFoundError:
            continue
        except PermissionError:  # someone else's file: SQLite will say whether it can be used
            continue


class _SQLiteTx:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        return self._db.execute(sql, tuple(args)).fetchone()

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        return self._db.execute(sql, tuple(args)).fetchall()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, tuple(args)).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)


OPEN_TIMEOUT_S = 30.0  # how long opening waits for another process creating or migrating the catalog


class SQLiteCatalog(Catalog):
    """The catalog in one SQLite file (WAL mode), for one machine."""

    backend = "sqlite"

    def __init__(self, path: Path | str, *, allow_network: bool = False):
        """Open or create the catalog at ``path`` (``":memory:"`` for a throw-away one).

        ``allow_network`` (or ``SCANNER_ALLOW_NETWORK_SQLITE=1``) skips the network-filesystem
        refusal: for a single reader such as ``scanner catalog migrate`` copying the file off the
        share, or a filesystem wrongly taken for a network one. Never for concurrent writers."""
        self.path = Path(path)
        self.target = self.path
        self._lock = threading.RLock()  # one connection shared by threads: keep each transaction whole
        memory = str(self.path) == ":memory:"
        if not memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            allow_network = allow_network or os.environ.get(ALLOW_ENV, "") == "1"
            found = None if allow_network else network_mount(self.path.parent)
            if found:
                raise ConfigError(
                    f"catalog {self.path} is on a network filesystem ({found[0]} mounted at {found[1]}): SQLite's "
                    "WAL mode does not work over network storage and concurrent writers there can lose audit "
                    "records or corrupt the catalog. Keep the SQLite catalog on a local disk, or share one "
                    "PostgreSQL catalog between nodes (--catalog postgresql://user@host/dbname; copy this one with "
                    f"`scanner catalog migrate --from {self.path} --to postgresql://...`)")
            _make_private(self.path)
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while True:
            db = None
            try:
                self._db = db = sqlite3.connect(str(self.path), timeout=OPEN_TIMEOUT_S, check_same_thread=False,
                                                isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._migrate()
                break
            except sqlite3.OperationalError as exc:
                # Two processes creating one catalog: the switch to WAL can report "locked" at once instead of
                # waiting for the busy timeout. Open again until the other one is done.
                if db is not None:
                    db.close()
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise CatalogError(f"cannot open catalog {self.path}: {exc}") from None
                time.sleep(random.uniform(0.02, 0.2))
            except sqlite3.DatabaseError as exc:
                raise CatalogError(f"cannot open catalog {self.path}: {exc}") from None
        if not memory:
            _make_private(self.path)  # -wal and -shm exist now

    def _migrate(self) -> None:
        """Create the schema, bring an older catalog up to ``SCHEMA_VERSION``, refuse a newer one."""
        if self._version() == SCHEMA_VERSION:
            return
        self._db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait and then see it done
        try:
            version = self._version()
            if version > SCHEMA_VERSION:
                raise CatalogError(
                    f"catalog {self.path} has schema version {version}, newer than this scanner knows "
                    f"({SCHEMA_VERSION}): upgrade scanner, or open a copy made by this version")
            if version < SCHEMA_VERSION:
                # The base script is version 1 (what catalogs made before versioning hold); IF NOT EXISTS
                # lets it fill in whatever an old catalog lacks, then each step moves one version up.
                for stmt in _statements(SCHEMA + TALENT_SCHEMA + AUDIT_SCHEMA + KEYS_SCHEMA):
                    self._db.execute(stmt)
                for step in range(max(version, 1), SCHEMA_VERSION):
                    for stmt in _statements(MIGRATIONS[step]):
                        self._db.execute(stmt)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            self._db.execute("ROLLBACK")
            raise CatalogError(f"cannot upgrade catalog {self.path} to schema version {SCHEMA_VERSION}: {exc} "
                               "(run `scanner audit verify` on it)") from None
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def schema_version(self) -> int:
        with self._lock:
            return self._version()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as exc:
            raise CatalogError(f"the catalog refused the change: {exc}") from None
        except sqlite3.OperationalError as exc:
            raise CatalogError(f"catalog {self.path}: {exc}") from None

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        with self._lock, self._guard():
            return self._db.execute(sql, tuple(args)).fetchone()

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock, self._guard():
            return self._db.execute(sql, tuple(args)).fetchall()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees one consistent state, even while other processes write (WAL)."""
        with self._lock, self._guard():
            self._db.execute("BEGIN DEFERRED")
            try:
                self._db.execute("SELECT COUNT(*) FROM works").fetchone()  # the first read fixes the snapshot
                yield
            finally:
                self._db.execute("ROLLBACK")

    @contextmanager
    def _tx(self, lock: str | None = None) -> Iterator[_SQLiteTx]:
        # BEGIN IMMEDIATE takes the database's one write lock up front: that is the "audit" lock too,
        # and no transaction ever has to upgrade a read lock (which can fail with SQLITE_BUSY).
        with self._lock, self._guard():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTx(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
