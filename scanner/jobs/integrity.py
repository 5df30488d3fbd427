"""Records a scan writes are signed, so that resume and merge never trust an edited report.

Resume reuses earlier records from ``--out`` and merge combines shard files: both read a folder
that reviewers, farm tasks and scripts can write. Each record therefore carries
``signature = "hmac-sha256:<key id>:<hex>"``, an HMAC over its canonical JSON (every other
field, sorted keys) with a secret the report folder does not hold. A record whose signature is
missing or wrong (a ``block`` edited to ``pass``, a forged line, a record from another catalog)
is checked again on resume and refused by merge.

The secret: 32 random bytes, created on first use in a file only its owner can read (0600),
kept with the catalog, not the reports: ``<catalog>.results-key`` beside a SQLite catalog, or
``<index_dir>/.results-key`` for a PostgreSQL catalog (both on the storage every farm node
already shares). Moving it into the catalog itself needs a catalog method for a named secret.

A finished scan also writes ``results.seal`` beside ``results.jsonl``: the number of records and
a hash of their signatures in file order, signed the same way. Merge refuses a shard whose seal is
missing (the task did not finish, or was killed) or does not match its records (a record deleted,
added or reordered): a lost ``block`` must not make the merged delivery clean.

Records also carry ``asset_id``: the asset's path relative to the scanned folder as
percent-encoded bytes. ``path`` is for people (undecodable bytes shown as ``\\xNN``, so a raw
0xFF byte and the four characters ``\\xff`` look the same); ``asset_id`` is what merge keys by.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from scanner.config import Settings
from scanner.errors import ScannerError

SIGNATURE = "signature"
SEAL_FILE = "results.seal"
ASSET_ID = "asset_id"
KEY_FILE_SUFFIX = ".results-key"
_SCHEME = "hmac-sha256"
_PROCESS_KEY = secrets.token_bytes(32)


def results_key_path(settings: Settings) -> Path:
    """Where the signing secret of this catalog lives (see the module docstring)."""
    catalog = os.fspath(settings.catalog)
    if "://" in catalog:  # a database URL: no file beside it
        return Path(settings.index_dir) / KEY_FILE_SUFFIX
    return Path(catalog + KEY_FILE_SUFFIX)


def _load_or_create_key(path: Path) -> bytes:
    """The secret in ``path``; made (0600, atomically: concurrent farm tasks agree) if missing."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise ScannerError(f"cannot read the results signing key {path}: {exc}") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise ScannerError(f"cannot create the results signing key {path}: {exc.strerror or exc} "
                           "(it is kept beside the catalog; that folder must be writable once)") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if another task made it first: then theirs is the key
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes a signature covers: every field but the signature, sorted, compact."""
    body = {k: v for k, v in record.items() if k != SIGNATURE}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class RecordSigner:
    """Signs and verifies result records with one catalog's secret."""

    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("a signing key needs at least 16 bytes")
        self._key = key
        self.key_id = hashlib.sha256(b"scanner-results-key:" + key).hexdigest()[:12]

    @classmethod
    def for_settings(cls, settings: Settings) -> "RecordSigner":
        """The signer of the catalog ``settings`` name (its key is created on first use; an
        in-memory catalog gets a key that lives as long as the process)."""
        if os.fspath(settings.catalog) == ":memory:":
            return cls(_PROCESS_KEY)
        return cls(_load_or_create_key(results_key_path(settings)))

    def _mac(self, record: dict[str, Any]) -> str:
        return hmac.new(self._key, canonical(record), hashlib.sha256).hexdigest()

    def sign(self, record: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``record`` with its signature (any old one replaced)."""
        out = {k: v for k, v in record.items() if k != SIGNATURE}
        out[SIGNATURE] = f"{_SCHEME}:{self.key_id}:{self._mac(out)}"
        return out

    def problem(self, record: dict[str, Any]) -> str | None:
        """Why ``record`` cannot be trusted, or None when its signature verifies."""
        sig = record.get(SIGNATURE)
        if not isinstance(sig, str) or not sig:
            return "it is not signed"
        parts = sig.split(":")
        if len(parts) != 3 or parts[0] != _SCHEME:
            return "its signature is malformed"
        if parts[1] != self.key_id:
            return "it was signed with another catalog's key"
        if not hmac.compare_digest(parts[2], self._mac(record)):
            return "its content does not match its signature (edited after the scan)"
        return None

    def verifies(self, record: dict[str, Any]) -> bool:
        return self.problem(record) is None

    def seal(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The signed seal of a finished ``results.jsonl`` holding exactly ``records``, in order."""
        return self.sign({"count": len(records), "digest": _digest(records)})

    def seal_problem(self, seal: Any, records: list[dict[str, Any]]) -> str | None:
        """Why ``records`` are not what the scan that wrote ``seal`` left, or None."""
        if not isinstance(seal, dict):
            return "it has no results.seal: the scan did not finish (killed?) or an older scanner wrote it"
        problem = self.problem(seal)
        if problem is not None:
            return f"its results.seal cannot be trusted: {problem}"
        if seal.get("count") != len(records) or seal.get("digest") != _digest(records):
            return (f"it holds {len(records)} records where the scan sealed {seal.get('count')}, or other ones: "
                    "records were removed, added or reordered after the scan")
        return None


def _digest(records: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(str(r.get(SIGNATURE, "")).encode("utf-8") + b"\n")
    return h.hexdigest()


def write_seal(folder: Path, records: list[dict[str, Any]], signer: RecordSigner) -> None:
    """Seal a finished ``folder/results.jsonl`` (written atomically, after the records)."""
    from scanner.fsutil import atomic_write_bytes

    atomic_write_bytes(Path(folder) / SEAL_FILE, json.dumps(signer.seal(records), sort_keys=True).encode())


def clear_seal(folder: Path) -> None:
    """A scan starting in ``folder``: the old seal no longer describes what will be there."""
    (Path(folder) / SEAL_FILE).unlink(missing_ok=True)


def read_seal(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(folder) / SEAL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# Percent-encoding keeps letters, digits and common punctuation readable; '%' itself is always
# encoded, so the id maps back to exactly one byte string.
_SAFE = "/-._~!$&'()*+,;=:@ []{}^`|#<>\"\\?"


def asset_id(path: str | os.PathLike, roots: list[str] | tuple[str, ...]) -> str:
    """Unambiguous id of an asset: its path relative to the root it was found under (the file
    name for a root that is itself a file), as percent-encoded bytes."""
    p = os.fsencode(os.path.abspath(path))
    for root in roots:
        r = os.fsencode(os.path.abspath(root)).rstrip(b"/") or b"/"
        if p == r:
            return quote(os.path.basename(p), safe=_SAFE)
        prefix = r if r.endswith(b"/") else r + b"/"
        if p.startswith(prefix):
            return quote(p[len(prefix):], safe=_SAFE)
    return quote(p, safe=_SAFE)
