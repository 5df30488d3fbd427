"""API keys for the HTTP service, hashed at rest.

A key is shown once, as ``sk_<id>_<secret>``: ``id`` is public (it names the caller in the
audit trail, ``key:<id>``), ``secret`` is 256 random bits. Only ``sha256(salt || secret)``
with a per-key random salt is stored, with the id, name, scopes and created/revoked times.
A salted fast hash is enough here: the secret is random, not a password, so there is nothing
to guess, and checking a key costs microseconds on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from scanner.errors import CatalogError
from scanner.catalog.schema import table_ddl

SCHEMA = table_ddl("sqlite", ("api_keys",))

SCOPES = ("check", "admin")  # check: POST /v1/check; admin: catalog statistics
PREFIX = "sk_"
_TOKEN = re.compile(r"sk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,128})")


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def caller(self) -> str:
        """How the audit trail names requests made with this key."""
        return f"key:{self.id}"


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("ascii")).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    m = _TOKEN.fullmatch(token.strip())
    return (m.group(1), m.group(2)) if m else None


class KeyStore:
    """API-key methods of the catalog (mixed into ``Catalog``; uses the backend primitives)."""

    _one: Callable[..., tuple | None]
    _all: Callable[..., list[tuple]]
    _tx: Callable[..., Any]

    def create_key(self, scopes: Iterable[str], name: str = "") -> tuple[ApiKey, str]:
        """A new key with ``scopes``; returns it and the token, which is never stored or shown again."""
        wanted = tuple(dict.fromkeys(str(getattr(s, "value", s)).strip().lower() for s in scopes))
        unknown = [s for s in wanted if s not in SCOPES]
        if not wanted or unknown:
            raise CatalogError(f"scopes must be among {', '.join(SCOPES)} (got {', '.join(wanted) or 'none'})")
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for _ in range(5):
            key_id = secrets.token_hex(6)
            with self._tx() as tx:
                row = tx.one("INSERT INTO api_keys (id, name, scopes, salt, hash, created_at) VALUES (?,?,?,?,?,?)"
                             " ON CONFLICT DO NOTHING RETURNING id",
                             (key_id, name, ",".join(wanted), salt, _digest(salt, secret), created))
            if row is None:
                continue  # id collision (1 in 2^48): draw another
            return ApiKey(key_id, name, wanted, created), f"{PREFIX}{key_id}_{secret}"
        raise CatalogError("could not allocate a key id")  # pragma: no cover

    def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key (effective on the next request); revoking twice keeps the first time."""
        key = self.api_key(key_id)
        if key is None:
            raise CatalogError(f"no API key with id '{key_id}' (see `scanner keys list`)")
        if key.revoked_at is None:
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            with self._tx() as tx:
                tx.execute("UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL", (now, key_id))
            key = self.api_key(key_id)
            assert key is not None
        return key

    def api_key(self, key_id: str) -> ApiKey | None:
        row = self._one("SELECT id, name, scopes, created_at, revoked_at FROM api_keys WHERE id=?", (key_id,))
        return _key(row) if row else None

    def api_keys(self) -> list[ApiKey]:
        rows = self._all("SELECT id, name, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at, id")
        return [_key(r) for r in rows]

    def verify_key(self, token: str) -> ApiKey | None:
        """The active key a token belongs to, or None (malformed, unknown, wrong secret or revoked)."""
        parts = split_token(token)
        if parts is None:
            return None
        key_id, secret = parts
        row = self._one("SELECT id, name, scopes, created_at, revoked_at, salt, hash FROM api_keys WHERE id=?",
                        (key_id,))
        if row is None:
            return None
        if not hmac.compare_digest(_digest(row[5], secret), row[6]) or row[4] is not None:
            return None
        return _key(row[:5])


def _key(row: tuple) -> ApiKey:
    return ApiKey(row[0], row[1], tuple(s for s in row[2].split(",") if s), row[3], row[4])
