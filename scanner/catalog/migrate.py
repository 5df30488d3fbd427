"""Copy an SQLite catalog into an empty PostgreSQL one (``scanner catalog migrate``).

The source's audit chain is verified first (a broken trail is not copied), every row is copied
as it is (ids, timestamps, hashes and thumbnails), identity sequences continue after the
highest id the source ever used (removed works' ids stay retired), and the copy's chain is
verified inside the copying transaction against the source head before it commits, and again
after. Any failure rolls the whole copy back: the target is either empty or a full copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from scanner.catalog.audit import Anchor, verify_rows
from scanner.catalog.url import is_catalog_url, redact
from scanner.errors import CatalogError, ConfigError

if TYPE_CHECKING:
    from scanner.catalog.postgres import PostgresCatalog
    from scanner.catalog.sqlite import SQLiteCatalog

# Table -> columns, in an order that satisfies the foreign keys.
COPY: dict[str, tuple[str, ...]] = {
    "works": ("id", "sha256", "title", "rights_holder", "clearance", "media_type", "path", "added_at", "width",
              "height", "thumbnail", "duration"),
    "meta": ("key", "value"),
    "talent": ("id", "name", "union_covered", "added_at", "removed_at", "notes"),
    "talent_samples": ("id", "talent_id", "kind", "sha256", "path", "added_at", "thumbnail"),
    "consent": ("id", "talent_id", "action", "scope", "project", "valid_from", "valid_until", "document", "revokes",
                "recorded_at", "recorded_by"),
    "api_keys": ("id", "name", "scopes", "salt", "hash", "created_at", "revoked_at"),
    "audit": ("id", "at", "caller", "sha256", "verdict", "record", "prev_hash", "hash"),
}
IDENTITY = ("works", "talent", "talent_samples", "consent")  # tables whose ids PostgreSQL generates
_BATCH = 1000


@dataclass
class MigrationReport:
    """What ``migrate`` copied and the audit head both sides agree on."""

    copied: dict[str, int] = field(default_factory=dict)
    head: Anchor | None = None


def migrate(source: Path, target: str, progress: Callable[[str, int], None] | None = None) -> MigrationReport:
    """Copy the SQLite catalog at ``source`` into the empty PostgreSQL catalog at ``target``."""
    from scanner.catalog.sqlite import SQLiteCatalog

    if not is_catalog_url(target):
        raise ConfigError(f"--to must be a postgresql:// URL, got {target!r}")
    if is_catalog_url(str(source)):
        raise ConfigError("--from must be an SQLite catalog file")
    source = Path(source)
    if not source.is_file():
        raise ConfigError(f"no SQLite catalog at {source}")
    src = SQLiteCatalog(source, allow_network=True)  # one reader copying the file off a share is fine
    try:
        with src.snapshot():  # scans still writing to the source do not tear the copy
            return _migrate(src, target, progress)
    finally:
        src.close()


def _migrate(src: "SQLiteCatalog", target: str, progress: Callable[[str, int], None] | None) -> MigrationReport:
    from scanner.catalog.postgres import PostgresCatalog

    before = src.check_audit()
    if not before.ok:
        raise CatalogError(f"the audit trail of {src.path} is broken at record #{before.broken} ({before.reason}); "
                           "not copying it: investigate with `scanner audit verify` first")
    dst = PostgresCatalog(target, pool_size=1)
    try:
        report = _copy(src, dst, before.head, progress)
        after = dst.check_audit(before.head)
        if not after.ok or after.records != before.records:
            raise CatalogError(f"the copied audit trail does not verify ({after.reason or 'record count differs'})")
        report.head = after.head
        return report
    finally:
        dst.close()


def _copy(src: "SQLiteCatalog", dst: "PostgresCatalog", head: Anchor | None,
          progress: Callable[[str, int], None] | None) -> MigrationReport:
    report = MigrationReport()
    with dst._tx(lock="audit") as tx:  # the audit lock keeps live writers out until the copy commits
        busy = [t for t in COPY if tx.one(f"SELECT 1 FROM {t} LIMIT 1") is not None]
        if busy:
            raise CatalogError(f"the target catalog {redact(dst.target)} is not empty ({', '.join(busy)} hold rows): "
                               "migrate into an empty database")
        for table, columns in COPY.items():
            cols = ", ".join(columns)
            marks = ",".join("?" * len(columns))
            key = columns[0]
            n, last = 0, None
            while True:
                where = f" WHERE {key} > ?" if last is not None else ""
                rows = src._all(f"SELECT {cols} FROM {table}{where} ORDER BY {key} LIMIT {_BATCH}",
                                (last,) if last is not None else ())
                if not rows:
                    break
                tx.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
                n, last = n + len(rows), rows[-1][0]
                if progress:
                    progress(table, len(rows))
            report.copied[table] = n
        used = dict(src._all("SELECT name, seq FROM sqlite_sequence"))
        for table in IDENTITY:  # continue after the highest id ever handed out, not the highest still present
            top = max(int(used.get(table) or 0), int(tx.one(f"SELECT COALESCE(MAX(id), 0) FROM {table}")[0]))
            if top:
                tx.one(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), ?)", (top,))
        inside = verify_rows(lambda after, size: tx.all(
            "SELECT id, at, caller, sha256, verdict, record, prev_hash, hash FROM audit WHERE id > ? ORDER BY id"
            " LIMIT ?", (after, size)), head)
        if not inside.ok or inside.head != head:
            raise CatalogError(f"the copied audit trail does not match the source ({inside.reason or 'other head'}); "
                               "nothing was kept")
    return report
