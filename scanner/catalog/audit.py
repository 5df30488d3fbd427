"""Append-only audit trail of every check, hash-chained so tampering is detectable.

Each record stores the canonical JSON of what was decided and ``hash = sha256(prev_hash +
canonical_json)``. Editing, deleting or reordering any row breaks the chain from that row on;
``verify`` finds the first broken row. SQLite triggers also refuse UPDATE and DELETE.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    caller TEXT NOT NULL,
    sha256 TEXT,
    verdict TEXT NOT NULL,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
"""

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    """One stored audit record."""

    id: int
    at: str
    caller: str
    sha256: str | None
    verdict: str
    record: dict[str, Any]
    prev_hash: str
    hash: str


def _canonical(at: str, caller: str, record: dict[str, Any]) -> str:
    return json.dumps({"at": at, "caller": caller, "record": record}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


def chain_hash(prev_hash: str, canonical: str) -> str:
    """The hash linking a record to its predecessor."""
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


class AuditStore:
    """Audit methods of the catalog (mixed into ``Catalog``; uses its connection)."""

    _db: sqlite3.Connection

    def append_audit(self, caller: str, record: dict[str, Any]) -> int:
        """Append one record (the asset's result plus context); returns its id."""
        at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        canonical = _canonical(at, caller, record)
        with self._db:  # BEGIN IMMEDIATE takes the write lock first: the chain stays linear across processes
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            prev = row[0] if row else GENESIS
            cur = self._db.execute(
                "INSERT INTO audit (at, caller, sha256, verdict, record, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
                (at, caller, record.get("sha256"), str(record.get("verdict")), canonical, prev,
                 chain_hash(prev, canonical)))
        return int(cur.lastrowid)

    def audit_entries(self, since_id: int = 0, limit: int | None = None) -> Iterator[AuditEntry]:
        sql = "SELECT id, at, caller, sha256, verdict, record, prev_hash, hash FROM audit WHERE id > ? ORDER BY id"
        args: tuple = (since_id,)
        if limit:
            sql, args = sql + " LIMIT ?", (since_id, limit)
        for row in self._db.execute(sql, args):
            yield AuditEntry(row[0], row[1], row[2], row[3], row[4], json.loads(row[5])["record"], row[6], row[7])

    def audit_entry(self, entry_id: int) -> AuditEntry | None:
        return next(self.audit_entries(entry_id - 1, 1), None) if entry_id > 0 else None

    def verify_audit(self) -> tuple[int, int | None]:
        """(records checked, id of the first broken record or None when the chain is intact)."""
        prev, n = GENESIS, 0
        rows = self._db.execute("SELECT id, at, caller, sha256, verdict, record, prev_hash, hash FROM audit ORDER BY id")
        for row in rows:
            n += 1
            rid, at, caller, sha256, verdict, canonical, prev_hash, digest = row
            try:  # the plain columns must agree with the hashed record too
                data = json.loads(canonical)
                rec = data.get("record", {})
                consistent = (data.get("at"), data.get("caller"), rec.get("sha256"), str(rec.get("verdict"))) == (
                    at, caller, sha256, verdict)
            except (ValueError, AttributeError):
                consistent = False
            if not consistent or prev_hash != prev or chain_hash(prev, canonical) != digest:
                return n, rid
            prev = digest
        return n, None
