"""The catalog interface both backends share: works, plus the talent, audit and key mixins.

Every method is written once, against four primitives a backend provides (``_one``, ``_all``,
``_tx`` and ``close``), in SQL both SQLite (>= 3.35) and PostgreSQL accept, with ``?``
placeholders. ``Catalog(target)`` picks the backend from the target: a path opens SQLite, a
``postgresql://`` URL opens PostgreSQL, so callers never name a backend.
"""

from __future__ import annotations

import os
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

from scanner.catalog.audit import AuditStore
from scanner.catalog.keys import KeyStore
from scanner.catalog.talent import TalentStore
from scanner.catalog.url import catalog_target, describe, is_catalog_url
from scanner.types import Clearance, Reference

SCHEMA_VERSION = 2
"""Version of the logical schema, the same on both backends.

1: works, talent, samples, consent, audit, api_keys (catalogs made before versioning).
2: a unique ``audit.prev_hash``: two records can never extend the same head, so the chain cannot fork."""

_COLUMNS = "id, sha256, title, rights_holder, clearance, media_type, path, added_at, width, height, duration"
_WORK_INSERT = ("INSERT INTO works (sha256, title, rights_holder, clearance, media_type, path, added_at,"
                " width, height, thumbnail, duration) VALUES (?,?,?,?,?,?,?,?,?,?,?)")


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


class Tx(Protocol):
    """One open transaction."""

    def one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None: ...

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]: ...

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int: ...


class Catalog(TalentStore, AuditStore, KeyStore):
    """Works registered as references (keyed by sha256), talent, consent, the audit trail and API keys.

    ``Catalog(path)`` opens (or creates) an SQLite catalog; ``Catalog("postgresql://...")``
    connects to a PostgreSQL one. Both raise ``ConfigError``/``CatalogError`` with a message
    a person can act on, never a driver traceback."""

    backend = "abstract"
    target: Path | str

    def __new__(cls, target: Path | str | os.PathLike, *args: Any, **kwargs: Any) -> "Catalog":
        if cls is Catalog:  # dispatch on the target, like pathlib.Path picks its flavour
            target = catalog_target(target) if not str(target) == ":memory:" else target
            if is_catalog_url(target):
                from scanner.catalog.postgres import PostgresCatalog
                cls = PostgresCatalog
            else:
                from scanner.catalog.sqlite import SQLiteCatalog
                cls = SQLiteCatalog
        return super().__new__(cls)

    # ----- backend primitives -----------------------------------------------------
    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        raise NotImplementedError

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        raise NotImplementedError

    def _tx(self, lock: str | None = None) -> AbstractContextManager[Tx]:
        """A write transaction; ``lock`` names a lock held until it ends (``"audit"`` serialises appends)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __str__(self) -> str:
        return describe(self.target)

    def schema_version(self) -> int:
        """The schema version stored in the catalog."""
        raise NotImplementedError

    # ----- works --------------------------------------------------------------------
    def add_work(self, work: NewWork) -> tuple[Reference, bool]:
        """Register ``work``; returns (reference, created). Re-adding the same sha256 is a no-op,
        also when another process adds it at the same moment (one statement decides)."""
        existing = self.by_sha256(work.sha256)
        if existing is not None:
            return existing, False
        clearance = Clearance(work.clearance).value
        with self._tx() as tx:
            row = tx.one(_WORK_INSERT + " ON CONFLICT (sha256) DO NOTHING RETURNING id",
                         (work.sha256, work.title, work.rights_holder, clearance, work.media_type, work.path, _now(),
                          work.width, work.height, work.thumbnail, float(work.duration)))
        if row is None:  # another writer registered the same file between our read and our insert
            ref = self.by_sha256(work.sha256)
            assert ref is not None
            return ref, False
        ref = self.get(int(row[0]))
        assert ref is not None
        return ref, True

    def get(self, ref_id: int) -> Reference | None:
        row = self._one(f"SELECT {_COLUMNS} FROM works WHERE id=?", (int(ref_id),))
        return _ref(row) if row else None

    def by_sha256(self, sha256: str) -> Reference | None:
        row = self._one(f"SELECT {_COLUMNS} FROM works WHERE sha256=?", (sha256,))
        return _ref(row) if row else None

    def find(self, key: str) -> Reference:
        """A work by id, full sha256 or unique sha256 prefix (>= 6 chars)."""
        from scanner.errors import CatalogError

        if key.isdigit() and len(key) < 19:  # beyond that it cannot be an id (BIGINT) and may be a sha256 prefix
            ref = self.get(int(key))
            if ref:
                return ref
        if re.fullmatch(r"[0-9a-fA-F]{6,64}", key):
            rows = self._all(f"SELECT {_COLUMNS} FROM works WHERE substr(sha256, 1, ?) = ?", (len(key), key.lower()))
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
        return [_ref(r) for r in self._all(sql + " ORDER BY id", args)]

    def thumbnail(self, ref_id: int) -> bytes | None:
        row = self._one("SELECT thumbnail FROM works WHERE id=?", (int(ref_id),))
        return bytes(row[0]) if row and row[0] is not None else None

    def remove(self, ref_ids: Iterable[int]) -> int:
        ids = [int(i) for i in ref_ids]
        with self._tx() as tx:
            return sum(tx.execute("DELETE FROM works WHERE id=?", (i,)) for i in ids)

    def count(self) -> int:
        row = self._one("SELECT COUNT(*) FROM works")
        return int(row[0]) if row else 0

    def index_state(self) -> tuple[int, ...]:
        """What the indexes are built from, summed up cheaply: (count, highest id, sum of ids) of the works
        and of the talent samples. Ids are never reused and these rows are never edited (only added or
        deleted), so two equal states mean the same sets (a row added since has a higher id than any
        before it: if it is still there the highest id differs, if not the sets agree where the counts
        do); a long-lived scanner compares it instead of reading every reference before each check."""
        out: list[int] = []
        for table in ("works", "talent_samples"):
            row = self._one(f"SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(id), 0) FROM {table}")
            out.extend(int(v) for v in (row or (0, 0, 0)))
        return tuple(out)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _ref(row: tuple) -> Reference:
    return Reference(
        id=int(row[0]), sha256=row[1], title=row[2], rights_holder=row[3], clearance=Clearance(row[4]),
        media_type=row[5], path=row[6], added_at=row[7], width=int(row[8]), height=int(row[9]),
        duration=float(row[10]),
    )
