"""Append-only audit trail of every check, hash-chained so tampering is detectable.

Each record stores the canonical JSON of what was decided and ``hash = sha256(prev_hash +
canonical_json)``. Editing, deleting or reordering any row breaks the chain from that row on;
``verify`` finds the first broken row. Ids are contiguous (1, 2, 3...), so a removed row shows
as a gap. Removing rows from the *end* leaves a shorter chain that is still consistent: only a
head recorded somewhere else (an anchor: ``scanner audit export --anchor FILE``, kept where the
catalog's writers cannot change it) shows it, by ``check_audit(anchor)``. The database refuses
UPDATE and DELETE (triggers), and ``prev_hash`` is unique, so two writers can never extend the
same head: appends are serialised under one lock on both backends.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from scanner.errors import CatalogError, ConfigError
from scanner.catalog.schema import table_ddl

if TYPE_CHECKING:
    from scanner.catalog.base import Tx

SCHEMA = table_ddl("sqlite", ("audit",)) + """
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
"""

GENESIS = "0" * 64
_ROWS = "SELECT id, at, caller, sha256, verdict, record, prev_hash, hash FROM audit WHERE id > ? ORDER BY id LIMIT ?"
_PAGE = 2000


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


@dataclass(frozen=True)
class Anchor:
    """A head of the chain recorded outside the catalog: record ``id`` had hash ``hash``."""

    id: int
    hash: str

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "hash": self.hash}, sort_keys=True)

    def __str__(self) -> str:
        return f"{self.id}:{self.hash}"


@dataclass(frozen=True)
class AuditCheck:
    """What ``check_audit`` found."""

    records: int
    broken: int | None  # id of the first bad record (or where the missing tail starts)
    reason: str  # empty when intact
    head: Anchor | None  # the last record read (None for an empty trail)

    @property
    def ok(self) -> bool:
        return self.broken is None


def _canonical(at: str, caller: str, record: dict[str, Any]) -> str:
    return json.dumps({"at": at, "caller": caller, "record": record}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


def audit_canonical(caller: str, record: dict[str, Any]) -> tuple[str, str]:
    """(timestamp, canonical JSON) of a record about to be appended now."""
    at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return at, _canonical(at, caller, record)


def chain_hash(prev_hash: str, canonical: str) -> str:
    """The hash linking a record to its predecessor."""
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def parse_anchor(text: str) -> Anchor:
    """``ID:HASH`` or the JSON ``{"id": ..., "hash": ...}`` that ``audit export --anchor`` writes."""
    text = text.strip()
    try:
        if text.startswith("{"):
            data = json.loads(text)
            anchor = Anchor(int(data["id"]), str(data["hash"]).lower())
        else:
            rid, _, digest = text.partition(":")
            anchor = Anchor(int(rid), digest.lower())
    except (ValueError, KeyError, TypeError):
        anchor = None
    if anchor is None or anchor.id < 0 or not re.fullmatch(r"[0-9a-f]{64}", anchor.hash):
        raise ConfigError(f"audit head anchor must be ID:SHA256 (64 hex digits) or the JSON file "
                          f"`scanner audit export --anchor` writes, got {text[:80]!r}")
    return anchor


def read_anchor(path: Path) -> Anchor:
    """The anchor stored in ``path``."""
    try:
        return parse_anchor(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read audit anchor {path}: {exc.strerror or exc}") from None


def verify_rows(page: Callable[[int, int], Sequence[tuple]], anchor: Anchor | None = None) -> AuditCheck:
    """Walk the chain through ``page(after_id, limit)`` (rows in ``_ROWS`` order) and check
    every link, the id sequence and, when given, that ``anchor`` is still part of it."""
    prev, n, last_id, head = GENESIS, 0, 0, None
    anchor_seen = anchor is None or anchor.id == 0
    while True:
        rows = page(last_id, _PAGE)
        for row in rows:
            n += 1
            rid, at, caller, sha256, verdict, canonical, prev_hash, digest = row
            rid = int(rid)
            if rid != last_id + 1:
                gap = f"record #{last_id + 1} is" if rid == last_id + 2 else f"records #{last_id + 1}..#{rid - 1} are"
                return AuditCheck(n, rid, f"{gap} missing (ids must be contiguous)", head)
            try:  # the plain columns must agree with the hashed record too
                data = json.loads(canonical)
                rec = data.get("record", {})
                consistent = (data.get("at"), data.get("caller"), rec.get("sha256"), str(rec.get("verdict"))) == (
                    at, caller, sha256, verdict)
            except (ValueError, AttributeError):
                consistent = False
            if not consistent or prev_hash != prev or chain_hash(prev, canonical) != digest:
                return AuditCheck(n, rid, "it was edited, removed or reordered after it was written", head)
            if anchor is not None and rid == anchor.id:
                if digest != anchor.hash:
                    return AuditCheck(n, rid, f"its hash differs from the recorded head anchor {anchor}: the chain "
                                              "was rewritten from here or earlier", head)
                anchor_seen = True
            prev, last_id, head = digest, rid, Anchor(rid, digest)
        if len(rows) < _PAGE:
            break
    if not anchor_seen:
        assert anchor is not None
        return AuditCheck(n, last_id + 1, f"the trail ends at #{last_id} but the head anchor records #{anchor.id}: "
                                          f"records #{last_id + 1}..#{anchor.id} were removed from the end", head)
    return AuditCheck(n, None, "", head)


class AuditStore:
    """Audit methods of the catalog (mixed into ``Catalog``; uses the backend primitives)."""

    _one: Callable[..., tuple | None]
    _all: Callable[..., list[tuple]]
    _tx: Callable[..., Any]

    def append_audit(self, caller: str, record: dict[str, Any]) -> int:
        """Append one record (the asset's result plus context); returns its id."""
        at, canonical = audit_canonical(caller, record)
        # The "audit" lock (BEGIN IMMEDIATE / an advisory lock) makes read-head-then-insert one step
        # across processes and nodes; the id is the head's plus one so ids stay contiguous.
        with self._tx(lock="audit") as tx:
            return self._append_locked(tx, at, caller, record.get("sha256"), str(record.get("verdict")), canonical)

    @staticmethod
    def _append_locked(tx: "Tx", at: str, caller: str, sha256: str | None, verdict: str, canonical: str) -> int:
        row = tx.one("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
        last_id, prev = (int(row[0]), row[1]) if row else (0, GENESIS)
        tx.execute("INSERT INTO audit (id, at, caller, sha256, verdict, record, prev_hash, hash)"
                   " VALUES (?,?,?,?,?,?,?,?)",
                   (last_id + 1, at, caller, sha256, verdict, canonical, prev, chain_hash(prev, canonical)))
        return last_id + 1

    def audit_entries(self, since_id: int = 0, limit: int | None = None) -> Iterator[AuditEntry]:
        """Records after ``since_id``, oldest first (read in pages, so any length streams)."""
        left = limit if limit else None
        after = since_id
        while left is None or left > 0:
            size = min(_PAGE, left) if left is not None else _PAGE
            rows = self._all(_ROWS, (after, size))
            for row in rows:
                yield AuditEntry(int(row[0]), row[1], row[2], row[3], row[4], json.loads(row[5])["record"], row[6],
                                 row[7])
            if len(rows) < size:
                return
            after = int(rows[-1][0])
            if left is not None:
                left -= len(rows)

    def audit_entry(self, entry_id: int) -> AuditEntry | None:
        return next(self.audit_entries(entry_id - 1, 1), None) if entry_id > 0 else None

    def audit_head(self) -> Anchor | None:
        """The last record's id and hash: what to keep elsewhere as an anchor (None when empty)."""
        row = self._one("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
        return Anchor(int(row[0]), row[1]) if row else None

    def audit_count(self) -> int:
        row = self._one("SELECT COUNT(*) FROM audit")
        return int(row[0]) if row else 0

    def check_audit(self, anchor: Anchor | None = None) -> AuditCheck:
        """Check every link, that ids are contiguous, and that ``anchor`` (a head recorded
        elsewhere) is still in the chain: a trail cut short before the anchor fails."""
        return verify_rows(lambda after, size: self._all(_ROWS, (after, size)), anchor)

    def verify_audit(self) -> tuple[int, int | None]:
        """(records checked, id of the first broken record or None when the chain is intact)."""
        result = self.check_audit()
        return result.records, result.broken


def copy_audit_row(tx: "Tx", row: Sequence[Any]) -> None:
    """Insert one already-hashed record as it is (``scanner catalog migrate``)."""
    if len(row) != 8:
        raise CatalogError("audit row has the wrong shape")
    tx.execute("INSERT INTO audit (id, at, caller, sha256, verdict, record, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)",
               tuple(row))
