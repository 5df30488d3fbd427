"""Talent, their reference samples, and append-only consent records.

Consent rows are never updated or deleted (database triggers refuse it): revoking adds a
``revoke`` row that points at the grant, so the full history stays auditable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable

from scanner.errors import CatalogError
from scanner.types import ConsentAction, ConsentRecord, ConsentScope, Talent, TalentSample
from scanner.catalog.schema import table_ddl

SCHEMA = table_ddl("sqlite", ("talent", "talent_samples", "consent")) + """
CREATE TRIGGER IF NOT EXISTS consent_no_update BEFORE UPDATE ON consent
BEGIN SELECT RAISE(ABORT, 'consent records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS consent_no_delete BEFORE DELETE ON consent
BEGIN SELECT RAISE(ABORT, 'consent records are append-only'); END;
"""

_T = "id, name, union_covered, added_at, notes"
_S = "id, talent_id, kind, sha256, path, added_at"
_C = "id, talent_id, action, scope, project, valid_from, valid_until, document, revokes, recorded_at, recorded_by"


@dataclass(frozen=True)
class NewSample:
    """A reference photo or voice sample about to be attached to a talent."""

    kind: str
    sha256: str
    path: str
    thumbnail: bytes | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_date(value: str | date | None, what: str) -> str:
    """ISO date string (``""`` for none) or a ``CatalogError`` naming the field."""
    if value in (None, ""):
        return ""
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise CatalogError(f"{what} must be a date like 2026-12-31, got {value!r}") from None


class TalentStore:
    """Talent methods of the catalog (mixed into ``Catalog``; uses the backend primitives)."""

    _one: Callable[..., tuple | None]
    _all: Callable[..., list[tuple]]
    _tx: Callable[..., Any]

    def add_talent(self, name: str, union_covered: bool = False, notes: str = "",
                   samples: list[NewSample] = ()) -> Talent:
        """Create a talent with samples in one transaction (all or nothing)."""
        name = name.strip()
        if not name:
            raise CatalogError("talent name must not be empty")
        if self.talent_by_name(name) is not None:
            raise CatalogError(f"talent {name!r} already exists; use `scanner talent show {name!r}`")
        with self._tx() as tx:
            row = tx.one("INSERT INTO talent (name, union_covered, added_at, notes) VALUES (?,?,?,?)"
                         " ON CONFLICT DO NOTHING RETURNING id", (name, int(union_covered), _now(), notes))
            if row is None:  # added by another writer since the check above
                raise CatalogError(f"talent {name!r} already exists; use `scanner talent show {name!r}`")
            talent_id = int(row[0])
            self._insert_samples(tx, talent_id, samples)
        return self.talent(talent_id)

    def add_samples(self, talent_id: int, samples: list[NewSample]) -> list[TalentSample]:
        """Attach more samples; a sample already attached (same sha256) is kept once."""
        with self._tx() as tx:
            ids = self._insert_samples(tx, talent_id, samples)
        return [self.sample(i) for i in ids]

    @staticmethod
    def _insert_samples(tx: Any, talent_id: int, samples: list[NewSample]) -> list[int]:
        out = []
        for s in samples:
            row = tx.one(
                "INSERT INTO talent_samples (talent_id, kind, sha256, path, added_at, thumbnail)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING id",
                (talent_id, s.kind, s.sha256, s.path, _now(), s.thumbnail))
            if row is not None:
                out.append(int(row[0]))
        return out

    def talent(self, talent_id: int) -> Talent:
        row = self._one(f"SELECT {_T} FROM talent WHERE id=? AND removed_at IS NULL", (talent_id,))
        if row is None:
            raise CatalogError(f"no talent with id {talent_id}")
        return _talent(row)

    def talent_by_name(self, name: str) -> Talent | None:
        row = self._one(f"SELECT {_T} FROM talent WHERE name=? AND removed_at IS NULL", (name,))
        return _talent(row) if row else None

    def find_talent(self, key: str) -> Talent:
        """A talent by exact name or id."""
        found = self.talent_by_name(key)
        if found is None and key.isdigit():
            found = self.talent(int(key))
        if found is None:
            raise CatalogError(f"no talent named {key!r} (see `scanner talent list`)")
        return found

    def talents(self) -> list[Talent]:
        return [_talent(r) for r in self._all(f"SELECT {_T} FROM talent WHERE removed_at IS NULL ORDER BY id")]

    def remove_talent(self, talent_id: int) -> None:
        """Remove a talent's samples (indexes drop them); the talent row and consent history stay for audit."""
        with self._tx() as tx:
            tx.execute("DELETE FROM talent_samples WHERE talent_id=?", (talent_id,))
            tx.execute("UPDATE talent SET removed_at=? WHERE id=?", (_now(), talent_id))

    def sample(self, sample_id: int) -> TalentSample:
        row = self._one(f"SELECT {_S} FROM talent_samples WHERE id=?", (sample_id,))
        if row is None:
            raise CatalogError(f"no talent sample {sample_id}")
        return TalentSample(*row)

    def samples(self, kind: str | None = None, talent_id: int | None = None) -> list[TalentSample]:
        sql, args = f"SELECT {_S} FROM talent_samples WHERE 1=1", []
        if kind:
            sql, args = sql + " AND kind=?", args + [kind]
        if talent_id is not None:
            sql, args = sql + " AND talent_id=?", args + [talent_id]
        return [TalentSample(*r) for r in self._all(sql + " ORDER BY id", args)]

    def sample_thumbnail(self, sample_id: int) -> bytes | None:
        row = self._one("SELECT thumbnail FROM talent_samples WHERE id=?", (sample_id,))
        return bytes(row[0]) if row and row[0] is not None else None

    # ----- consent ----------------------------------------------------------------
    def grant_consent(self, talent_id: int, scope: ConsentScope | str, project: str, valid_from: str | date | None,
                      valid_until: str | date | None, document: str, recorded_by: str = "") -> ConsentRecord:
        """Append a grant. A document reference is required: consent must be documented."""
        scope = ConsentScope(scope).value
        start, end = parse_date(valid_from, "--from"), parse_date(valid_until, "--until")
        if start and end and end < start:
            raise CatalogError(f"consent ends ({end}) before it starts ({start})")
        if not document.strip():
            raise CatalogError("consent needs --document: a reference to the signed consent (contract id, file)")
        if not project.strip():
            raise CatalogError("consent needs --project (use '*' for every project)")
        self.talent(talent_id)
        return self._append(talent_id, ConsentAction.GRANT, scope, project.strip(), start, end, document.strip(), None, recorded_by)

    def revoke_consent(self, grant_id: int, recorded_by: str = "", document: str = "") -> ConsentRecord:
        """Append a revocation of grant ``grant_id``."""
        grant = self.consent_record(grant_id)
        if grant.action != ConsentAction.GRANT:
            raise CatalogError(f"consent record #{grant_id} is a revocation, not a grant")
        if any(r.revokes == grant_id for r in self.consents(grant.talent_id)):
            raise CatalogError(f"consent #{grant_id} is already revoked")
        return self._append(grant.talent_id, ConsentAction.REVOKE, grant.scope, grant.project, date.today().isoformat(), "",
                            document, grant_id, recorded_by)

    def _append(self, talent_id: int, action: str, scope: str, project: str, start: str, end: str, document: str,
                revokes: int | None, recorded_by: str) -> ConsentRecord:
        with self._tx() as tx:
            row = tx.one(
                "INSERT INTO consent (talent_id, action, scope, project, valid_from, valid_until, document, revokes,"
                " recorded_at, recorded_by) VALUES (?,?,?,?,?,?,?,?,?,?) RETURNING id",
                (talent_id, action, scope, project, start, end, document, revokes, _now(), recorded_by))
        assert row is not None
        return self.consent_record(int(row[0]))

    def consent_record(self, record_id: int) -> ConsentRecord:
        row = self._one(f"SELECT {_C} FROM consent WHERE id=?", (record_id,))
        if row is None:
            raise CatalogError(f"no consent record #{record_id} (see `scanner consent list`)")
        return ConsentRecord(*row)

    def consents(self, talent_id: int | None = None) -> list[ConsentRecord]:
        sql, args = f"SELECT {_C} FROM consent", ()
        if talent_id is not None:
            sql, args = sql + " WHERE talent_id=?", (talent_id,)
        return [ConsentRecord(*r) for r in self._all(sql + " ORDER BY id", args)]


def _talent(row: tuple) -> Talent:
    return Talent(id=row[0], name=row[1], union_covered=bool(row[2]), added_at=row[3], notes=row[4])
