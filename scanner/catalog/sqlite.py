"""The embedded SQLite catalog. Every write is one transaction; ids are never reused,
so an index entry can never point at a different work after a remove."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from scanner.catalog.audit import SCHEMA as AUDIT_SCHEMA
from scanner.catalog.audit import AuditStore
from scanner.catalog.keys import SCHEMA as KEYS_SCHEMA
from scanner.catalog.keys import KeyStore
from scanner.catalog.talent import SCHEMA as TALENT_SCHEMA
from scanner.catalog.talent import TalentStore
from scanner.errors import CatalogError
from scanner.types import Clearance, Reference

SCHEMA = """
CREATE TABLE IF NOT EXISTS works (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    rights_holder TEXT NOT NULL,
    clearance TEXT NOT NULL,
    media_type TEXT NOT NULL,
    path TEXT NOT NULL,
    added_at TEXT NOT NULL,
    width INTEGER NOT NULL DEFAULT 0,
    height INTEGER NOT NULL DEFAULT 0,
    thumbnail BLOB,
    duration REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLUMNS = "id, sha256, title, rights_holder, clearance, media_type, path, added_at, width, height, duration"


@dataclass(frozen=True)
class NewWork:
    """A work about to be registered."""

    sha256: str
    title: str
    rights_holder: str
    clearance: Clearance
    media_type: str
    path: str
    width: int = 0
    height: int = 0
    thumbnail: bytes | None = None
    duration: float = 0.0


class Catalog(TalentStore, AuditStore, KeyStore):
    """Works registered as references (keyed by sha256), talent, consent, the audit trail and API keys."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA + TALENT_SCHEMA + AUDIT_SCHEMA + KEYS_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"cannot open catalog {self.path}: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def add_work(self, work: NewWork) -> tuple[Reference, bool]:
        """Register ``work``; returns (reference, created). Re-adding the same sha256 is a no-op."""
        existing = self.by_sha256(work.sha256)
        if existing is not None:
            return existing, False
        with self._db:
            cur = self._db.execute(
                "INSERT INTO works (sha256, title, rights_holder, clearance, media_type, path, added_at,"
                " width, height, thumbnail, duration) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (work.sha256, work.title, work.rights_holder, Clearance(work.clearance).value, work.media_type,
                 work.path, _now(), work.width, work.height, work.thumbnail, float(work.duration)),
            )
        ref = self.get(int(cur.lastrowid))
        assert ref is not None
        return ref, True

    def get(self, ref_id: int) -> Reference | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM works WHERE id=?", (ref_id,)).fetchone()
        return _ref(row) if row else None

    def by_sha256(self, sha256: str) -> Reference | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM works WHERE sha256=?", (sha256,)).fetchone()
        return _ref(row) if row else None

    def find(self, key: str) -> Reference:
        """A work by id, full sha256 or unique sha256 prefix (>= 6 chars)."""
        if key.isdigit():
            ref = self.get(int(key))
            if ref:
                return ref
        if re.fullmatch(r"[0-9a-fA-F]{6,64}", key):
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM works WHERE substr(sha256, 1, ?) = ?",
                                    (len(key), key.lower())).fetchall()
            if len(rows) == 1:
                return _ref(rows[0])
            if len(rows) > 1:
                raise CatalogError(f"'{key}' matches {len(rows)} references; give more of the sha256")
        raise CatalogError(f"no reference with id or sha256 '{key}' (see `scanner refs list`)")

    def works(self, media_type: str | None = None) -> list[Reference]:
        sql = f"SELECT {_COLUMNS} FROM works"
        args: tuple = ()
        if media_type:
            sql += " WHERE media_type=?"
            args = (media_type,)
        return [_ref(r) for r in self._db.execute(sql + " ORDER BY id", args)]

    def thumbnail(self, ref_id: int) -> bytes | None:
        row = self._db.execute("SELECT thumbnail FROM works WHERE id=?", (ref_id,)).fetchone()
        return row[0] if row else None

    def remove(self, ref_ids: Iterable[int]) -> int:
        ids = [(int(i),) for i in ref_ids]
        with self._db:
            cur = self._db.executemany("DELETE FROM works WHERE id=?", ids)
        return cur.rowcount

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM works").fetchone()[0])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _ref(row: tuple) -> Reference:
    return Reference(
        id=row[0], sha256=row[1], title=row[2], rights_holder=row[3], clearance=Clearance(row[4]),
        media_type=row[5], path=row[6], added_at=row[7], width=row[8], height=row[9], duration=row[10],
    )
