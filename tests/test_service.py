"""The HTTP service over real loopback HTTP: uvicorn in a thread (one test runs `scanner serve` itself).

PDQ only and generated images, so no model downloads; the whole module runs in seconds.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("python_multipart")

from scanner.api import Scanner  # noqa: E402
from scanner.catalog import Catalog  # noqa: E402
from scanner.config import Settings  # noqa: E402
from scanner.service import ServiceConfig, create_app  # noqa: E402
from scanner.service.server import BackgroundServer  # noqa: E402
from scanner.testing.fixtures import artwork  # noqa: E402
from tests.conftest import png_bomb  # noqa: E402

PDQ = "image.pdq"


def jpeg(img, quality=80) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@dataclass
class Workspace:
    root: Path  # allowed root for server-side paths
    settings: Settings
    check: str  # token with scope check
    admin: str  # token with scope admin
    revoked: str
    images: dict[str, bytes] = field(default_factory=dict)

    def catalog(self) -> Catalog:
        return Catalog(self.settings.catalog)


@pytest.fixture(scope="module")
def _template(tmp_path_factory):
    """Works 1-3 registered and indexed, three keys, query images; built once and copied per test."""
    base = tmp_path_factory.mktemp("service-template")
    (base / "works").mkdir()
    settings = Settings(catalog=base / "ws" / "catalog.db", index_dir=base / "ws" / "indexes",
                        model_cache=base / "ws" / "models", detectors=(PDQ,))
    s = Scanner(settings)
    paths = []
    for seed in (1, 2, 3, 4):
        p = base / "works" / f"work_{seed}.jpg"
        artwork(seed).save(p, quality=92)
        paths.append(p)
    s.add_reference(paths[:3], rights_holder="Studio X")  # work 4 is registered later (hot swap)
    s.build_index()
    check = s.catalog.create_key(["check"], "pipeline")[1]
    admin = s.catalog.create_key(["admin"], "ops")[1]
    revoked_key, revoked = s.catalog.create_key(["check", "admin"], "old")
    s.catalog.revoke_key(revoked_key.id)
    s.catalog.close()
    images = {
        "copy1": jpeg(artwork(1).resize((400, 267)), 60),
        "copy2": jpeg(artwork(2).resize((512, 341))),
        "copy4": jpeg(artwork(4).resize((400, 267)), 70),
        "original": jpeg(artwork(501)),
        "original2": jpeg(artwork(502)),
    }
    return base, check, admin, revoked, images


@pytest.fixture
def ws(_template, tmp_path) -> Workspace:
    base, check, admin, revoked, images = _template
    shutil.copytree(base / "ws", tmp_path / "ws")
    shutil.copytree(base / "works", tmp_path / "works")
    settings = Settings(catalog=tmp_path / "ws" / "catalog.db", index_dir=tmp_path / "ws" / "indexes",
                        model_cache=tmp_path / "ws" / "models", detectors=(PDQ,))
    root = tmp_path / "assets"
    root.mkdir()
    return Workspace(root, settings, check, admin, revoked, images)


@dataclass
class Hooks:
    """Test controls inside the scanner the service runs: hold a batch after its indexes are fixed."""

    gate: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)
    scan_sizes: list[int] = field(default_factory=list)

    def __post_init__(self):
        self.gate.set()


class GatedScanner(Scanner):
    hooks: Hooks

    def scan(self, paths, *args, **kwargs):
        items = list(paths)
        self.hooks.scan_sizes.append(len(items))
        return super().scan(items, *args, **kwargs)

    def _search(self, decoded, ctx):
        self.hooks.entered.set()
        assert self.hooks.gate.wait(20), "test gate never opened"
        return super()._search(decoded, ctx)


@dataclass
class Running:
    url: str
    engine: object
    client: "httpx.Client"
    hooks: Hooks

    @property
    def upload_dir(self) -> Path:
        return self.engine.upload_dir

    def check(self, key: str | None, name: str = "asset.jpg", data: bytes = b"", fields: dict | None = None,
              client=None, **kw):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return (client or self.client).post("/v1/check", files={"file": (name, data, "image/jpeg")},
                                            data=fields or {}, headers=headers, **kw)

    def check_path(self, key: str, path, **extra):
        return self.client.post("/v1/check", json={"path": str(path), **extra},
                                headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def serve(ws):
    servers = []

    def start(**cfg) -> Running:
        hooks = Hooks()

        def factory(settings, caller="api"):
            sc = GatedScanner(settings, caller)
            sc.hooks = hooks
            return sc

        config = ServiceConfig(**{"allow_roots": (ws.root,), "index_poll_s": 0.1, **cfg})
        app = create_app(ws.settings, config, scanner_factory=factory)
        srv = BackgroundServer(app).start()
        client = httpx.Client(base_url=srv.url, timeout=30)
        servers.append((srv, client, hooks))
        return Running(srv.url, app.state.engine, client, hooks)

    yield start
    for srv, client, hooks in servers:
        hooks.gate.set()
        client.close()
        srv.stop()


def wait_until(cond, timeout=10.0, what="condition"):
    until = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > until:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def in_thread(fn, *args):
    pool = ThreadPoolExecutor(1)
    fut = pool.submit(fn, *args)
    pool.shutdown(wait=False)
    return fut


# ----- health, auth, scopes ------------------------------------------------------------------
def test_every_detector_is_warmed_up_before_the_service_is_ready(ws, serve, monkeypatch):
    """Models loaded on first use (image.face's network) load at start, not on the first request."""
    from scanner.detectors.base import Detector

    warmed = []
    monkeypatch.setattr(Detector, "warm_up", lambda self: warmed.append(self.name))
    srv = serve()
    wait_until(lambda: srv.client.get("/v1/health").json()["ready"], what="ready")
    assert warmed == [PDQ]


def test_health_without_a_key_is_bare_liveness_and_details_need_a_key(ws, serve):
    srv = serve()
    r = srv.client.get("/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "ready": True}  # no models, checksums or last_error for anyone
    assert srv.client.get("/v1/health", headers={"Authorization": "Bearer sk_nothing"}).status_code == 401
    assert srv.client.get("/v1/health", headers={"Authorization": f"Bearer {ws.revoked}"}).status_code == 401
    r = srv.client.get("/v1/health", headers={"Authorization": f"Bearer {ws.check}"})
    assert r.status_code == 200 and "models" in r.json()  # any valid key sees the details
    r = srv.client.get("/v1/health", headers={"Authorization": f"Bearer {ws.admin}"})
    assert r.status_code == 200
    h = r.json()
    assert h["ready"] and h["status"] == "ok" and h["auth"] is True and h["last_error"] is None
    assert h["models"][PDQ] == {"model": "pdq", "model_id": "pdq", "weights_sha256": "none", "modality": "image"}
    disk = Scanner(ws.settings).store.manifest(PDQ)
    idx = h["indexes"][PDQ]
    assert idx["serving"]["checksum"] == idx["on_disk"]["checksum"] == disk.checksum
    assert idx["serving"]["count"] == 3 and idx["current"] is True
    assert srv.client.get("/openapi.json").json()["paths"]["/v1/check"]["post"]["requestBody"]["content"].keys() \
        == {"multipart/form-data", "application/json"}
    assert srv.client.get("/docs").status_code == 200


def test_keys_and_scopes(ws, serve):
    srv = serve()
    img = ws.images["original"]
    none = srv.check(None, data=img)
    assert none.status_code == 401 and none.json()["error"]["code"] == "unauthorized"
    assert none.headers["www-authenticate"].startswith("Bearer")
    for bad in (ws.check[:-2] + "xx", "sk_nothing", ws.revoked, "Basic abc"):
        r = srv.check(bad, data=img)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_key", bad
    assert srv.check(ws.admin, data=img).status_code == 403
    assert srv.check(ws.admin, data=img).json()["error"]["code"] == "insufficient_scope"
    assert srv.check(ws.check, data=img).status_code == 200
    ok = srv.client.post("/v1/check", files={"file": ("a.jpg", img)}, headers={"X-API-Key": ws.check})
    assert ok.status_code == 200
    assert srv.client.get("/v1/catalog/stats").status_code == 401
    assert srv.client.get("/v1/catalog/stats", headers={"Authorization": f"Bearer {ws.check}"}).status_code == 403
    assert srv.client.get("/v1/catalog/stats", headers={"Authorization": f"Bearer {ws.revoked}"}).status_code == 401
    stats = srv.client.get("/v1/catalog/stats", headers={"Authorization": f"Bearer {ws.admin}"})
    assert stats.status_code == 200
    body = stats.json()
    assert body["works"]["total"] == 3 and body["works"]["by_clearance"] == {"uncleared": 3}
    assert body["talent"]["total"] == 0 and body["indexes"][PDQ]["count"] == 3
    # revocation takes effect on the next request, without a restart
    key_id = ws.check.split("_")[1]
    cat = ws.catalog()
    cat.revoke_key(key_id)
    cat.close()
    assert srv.check(ws.check, data=img).status_code == 401


def test_no_auth_mode_records_an_anonymous_caller(ws, serve):
    srv = serve(require_auth=False)
    r = srv.check(None, data=ws.images["original"])
    assert r.status_code == 200
    assert ws.catalog().audit_entry(int(r.headers["x-audit-id"])).caller == "service:anonymous"


# ----- uploads -------------------------------------------------------------------------------
def test_upload_answer_matches_scanner_check_and_is_audited(ws, serve, tmp_path):
    srv = serve()
    data = ws.images["copy1"]
    r = srv.check(ws.check, "render_0042.jpg", data, {"stage": "ideation", "project": "Nightfall"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["verdict"] == "block" and got["path"] == "render_0042.jpg" and got["stage"] == "ideation"
    assert got["findings"][0]["reference_title"] == "work_1"
    local = tmp_path / "local.jpg"
    local.write_bytes(data)
    direct = Scanner(ws.settings.with_overrides(stage="ideation", project="Nightfall")).check(local).to_dict()
    assert {**got, "path": None} == {**direct, "path": None}  # the same JSON as `scanner check`
    entry = ws.catalog().audit_entry(int(r.headers["x-audit-id"]))
    assert entry.caller == "key:" + ws.check.split("_")[1]
    assert entry.record["path"] == "render_0042.jpg" and entry.record["source"] == "upload"
    assert entry.record["sha256"] == hashlib.sha256(data).hexdigest() == got["sha256"]
    assert entry.record["project"] == "Nightfall" and entry.record["stage"] == "ideation"
    assert entry.record["request_id"] == r.headers["x-request-id"]
    assert str(srv.upload_dir) not in json.dumps(entry.record)  # the private temp path is never recorded
    assert srv.check(ws.check, "o.jpg", ws.images["original"]).json()["verdict"] == "pass"
    # defaults come from the server's settings
    assert srv.check(ws.check, "c.jpg", data).json()["stage"] == "final"


def test_bad_uploads_get_clean_answers_and_leave_no_files(ws, serve):
    srv = serve(max_upload_bytes=200_000)
    key = {"Authorization": f"Bearer {ws.check}"}
    garbage = srv.check(ws.check, "notes.jpg", b"this is not an image at all" * 10)
    assert garbage.status_code == 200 and garbage.json()["verdict"] == "error"
    assert "not a recognised" in garbage.json()["error"]
    bomb = srv.check(ws.check, "bomb.png", png_bomb())
    assert bomb.status_code == 200 and bomb.json()["verdict"] == "error"
    assert "decompression bomb" in bomb.json()["error"]
    empty = srv.check(ws.check, "empty.jpg", b"")
    assert empty.status_code == 200 and empty.json()["verdict"] == "error"
    big = os.urandom(300_000)
    r = srv.check(ws.check, "big.jpg", big)  # Content-Length over the limit: refused before reading it
    assert r.status_code == 413 and r.json()["error"]["code"] == "upload_too_large"

    boundary = "sc4nnerb0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + big + f"\r\n--{boundary}--\r\n".encode()

    def chunks():
        for i in range(0, len(body), 16384):
            yield body[i:i + 16384]

    r = srv.client.post("/v1/check", content=chunks(),  # chunked: stopped while streaming
                        headers={**key, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413
    r = srv.client.post("/v1/check", data={"stage": "final"}, files={"other": ("x", b"1")}, headers=key)
    assert r.status_code == 400 and "'file'" in r.json()["error"]["message"]
    r = srv.client.post("/v1/check", files=[("file", ("a.jpg", b"1")), ("file", ("b.jpg", b"2"))], headers=key)
    assert r.status_code == 400
    r = srv.client.post("/v1/check", content=b"raw", headers={**key, "Content-Type": "image/jpeg"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    r = srv.client.post("/v1/check", content=b"--x\r\ngarbage", headers={**key, "Content-Type": "multipart/form-data"})
    assert r.status_code == 400
    assert srv.check(ws.check, data=ws.images["original"], fields={"stage": "launch"}).status_code == 422
    assert srv.check(ws.check, data=ws.images["original"], fields={"project": "p" * 500}).status_code == 422
    r = srv.client.post("/v1/check", content=b"{nope", headers={**key, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    assert srv.client.post("/v1/check", json=["x"], headers=key).status_code == 400
    assert srv.client.get("/v1/nothing").json()["error"]["code"] == "not_found"
    assert srv.client.get("/v1/check").status_code == 405
    wait_until(lambda: not any(srv.upload_dir.iterdir()), what="temp files removed")
    assert srv.engine.pending == 0


def test_temp_file_is_private_while_checked_and_gone_after(ws, serve):
    srv = serve()
    assert stat.S_IMODE(srv.upload_dir.stat().st_mode) == 0o700
    srv.hooks.gate.clear()
    fut = in_thread(srv.check, ws.check, "x.jpg", ws.images["copy2"])
    assert srv.hooks.entered.wait(10)
    files = list(srv.upload_dir.iterdir())
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    srv.hooks.gate.set()
    assert fut.result(10).json()["verdict"] == "block"
    assert list(srv.upload_dir.iterdir()) == []


# ----- server-side paths ---------------------------------------------------------------------
def test_server_paths_stay_inside_the_allowed_roots(ws, serve, tmp_path):
    root = ws.root
    (root / "in.jpg").write_bytes(ws.images["copy1"])
    (root / "sub").mkdir()
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(ws.images["copy2"])
    (root / "link_in.jpg").symlink_to(root / "in.jpg")
    (root / "link_out.jpg").symlink_to(outside)
    (root / "dir_out").symlink_to(tmp_path)
    (root / "zero").symlink_to("/dev/zero")
    os.mkfifo(root / "pipe")
    srv = serve(allow_roots=(root, Path("/dev")))

    ok = srv.check_path(ws.check, root / "in.jpg", stage="ideation")
    assert ok.status_code == 200 and ok.json()["verdict"] == "block" and ok.json()["path"] == str(root / "in.jpg")
    assert ok.json()["stage"] == "ideation"
    entry = ws.catalog().audit_entry(int(ok.headers["x-audit-id"]))
    assert entry.record["source"] == "path" and entry.record["path"] == str(root / "in.jpg")
    linked = srv.check_path(ws.check, root / "link_in.jpg")
    assert linked.status_code == 200 and linked.json()["path"] == str(root / "in.jpg")  # the resolved file

    def code(path):
        r = srv.check_path(ws.check, path)
        return r.status_code, r.json()["error"]["code"]

    assert code(f"{root}/../outside.jpg") == (403, "path_not_allowed")
    assert code(f"{root}/sub/../../outside.jpg") == (403, "path_not_allowed")
    assert code(outside) == (403, "path_not_allowed")
    assert code("/etc/passwd") == (403, "path_not_allowed")
    assert code(root / "link_out.jpg") == (403, "path_not_allowed")
    assert code(root / "dir_out" / "outside.jpg") == (403, "path_not_allowed")
    assert code(root / "zero") == (400, "not_a_regular_file")  # resolves to /dev/zero: inside /dev, a device
    assert code("/dev/zero") == (400, "not_a_regular_file")
    t0 = time.monotonic()
    assert code(root / "pipe") == (400, "not_a_regular_file")
    assert time.monotonic() - t0 < 5  # a FIFO is never opened for a blocking read
    assert code(root / "sub") == (400, "not_a_regular_file")
    assert code(root) == (400, "not_a_regular_file")
    assert code(root / "missing.jpg") == (404, "not_found")
    assert code("in.jpg") == (400, "bad_request")  # relative
    assert code(f"{root}/in.jpg\x00.png") == (400, "bad_request")
    assert srv.client.post("/v1/check", json={"path": 42}, headers={"Authorization": f"Bearer {ws.check}"}) \
        .status_code == 400
    assert srv.check_path(ws.admin, root / "in.jpg").status_code == 403  # scope before path
    assert srv.engine.pending == 0


def test_server_paths_are_off_without_allowed_roots(ws, serve):
    (ws.root / "in.jpg").write_bytes(ws.images["copy1"])
    srv = serve(allow_roots=())
    r = srv.check_path(ws.check, ws.root / "in.jpg")
    assert r.status_code == 403 and r.json()["error"]["code"] == "paths_disabled"


# ----- hot swap --------------------------------------------------------------------------------
def test_rebuilt_index_is_picked_up_live_and_in_flight_checks_finish_on_the_old_one(ws, serve):
    srv = serve()
    srv.client.headers["Authorization"] = f"Bearer {ws.admin}"  # health details need a key
    old = srv.client.get("/v1/health").json()["indexes"][PDQ]["serving"]["checksum"]
    srv.hooks.gate.clear()
    in_flight = in_thread(srv.check, ws.check, "copy4.jpg", ws.images["copy4"])
    assert srv.hooks.entered.wait(10)  # its batch has fixed its indexes and is held

    other = Scanner(ws.settings, caller="cli:editor")  # another process's view: own catalog and store
    other.add_reference([ws.settings.catalog.parent.parent / "works" / "work_4.jpg"], rights_holder="Studio Y")
    other.build_index()
    manifest_path = ws.settings.index_dir / PDQ / "manifest.json"
    new = other.store.manifest(PDQ).checksum
    stamp = manifest_path.stat().st_mtime_ns
    assert new != old

    srv.hooks.gate.set()
    first = in_flight.result(10).json()
    assert first["verdict"] == "pass" and first["indexes"][PDQ] == old[:16]  # finished on the old index
    wait_until(lambda: srv.client.get("/v1/health").json()["indexes"][PDQ]["current"], what="idle reload")
    h = srv.client.get("/v1/health").json()["indexes"][PDQ]
    assert h["serving"]["checksum"] == new and h["serving"]["count"] == 4
    second = srv.check(ws.check, "copy4.jpg", ws.images["copy4"]).json()
    assert second["verdict"] == "block" and second["indexes"][PDQ] == new[:16]
    assert second["findings"][0]["rights_holder"] == "Studio Y"
    # the server loaded the rebuilt index; it did not write one of its own
    assert manifest_path.stat().st_mtime_ns == stamp and other.store.manifest(PDQ).checksum == new


# ----- batching, back-pressure, timeouts ------------------------------------------------------
def test_waiting_requests_are_checked_in_one_batch(ws, serve):
    srv = serve(max_batch=8, batch_wait_ms=50)
    srv.hooks.gate.clear()
    first = in_thread(srv.check, ws.check, "a.jpg", ws.images["original"])
    assert srv.hooks.entered.wait(10)
    names = ["copy1", "copy2", "original", "original2", "copy1"]
    pool = ThreadPoolExecutor(len(names))
    clients = [httpx.Client(base_url=srv.url, timeout=30) for _ in names]
    futs = [pool.submit(srv.check, ws.check, f"{n}.jpg", ws.images[n], None, c) for n, c in zip(names, clients)]
    wait_until(lambda: srv.engine.queued == 5, what="requests queued")
    srv.hooks.gate.set()
    assert first.result(10).status_code == 200
    verdicts = [f.result(10).json()["verdict"] for f in futs]
    assert verdicts == ["block", "block", "pass", "pass", "block"]
    assert srv.hooks.scan_sizes == [1, 5]  # the five waiting uploads went through one Scanner.scan call
    for c in clients:
        c.close()
    pool.shutdown()


def test_full_queue_answers_503_with_retry_after(ws, serve):
    srv = serve(max_pending=2)
    srv.hooks.gate.clear()
    held = [in_thread(srv.check, ws.check, f"{i}.jpg", ws.images["original"], None,
                      httpx.Client(base_url=srv.url, timeout=30)) for i in range(2)]
    wait_until(lambda: srv.engine.pending == 2, what="two requests held")
    for _ in range(4):
        r = srv.check(ws.check, "more.jpg", ws.images["original"])
        assert r.status_code == 503 and r.json()["error"]["code"] == "busy"
        assert int(r.headers["retry-after"]) >= 1
    assert srv.client.get("/v1/health").status_code == 200  # health is not queued
    srv.hooks.gate.set()
    assert [f.result(10).status_code for f in held] == [200, 200]
    assert srv.check(ws.check, "after.jpg", ws.images["original"]).status_code == 200
    assert srv.engine.counters["rejected_busy"] == 4
    assert list(srv.upload_dir.iterdir()) == []


def test_slow_checks_answer_504_and_still_clean_up(ws, serve):
    srv = serve(request_timeout_s=1.0)
    srv.hooks.gate.clear()
    running = in_thread(srv.check, ws.check, "running.jpg", ws.images["original"])
    assert srv.hooks.entered.wait(10)  # taken by the worker, held there
    queued = in_thread(srv.check, ws.check, "queued.jpg", ws.images["copy1"], None,
                       httpx.Client(base_url=srv.url, timeout=30))
    for fut in (running, queued):
        r = fut.result(10)
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
    # the queued job was withdrawn and its file removed at once; the running one's file stays until it ends
    assert len(list(srv.upload_dir.iterdir())) == 1
    srv.hooks.gate.set()
    wait_until(lambda: not any(srv.upload_dir.iterdir()), what="temp file removed after the late check")
    wait_until(lambda: srv.engine.counters["checked"] == 1, what="late check done")
    assert srv.hooks.scan_sizes == [1]  # the withdrawn job never reached the models
    assert srv.engine.pending == 0 and srv.engine.counters["timed_out"] == 2
    assert [e.record["path"] for e in ws.catalog().audit_entries()] == ["running.jpg"]


def test_bounded_load_from_8_clients(ws, serve):
    srv = serve(max_pending=32)
    n, concurrency = 200, 8
    names = ["copy1", "original", "copy2", "original2"]
    expected = {"copy1": "block", "copy2": "block", "original": "pass", "original2": "pass"}

    def client_loop(worker: int) -> list[tuple[str, int, str | None]]:
        out = []
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for i in range(worker, n, concurrency):
                name = names[i % len(names)]
                r = srv.check(ws.check, f"{name}-{i}.jpg", ws.images[name], client=c)
                out.append((name, r.status_code, r.json().get("verdict")))
        return out

    t0 = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        results = [x for part in pool.map(client_loop, range(concurrency)) for x in part]
    elapsed = time.monotonic() - t0
    assert len(results) == n and elapsed < 60
    statuses = {s for _, s, _ in results}
    assert statuses <= {200, 503}, statuses
    ok = [(name, v) for name, s, v in results if s == 200]
    assert all(v == expected[name] for name, v in ok)
    assert len(ok) >= n * 0.9
    counters = srv.engine.counters
    assert counters["checked"] == len(ok) and counters["batches"] < counters["checked"]  # batching happened
    cat = ws.catalog()
    assert cat.verify_audit() == (len(ok), None)
    assert list(srv.upload_dir.iterdir()) == [] and srv.engine.pending == 0


# ----- the real command ------------------------------------------------------------------------
def test_scanner_serve_command(ws, tmp_path):
    (ws.root / "in.jpg").write_bytes(ws.images["copy1"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    env = {**os.environ, "SCANNER_CATALOG": str(ws.settings.catalog), "SCANNER_INDEX_DIR": str(ws.settings.index_dir),
           "SCANNER_DETECTORS": PDQ, "SCANNER_MODEL_CACHE": str(tmp_path / "models"), "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from scanner.cli import main; main()", "serve", "--port", str(port),
         "--allow-root", str(ws.root), "--log-level", "warning"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        until = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < until, proc.stdout.read() if proc.poll() else "timeout"
            time.sleep(0.05)
        key = {"Authorization": f"Bearer {ws.check}"}
        up = httpx.post(url + "/v1/check", files={"file": ("c.jpg", ws.images["copy1"])}, headers=key)
        assert up.status_code == 200 and up.json()["verdict"] == "block"
        path = httpx.post(url + "/v1/check", json={"path": str(ws.root / "in.jpg")}, headers=key)
        assert path.status_code == 200 and path.json()["verdict"] == "block"
        assert len(list(tmp.iterdir())) == 1  # the private upload folder
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode in (0, -signal.SIGINT, 128 + signal.SIGINT), output
    assert "serving on" in output and list(tmp.iterdir()) == []  # upload folder removed at shutdown


def test_serve_command_refuses_a_missing_root(ws, monkeypatch):
    from typer.testing import CliRunner

    from scanner.cli import app

    monkeypatch.setenv("SCANNER_CATALOG", str(ws.settings.catalog))
    monkeypatch.setenv("COLUMNS", "250")
    r = CliRunner().invoke(app, ["serve", "--allow-root", str(ws.root / "nope")])
    assert r.exit_code == 4 and "not an existing directory" in r.output and "loading" not in r.output


# ----- slow and abusive clients (issue 15) -----------------------------------------------------------
def _raw(url: str, head: bytes, timeout: float = 10.0) -> socket.socket:
    """A raw loopback connection that has sent ``head`` (maybe half a request) and nothing more."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.sendall(head)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the socket times out)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_slow_request_heads_do_not_lock_other_clients_out(ws, serve):
    # uvicorn's cap is max_pending * 4 + 64 = 72 connections: 150 unfinished heads used to hold them all,
    # and every other client got 503 for as long as the sockets stayed open
    srv = serve(max_pending=2)
    slow = []
    try:
        for _ in range(150):
            try:
                slow.append(_raw(srv.url, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"))
            except OSError:
                pass  # refused or reset: fine, the point is what the others get
        statuses = []
        for i in range(10):
            for s in slow[i::10]:  # keep trickling header bytes, as a slowloris client does
                try:
                    s.send(b"X-a: b\r\n")
                except OSError:
                    pass
            with httpx.Client(base_url=srv.url, timeout=10) as fresh:  # a new connection every time
                statuses.append(fresh.get("/v1/health").status_code)
            statuses.append(srv.check(ws.check, "o.jpg", ws.images["original"]).status_code)
        assert statuses == [200] * 20, statuses
        h = srv.client.get("/v1/health", headers={"Authorization": f"Bearer {ws.admin}"}).json()["connections"]
        assert h["sending_head"] <= 32 and h["evicted"] >= 150 - 32
    finally:
        for s in slow:
            s.close()


def test_a_request_head_must_arrive_within_the_header_timeout(ws, serve):
    srv = serve(header_timeout_s=1.0)
    sock = _raw(srv.url, b"GET /v1/health HTTP/1.1\r\n")
    t0 = time.monotonic()
    try:
        for _ in range(20):  # trickling bytes does not extend the deadline
            try:
                sock.send(b"X")
            except OSError:
                break
            time.sleep(0.2)
        answer = _answer(sock)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"header_timeout" in answer
    assert time.monotonic() - t0 < 3.5
    # a keep-alive follow-up request is timed the same way
    sock = _raw(srv.url, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/health HTTP/1.1\r\n")
    try:
        answer = _answer(sock)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1 408") == 1


def test_stalled_json_bodies_get_408_and_free_their_slots(ws, serve):
    (ws.root / "in.jpg").write_bytes(ws.images["copy1"])
    srv = serve(max_pending=2, request_timeout_s=1.5)
    head = (f"POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ws.check}\r\n"
            "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"path\": ").encode()
    stalled = [_raw(srv.url, head) for _ in range(2)]
    t0 = time.monotonic()
    try:
        answers = [_answer(s) for s in stalled]
    finally:
        for s in stalled:
            s.close()
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
    assert b"JSON body did not finish" in answers[0] and time.monotonic() - t0 < 6
    wait_until(lambda: srv.engine.pending == 0, what="slots freed")
    r = srv.check_path(ws.check, ws.root / "in.jpg")
    assert r.status_code == 200 and r.json()["verdict"] == "block"


def test_a_file_under_another_form_field_is_named_as_such(ws, serve):
    srv = serve()
    r = srv.client.post("/v1/check", files={"image": ("shot.jpg", ws.images["copy1"])},
                        headers={"Authorization": f"Bearer {ws.check}"})
    assert r.status_code == 400
    msg = r.json()["error"]["message"]
    assert "no file part named 'file'" in msg and "'image'" in msg and "over" not in msg
    r = srv.client.post("/v1/check", data={"stage": "final"}, headers={"Authorization": f"Bearer {ws.check}"},
                        files={"other": ("x", b"1")})
    assert r.status_code == 400 and "no file part named 'file'" in r.json()["error"]["message"]
    assert list(srv.upload_dir.iterdir()) == []


def _start_serve(ws, tmp_path, tmp: Path) -> tuple[subprocess.Popen, str]:
    """`scanner serve` in a child process with TMPDIR=tmp; returns it with its URL once healthy."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SCANNER_CATALOG": str(ws.settings.catalog), "SCANNER_INDEX_DIR": str(ws.settings.index_dir),
           "SCANNER_DETECTORS": PDQ, "SCANNER_MODEL_CACHE": str(tmp_path / "models"), "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from scanner.cli import main; main()", "serve", "--port", str(port),
         "--allow-root", str(ws.root), "--log-level", "warning"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    until = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > until:
            proc.kill()
            raise AssertionError(proc.communicate()[0])
        time.sleep(0.05)


def test_a_killed_servers_half_written_upload_is_removed_on_the_next_start(ws, serve, tmp_path):
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    proc, url = _start_serve(ws, tmp_path, tmp)
    boundary = "b0undary"
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n\r\n").encode()
    head = (f"POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ws.check}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 10000000\r\n\r\n").encode()
    sock = _raw(url, head + part + b"\xff\xd8\xff" + os.urandom(200_000))
    try:
        (folder,) = list(tmp.iterdir())
        wait_until(lambda: any(f.stat().st_size > 0 for f in (folder / "files").iterdir()), what="upload begun")
        proc.kill()  # SIGKILL: no shutdown handler runs
        proc.communicate(timeout=30)
    finally:
        sock.close()
    assert list((folder / "files").iterdir())  # the half-written upload is still there

    live, _ = _start_serve(ws, tmp_path, tmp)  # the next start removes it
    try:
        assert not folder.exists()
        (live_folder,) = list(tmp.iterdir())
        srv = serve(temp_parent=tmp)  # a second server beside a running one leaves the live folder alone
        assert live_folder.exists() and srv.upload_dir.parent.parent == tmp and len(list(tmp.iterdir())) == 2
    finally:
        live.send_signal(signal.SIGINT)
        live.communicate(timeout=30)


def test_many_idle_keep_alive_connections_do_not_lock_other_clients_out(ws, serve):
    # one cheap request each, then idle for uvicorn's 5 s keep-alive: 150 of them used to fill the
    # 72-connection cap just as unfinished heads did
    srv = serve(max_pending=2)
    idle = []
    try:
        for _ in range(150):
            s = _raw(srv.url, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(4096)  # its answer (200, or uvicorn's 503 once the cap is full)
            idle.append(s)
        statuses = []
        for _ in range(5):
            with httpx.Client(base_url=srv.url, timeout=10) as fresh:
                statuses.append(fresh.get("/v1/health").status_code)
        assert statuses == [200] * 5, statuses
        h = srv.client.get("/v1/health", headers={"Authorization": f"Bearer {ws.admin}"}).json()["connections"]
        assert h["idle"] <= 32 and h["idle_closed"] >= 150 - 32
    finally:
        for s in idle:
            s.close()
