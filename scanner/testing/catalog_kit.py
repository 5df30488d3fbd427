"""The catalog contract kit: the checks every catalog backend must pass, run over SQLite and PostgreSQL.

``CatalogKit(open_catalog)`` takes a function that opens the *same* fresh, empty catalog each
time it is called (a file path, or a PostgreSQL schema) and offers one ``check_*`` method per
clause of the contract. ``tests/test_catalog_kit.py`` runs every check on both backends, so a
backend (or a change to the shared SQL) that breaks a guarantee fails for the backend it breaks:

* ``check_works``: add, get, by sha256, find by id/sha256/prefix, filter, thumbnails, remove, count;
* ``check_idempotent_add``: the same sha256 twice is one work, also from 8 threads at once;
* ``check_ids_never_reused``: a removed work's id is not handed out again, also after reopening;
* ``check_index_state``: ``index_state`` changes with every work or sample added or removed, not otherwise;
* ``check_talent_and_consent``: talent with samples all-or-nothing, duplicate names refused, consent
  grant/revoke history;
* ``check_append_only``: UPDATE and DELETE of consent and audit rows are refused by the database;
* ``check_audit_chain``: appends link, ids are contiguous, a head anchor verifies, a cut-off tail
  fails against the anchor;
* ``check_concurrent_audit``: 8 threads appending at once give one linear chain, nothing lost;
* ``check_fork_refused``: a second record extending the same head cannot be stored;
* ``check_keys``: API keys created, verified, revoked; secrets not stored;
* ``check_schema_version``: a new catalog is at ``SCHEMA_VERSION``, and stays so when reopened.

``pg_base_url()`` finds a PostgreSQL server for the kit: ``SCANNER_TEST_PG_URL`` if set, else a
throw-away cluster (``scanner.testing.pg_cluster``), else ``ClusterUnavailable`` with the reason.
``pg_schema_url(base, name)`` gives a URL whose catalog lives in its own schema, so checks are
isolated without needing CREATE DATABASE rights.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
from typing import Callable

from scanner.catalog import SCHEMA_VERSION, Catalog, NewSample, NewWork
from scanner.catalog.audit import GENESIS, chain_hash
from scanner.errors import CatalogError
from scanner.testing.pg_cluster import ENV_URL, ClusterUnavailable, PgCluster
from scanner.types import Clearance

Opener = Callable[[], Catalog]

_cluster: PgCluster | None = None
_cluster_error: str | None = None


def sha(seed: str) -> str:
    """A deterministic fake sha256."""
    return hashlib.sha256(seed.encode()).hexdigest()


def work(seed: str, **kw: object) -> NewWork:
    """A work with made-up metadata."""
    base: dict = dict(sha256=sha(seed), title=f"Work {seed}", rights_holder="Studio X",
                      clearance=Clearance.UNCLEARED, media_type="image", path=f"/refs/{seed}.png", width=640,
                      height=480)
    base.update(kw)
    return NewWork(**base)


def pg_base_url() -> str:
    """URL of a PostgreSQL database the kit may create schemas in (started once per process)."""
    global _cluster, _cluster_error
    if os.environ.get(ENV_URL):
        return os.environ[ENV_URL]
    if _cluster_error:
        raise ClusterUnavailable(_cluster_error)
    if _cluster is None:
        try:
            _cluster = PgCluster().start()
        except ClusterUnavailable as exc:
            _cluster_error = str(exc)
            raise
        atexit.register(_cluster.stop)
    return _cluster.url


def pg_schema_url(base: str, schema: str) -> str:
    """``base`` with a fresh schema ``schema`` first on the search path (created now)."""
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}"


class CatalogKit:
    """The contract checks over catalogs opened by ``open_catalog`` (each call: the same catalog)."""

    def __init__(self, open_catalog: Opener):
        self.open = open_catalog

    def _refused(self, cat: Catalog, sql: str) -> None:
        try:
            with cat._tx() as tx:
                tx.execute(sql)
        except CatalogError as exc:
            assert "append-only" in str(exc), exc
        else:
            raise AssertionError(f"the database accepted {sql!r}")

    def check_works(self) -> None:
        with self.open() as cat:
            a, created = cat.add_work(work("a", thumbnail=b"\x89PNG-a", duration=2.5))
            assert created and a.id >= 1 and a.sha256 == sha("a") and a.duration == 2.5 and a.width == 640
            b, _ = cat.add_work(work("b", media_type="audio", clearance="licensed"))
            assert b.clearance is Clearance.LICENSED
            assert cat.get(a.id) == a and cat.by_sha256(sha("b")) == b and cat.get(10**6) is None
            assert cat.find(str(a.id)) == a and cat.find(sha("a")) == a and cat.find(sha("a")[:8].upper()) == a
            for bad in ("zzzzzz", "12345"):
                try:
                    cat.find(bad)
                except CatalogError:
                    pass
                else:
                    raise AssertionError(f"find({bad!r}) found something")
            assert [w.id for w in cat.works()] == [a.id, b.id] and cat.works("audio") == [b]
            assert cat.thumbnail(a.id) == b"\x89PNG-a" and cat.thumbnail(b.id) is None
            assert cat.count() == 2 and cat.remove([a.id]) == 1 and cat.count() == 1 and cat.get(a.id) is None

    def check_idempotent_add(self) -> None:
        with self.open() as cat:
            first, created = cat.add_work(work("same"))
            again, created2 = cat.add_work(work("same", title="another title"))
            assert created and not created2 and again == first
        results: list[tuple[int, bool]] = []
        errors: list[BaseException] = []

        def add(worker: int) -> None:
            try:
                with self.open() as c:
                    for i in range(12):  # overlapping: every worker adds the same 12 works in its own order
                        ref, made = c.add_work(work(f"t{(i + worker) % 12}"))
                        results.append((ref.id, made))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=add, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len(results) == 96 and sum(made for _, made in results) == 12
        with self.open() as cat:
            assert cat.count() == 13 and len({r for r, _ in results}) == 12

    def check_ids_never_reused(self) -> None:
        with self.open() as cat:
            a, _ = cat.add_work(work("x1"))
            b, _ = cat.add_work(work("x2"))
            cat.remove([b.id])
        with self.open() as cat:
            c, _ = cat.add_work(work("x3"))
            assert c.id > b.id > a.id

    def check_index_state(self) -> None:
        with self.open() as cat:
            states = [cat.index_state()]
            a, _ = cat.add_work(work("s1"))
            b, _ = cat.add_work(work("s2"))
            states.append(cat.index_state())
            cat.add_work(work("s1"))  # the same file again: nothing changes
            assert cat.index_state() == states[-1]
            cat.remove([b.id])
            states.append(cat.index_state())
            c, _ = cat.add_work(work("s3"))  # as many works as before the removal, another set
            states.append(cat.index_state())
            t = cat.add_talent("Cy", samples=[NewSample("face", sha("sf1"), "/t/sf1.jpg")])
            states.append(cat.index_state())
            cat.grant_consent(t.id, "face", "ep1", "2026-01-01", "2026-12-31", "c-1", "legal")
            cat.append_audit("kit", {"path": "x.png", "verdict": "pass"})
            assert cat.index_state() == states[-1]  # consent and audit are not what indexes hold
            assert len(set(states)) == len(states), states
            cat.remove_talent(t.id)
            assert cat.index_state() == states[-2]  # the same works and samples as before the talent
            states.append(cat.index_state())
        with self.open() as cat:
            assert cat.index_state() == states[-1]  # the same when reopened

    def check_talent_and_consent(self) -> None:
        with self.open() as cat:
            t = cat.add_talent("Ada", union_covered=True, samples=[
                NewSample("face", sha("f1"), "/t/f1.jpg", b"thumb"), NewSample("voice", sha("v1"), "/t/v1.wav")])
            assert t.union_covered and [s.kind for s in cat.samples(talent_id=t.id)] == ["face", "voice"]
            assert cat.add_samples(t.id, [NewSample("face", sha("f1"), "/t/f1.jpg")]) == []  # same sample once
            face = cat.samples("face")[0]
            assert cat.sample_thumbnail(face.id) == b"thumb"
            try:
                cat.add_talent("Ada")
            except CatalogError:
                pass
            else:
                raise AssertionError("a second active talent with the same name was accepted")
            try:  # all or nothing: a bad sample kind rolls the talent back
                cat.add_talent("Bea", samples=[NewSample("smell", sha("s"), "/t/s")])
            except CatalogError:
                pass
            assert cat.talent_by_name("Bea") is None
            g = cat.grant_consent(t.id, "face", "ep104", "2026-01-01", "2026-12-31", "contract-7", "legal")
            r = cat.revoke_consent(g.id, "legal", "letter-9")
            assert [c.action for c in cat.consents(t.id)] == ["grant", "revoke"] and r.revokes == g.id
            cat.remove_talent(t.id)
            assert cat.talents() == [] and cat.samples(talent_id=t.id) == [] and len(cat.consents()) == 2

    def check_append_only(self) -> None:
        with self.open() as cat:
            t = cat.add_talent("Cy")
            cat.grant_consent(t.id, "face", "*", None, None, "doc")
            cat.append_audit("kit", {"sha256": sha("a"), "verdict": "block"})
            for sql in ("UPDATE consent SET project='other'", "DELETE FROM consent",
                        "UPDATE audit SET verdict='pass'", "DELETE FROM audit"):
                self._refused(cat, sql)
            assert cat.audit_entry(1).verdict == "block" and len(cat.consents()) == 1

    def check_audit_chain(self) -> None:
        with self.open() as cat:
            assert cat.check_audit().ok and cat.audit_head() is None
            # non-ASCII text: a backend hashing in SQL must hash the same UTF-8 bytes as chain_hash
            ids = [cat.append_audit(f"cli:josé{i}", {"sha256": sha(str(i)), "verdict": "pass", "i": i,
                                                     "path": "Ünïcode/漢字 🎬.png"}) for i in range(5)]
            assert ids == [1, 2, 3, 4, 5]
            entries = list(cat.audit_entries())
            assert entries[0].prev_hash == GENESIS and all(e.prev_hash == p.hash for p, e in zip(entries, entries[1:]))
            assert [e.id for e in cat.audit_entries(2, 2)] == [3, 4] and cat.audit_entry(5).record["i"] == 4
            head = cat.audit_head()
            assert head is not None and head.id == 5 and head.hash == entries[-1].hash
            result = cat.check_audit(head)
            assert result.ok and result.records == 5 and result.head == head
            assert cat.verify_audit() == (5, None)
            later = type(head)(7, head.hash)  # an anchor the trail never reached: the tail is missing
            cut = cat.check_audit(later)
            assert not cut.ok and cut.broken == 6 and "removed from the end" in cut.reason
            forged = type(head)(5, "f" * 64)
            assert cat.check_audit(forged).broken == 5

    def check_concurrent_audit(self, workers: int = 8, each: int = 15) -> None:
        errors: list[BaseException] = []

        def append(worker: int) -> None:
            try:
                with self.open() as c:
                    for i in range(each):
                        c.append_audit(f"worker{worker}", {"sha256": sha(f"{worker}-{i}"), "verdict": "pass"})
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=append, args=(w,)) for w in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        with self.open() as cat:
            result = cat.check_audit()
            assert result.ok and result.records == workers * each, result
            seen = [e.sha256 for e in cat.audit_entries()]
            assert len(set(seen)) == workers * each

    def check_fork_refused(self) -> None:
        with self.open() as cat:
            cat.append_audit("kit", {"sha256": sha("a"), "verdict": "pass"})
            canonical = '{"at":"x","caller":"evil","record":{"sha256":null,"verdict":"pass"}}'
            try:
                with cat._tx() as tx:
                    tx.execute("INSERT INTO audit (id, at, caller, sha256, verdict, record, prev_hash, hash)"
                               " VALUES (?,?,?,?,?,?,?,?)",
                               (2, "x", "evil", None, "pass", canonical, GENESIS, chain_hash(GENESIS, canonical)))
            except CatalogError:
                pass
            else:
                raise AssertionError("a second record extending the genesis head was stored")
            assert cat.check_audit().records == 1

    def check_keys(self) -> None:
        with self.open() as cat:
            key, token = cat.create_key(["check"], "pipeline")
            assert cat.verify_key(token) == key and cat.verify_key(token[:-1] + "x") is None
            assert [k.id for k in cat.api_keys()] == [key.id]
            stored = cat._all("SELECT salt, hash FROM api_keys")
            assert token.split("_")[-1] not in str(stored)
            assert not cat.revoke_key(key.id).active and cat.verify_key(token) is None
            try:
                cat.create_key(["root"])
            except CatalogError:
                pass
            else:
                raise AssertionError("an unknown scope was accepted")

    def check_schema_version(self) -> None:
        with self.open() as cat:
            assert cat.schema_version() == SCHEMA_VERSION
        with self.open() as cat:
            assert cat.schema_version() == SCHEMA_VERSION

    CHECKS = ("works", "idempotent_add", "ids_never_reused", "index_state", "talent_and_consent", "append_only", "audit_chain",
              "concurrent_audit", "fork_refused", "keys", "schema_version")
