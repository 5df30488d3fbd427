"""The PostgreSQL catalog: one catalog a whole render farm and several service workers share.

Same interface and guarantees as the SQLite catalog, enforced by the server: consent and audit
rows are append-only (triggers refuse UPDATE, DELETE and TRUNCATE), ``works.sha256`` is unique
and concurrent adds of the same file are one ``INSERT ... ON CONFLICT DO NOTHING``, and every
audit append holds one transaction-scoped advisory lock while it reads the head and inserts the
next record, so writers on many nodes extend one linear chain (``prev_hash`` is unique as a
second line of defence: a fork cannot be stored). Connections come from a pool (psycopg 3).

The schema is versioned in ``schema_version``; opening an older catalog migrates it under the
same advisory lock, a newer one is refused.
"""

from __future__ import annotations

import re
import weakref
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Iterator, Sequence

from scanner.catalog.audit import audit_canonical
from scanner.catalog.base import SCHEMA_VERSION, Catalog
from scanner.catalog.schema import table_ddl
from scanner.catalog.url import redact
from scanner.errors import CatalogError, ConfigError

SCHEMA = table_ddl("postgres") + r"""
CREATE UNIQUE INDEX audit_prev_hash ON audit(prev_hash);
CREATE FUNCTION scanner_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% records are append-only', TG_TABLE_NAME;
END $$;
CREATE FUNCTION scanner_append_audit(p_at TEXT, p_caller TEXT, p_sha256 TEXT, p_verdict TEXT, p_record TEXT)
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    last_id BIGINT;
    last_hash TEXT;
BEGIN
    -- Held until commit: the head read below (a fresh snapshot, taken after the lock) is the latest.
    PERFORM pg_advisory_xact_lock(AUDIT_LOCK_KEY);
    SELECT id, hash INTO last_id, last_hash FROM audit ORDER BY id DESC LIMIT 1;
    IF last_id IS NULL THEN
        last_id := 0;
        last_hash := repeat('0', 64);
    END IF;
    INSERT INTO audit (id, at, caller, sha256, verdict, record, prev_hash, hash)
    VALUES (last_id + 1, p_at, p_caller, p_sha256, p_verdict, p_record, last_hash,
            encode(sha256(convert_to(last_hash || p_record, 'UTF8')), 'hex'));
    RETURN last_id + 1;
END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION scanner_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION scanner_append_only();
CREATE TRIGGER consent_no_update BEFORE UPDATE OR DELETE ON consent
    FOR EACH ROW EXECUTE FUNCTION scanner_append_only();
CREATE TRIGGER consent_no_truncate BEFORE TRUNCATE ON consent
    FOR EACH STATEMENT EXECUTE FUNCTION scanner_append_only();
"""

# Steps from version N to N+1 (none yet: PostgreSQL catalogs start at version 2).
MIGRATIONS: dict[int, str] = {}

# Advisory lock keys (one 64-bit namespace per database): schema changes, audit appends.
LOCKS = {"schema": 0x5CA7_0001, "audit": 0x5CA7_0002}
SCHEMA = SCHEMA.replace("AUDIT_LOCK_KEY", str(LOCKS["audit"]))
TABLES = ("works", "meta", "talent", "talent_samples", "consent", "audit", "api_keys", "schema_version")


@lru_cache(maxsize=256)
def _sql(query: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (the shared SQL has no literal ``?`` or ``%``)."""
    assert "%" not in query, query
    return query.replace("?", "%s")


def _driver() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        raise ConfigError("a postgresql:// catalog needs the PostgreSQL driver: pip install 'scanner[postgres]' "
                          "(psycopg[binary] and psycopg_pool)") from None
    return psycopg, psycopg_pool


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def connect_error(url: str, exc: BaseException, bad_url: bool = False) -> ConfigError:
    """One line that says what is wrong with a catalog URL or server, and what to try."""
    where = redact(url)
    msg = _first_line(exc).replace(url, where)  # libpq quotes the whole URL, password included
    low = str(exc).lower()
    if bad_url:
        return ConfigError(f"catalog URL {where} is not a valid PostgreSQL URL: {msg} "
                           "(expected postgresql://user[:password]@host[:port]/dbname)")
    m = re.search(r'database "([^"]+)" does not exist', str(exc))
    if m:
        return ConfigError(f"PostgreSQL catalog {where}: database '{m.group(1)}' does not exist "
                           f"(create it first: createdb {m.group(1)}, or CREATE DATABASE as an admin)")
    login = ("password authentication failed", "no password supplied", "peer authentication failed")
    if any(t in low for t in login) or ("role" in low and "does not exist" in low):
        return ConfigError(f"PostgreSQL catalog {where}: the server refused the login ({msg}); check the user "
                           "and password in the URL, ~/.pgpass or PGPASSWORD")
    if "connection refused" in low or "no such file or directory" in low or "could not translate host" in low \
            or "timeout expired" in low or "could not connect" in low or "connection to server" in low:
        return ConfigError(f"cannot reach the PostgreSQL catalog {where}: {msg} (is the server running, and are "
                           "the host and port in the URL right?)")
    return ConfigError(f"cannot open the PostgreSQL catalog {where}: {msg}")


class _PgTx:
    def __init__(self, conn: Any):
        self._conn = conn

    def one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        return self._conn.execute(_sql(sql), tuple(args)).fetchone()

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        return self._conn.execute(_sql(sql), tuple(args)).fetchall()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self._conn.execute(_sql(sql), tuple(args)).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(_sql(sql), [tuple(r) for r in rows])


class PostgresCatalog(Catalog):
    """The catalog in a PostgreSQL database, shared by every node that has the URL."""

    backend = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout: int = 10, wait_timeout: float = 30.0):
        """Connect to ``url`` (checked now, with one clear ``ConfigError`` when it cannot be used),
        create or migrate the schema, and keep a pool of up to ``pool_size`` connections."""
        psycopg, psycopg_pool = _driver()
        self.target = url
        self._psycopg = psycopg
        self._pool = None
        try:
            conn = psycopg.connect(url, connect_timeout=connect_timeout, autocommit=True)
        except (psycopg.ProgrammingError, ValueError) as exc:  # the URL itself cannot be parsed
            raise connect_error(url, exc, bad_url=True) from None
        except psycopg.Error as exc:  # OperationalError: no server, no database, login refused
            raise connect_error(url, exc) from None
        try:
            with conn:
                self._migrate(conn)
        except psycopg.Error as exc:
            raise CatalogError(f"cannot prepare the PostgreSQL catalog {redact(url)}: {_first_line(exc)}") from None
        self._wait = wait_timeout
        self._pool = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), timeout=wait_timeout, open=True,
            kwargs={"autocommit": True, "connect_timeout": connect_timeout},
            check=psycopg_pool.ConnectionPool.check_connection, name="scanner-catalog")
        # Callers that never close (one-shot CLI commands) still close the pool from the thread that
        # drops the catalog, not from the pool's own workers at interpreter exit.
        self._finalizer = weakref.finalize(self, self._pool.close)

    # ----- schema -----------------------------------------------------------------
    def _migrate(self, conn: Any) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCKS["schema"],))
            if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
                if conn.execute("SELECT to_regclass('works')").fetchone()[0] is not None:
                    raise CatalogError(f"database {redact(self.target)} has a 'works' table but no schema_version: "
                                       "it is not a scanner catalog; use an empty database")
                conn.execute(SCHEMA)
                conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
                conn.execute("INSERT INTO schema_version VALUES (%s, %s)", (SCHEMA_VERSION, _now()))
                return
            version = int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise CatalogError(
                    f"PostgreSQL catalog {redact(self.target)} has schema version {version}, newer than this "
                    f"scanner knows ({SCHEMA_VERSION}): upgrade scanner on this node")
            for step in range(version, SCHEMA_VERSION):
                if step not in MIGRATIONS:
                    raise CatalogError(f"PostgreSQL catalog {redact(self.target)} has schema version {version}, "
                                       "which this scanner cannot migrate; recreate it with `scanner catalog migrate`")
                conn.execute(MIGRATIONS[step])
                conn.execute("INSERT INTO schema_version VALUES (%s, %s)", (step + 1, _now()))

    def append_audit(self, caller: str, record: dict[str, Any]) -> int:
        """Append one record in one round trip: ``scanner_append_audit`` takes the audit lock, reads
        the head, hashes (the same sha256 as ``chain_hash``, checked by every verify) and inserts."""
        at, canonical = audit_canonical(caller, record)
        row = self._one("SELECT scanner_append_audit(?, ?, ?, ?, ?)",
                        (at, caller, record.get("sha256"), str(record.get("verdict")), canonical))
        assert row is not None
        return int(row[0])

    def schema_version(self) -> int:
        row = self._one("SELECT MAX(version) FROM schema_version")
        return int(row[0]) if row and row[0] is not None else 0

    # ----- primitives ---------------------------------------------------------------
    @contextmanager
    def _guard(self) -> Iterator[None]:
        psycopg = self._psycopg
        from psycopg_pool import PoolClosed, PoolTimeout

        try:
            yield
        except PoolTimeout as exc:
            raise CatalogError(f"no connection to the PostgreSQL catalog {redact(self.target)} within "
                               f"{self._wait:.0f} s ({_first_line(exc)}); is the server up?") from None
        except PoolClosed:
            raise CatalogError("the catalog is closed") from None
        except psycopg.OperationalError as exc:
            raise CatalogError(f"lost the connection to the PostgreSQL catalog {redact(self.target)}: "
                               f"{_first_line(exc)} (nothing of the interrupted change was kept)") from None
        except psycopg.IntegrityError as exc:
            raise CatalogError(f"the catalog refused the change: {_first_line(exc)}") from None
        except psycopg.Error as exc:
            raise CatalogError(f"PostgreSQL catalog {redact(self.target)}: {_first_line(exc)}") from None

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        with self._guard(), self._pool.connection() as conn:
            return conn.execute(_sql(sql), tuple(args)).fetchone()

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._guard(), self._pool.connection() as conn:
            return conn.execute(_sql(sql), tuple(args)).fetchall()

    @contextmanager
    def _tx(self, lock: str | None = None) -> Iterator[_PgTx]:
        with self._guard(), self._pool.connection() as conn, conn.transaction():
            if lock:  # held until commit or rollback: read-head-then-insert is one step across all nodes
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCKS[lock],))
            yield _PgTx(conn)

    def close(self) -> None:
        if self._pool is not None:
            self._finalizer()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
