"""API keys: hashed at rest with a per-key salt, scopes, revocation, and the `scanner keys` CLI."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from scanner.catalog import Catalog
from scanner.catalog.keys import split_token
from scanner.cli import app
from scanner.errors import CatalogError


@pytest.fixture
def catalog(tmp_path):
    c = Catalog(tmp_path / "catalog.db")
    yield c
    c.close()


def test_token_verifies_and_only_a_salted_hash_is_stored(catalog, tmp_path):
    key, token = catalog.create_key(["check"], "render farm")
    assert token.startswith(f"sk_{key.id}_") and key.scopes == ("check",) and key.active
    assert key.caller == f"key:{key.id}"
    assert catalog.verify_key(token) == key
    secret = split_token(token)[1]
    raw = sqlite3.connect(tmp_path / "catalog.db")
    rows = raw.execute("SELECT id, salt, hash FROM api_keys").fetchall()
    raw.close()
    assert len(rows) == 1 and rows[0][0] == key.id
    stored = " ".join(str(v) for v in rows[0])
    assert secret not in stored and token not in stored
    assert len(rows[0][1]) == 32 and len(rows[0][2]) == 64  # 128-bit salt, sha256 hex
    # the database file itself holds no trace of the secret
    data = b"".join(p.read_bytes() for p in tmp_path.glob("catalog.db*"))
    assert secret.encode() not in data


def test_same_secret_gets_a_different_hash_per_key(catalog):
    catalog.create_key(["check"])
    catalog.create_key(["check"])
    salts = catalog._db.execute("SELECT salt, hash FROM api_keys").fetchall()
    assert salts[0][0] != salts[1][0] and salts[0][1] != salts[1][1]


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
    lambda t: t.replace("sk_", "pk_"),  # malformed
    lambda t: "sk_000000000000_" + t.split("_", 2)[2],  # unknown id
    lambda t: "",
    lambda t: t + "\x00",
])
def test_bad_tokens_are_refused(catalog, mangle):
    _, token = catalog.create_key(["check"])
    assert catalog.verify_key(mangle(token)) is None


def test_revoked_key_stops_working_and_revoking_twice_keeps_the_first_time(catalog):
    key, token = catalog.create_key(["check", "admin"])
    first = catalog.revoke_key(key.id)
    assert first.revoked_at and not first.active
    assert catalog.verify_key(token) is None
    assert catalog.revoke_key(key.id).revoked_at == first.revoked_at
    with pytest.raises(CatalogError, match="no API key"):
        catalog.revoke_key("nope")


def test_scopes_are_checked(catalog):
    with pytest.raises(CatalogError, match="scopes"):
        catalog.create_key(["root"])
    with pytest.raises(CatalogError, match="scopes"):
        catalog.create_key([])
    key, _ = catalog.create_key(["admin", "check", "admin"])
    assert key.scopes == ("admin", "check")


def test_keys_cli_prints_the_secret_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    made = runner.invoke(app, ["keys", "create", "--scope", "check", "--name", "pipeline"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    key_id, _ = split_token(token)
    listed = runner.invoke(app, ["keys", "list", "--json"])
    assert listed.exit_code == 0 and key_id in listed.stdout and token not in listed.output
    assert '"scopes": ["check"]' in listed.stdout and '"revoked_at": null' in listed.stdout
    bad = runner.invoke(app, ["keys", "create", "--scope", "root"])
    assert bad.exit_code == 4 and "Traceback" not in bad.output  # 4: usage error
    gone = runner.invoke(app, ["keys", "revoke", key_id])
    assert gone.exit_code == 0 and "revoked" in gone.output
    cat = Catalog(tmp_path / "catalog.db")
    assert cat.verify_key(token) is None
    cat.close()
    assert runner.invoke(app, ["keys", "revoke", "000000000000"]).exit_code == 4
