"""Load benchmark for ``scanner serve``: latency and throughput over loopback HTTP, against
direct in-process ``Scanner.check`` measured in the same run.

    .venv/bin/python -m benchmarks.service_load [--requests 400] [--concurrency 8] [--works 50]
        [--max-batch 16] [--max-pending 64] [--detectors image.pdq] [--seconds 120]

What it does, all on this machine (the server listens on 127.0.0.1 only):

1. Builds a temp workspace: ``--works`` generated artworks registered and indexed, an API
   key, and a query set (half resized JPEG copies of registered works, half unrelated
   generated images; 768x512 sources, so each check decodes and hashes a real image).
2. **Baseline**: a fresh in-process ``Scanner`` runs ``check(path)`` on every query file in
   turn (one asset per call, as a caller without the service would): latency per call.
3. **Server**: ``scanner serve`` in a subprocess (models and indexes load once), then
   ``--requests`` uploads from 1 client (per-request overhead) and from ``--concurrency``
   clients (throughput, batching, back-pressure). Every run is bounded by ``--requests``
   and ``--seconds``; requests answered 503 are counted, not retried.
4. **Slow clients** (slowloris): ``--slow-clients`` connections send half a request head and
   then a header line a second, re-opened whenever the server closes them, for
   ``--slow-seconds``; meanwhile ``--concurrency`` well-behaved clients keep uploading and a
   prober asks ``/v1/health`` on a fresh connection every 0.2 s. Before the header guard
   (``scanner.service.guard``) ~330 such sockets made every answer 503.
5. Prints p50/p95/p99/mean latency, throughput, 503s and other failures, the server's
   batch counters, whether every verdict matched the expected one, and whether the
   well-behaved clients stayed at 200 during the slow-client phase.

The client and the server share the machine's cores, so client time is part of the figures.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from benchmarks.common import cli
from benchmarks.common.stats import percentile
from scanner.api import Scanner
from scanner.config import Settings
from scanner.testing.fixtures import artwork


def summary(label: str, lat: list[float], wall: float, n503: int = 0, failed: int = 0) -> str:
    ms = [x * 1000 for x in lat]
    thr = len(lat) / wall if wall > 0 else float("nan")
    return (f"{label:<34} n={len(lat):>4}  p50 {percentile(ms, 50):7.1f} ms  p95 {percentile(ms, 95):7.1f} ms  "
            f"p99 {percentile(ms, 99):7.1f} ms  mean {statistics.fmean(ms) if ms else float('nan'):7.1f} ms  "
            f"{thr:6.1f} req/s  503: {n503}  failed: {failed}")


def jpeg(img, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def build_workspace(root: Path, n_works: int, detectors: tuple[str, ...]) -> tuple[Settings, str, list]:
    settings = Settings(catalog=root / "catalog.db", index_dir=root / "indexes", model_cache=root / "models",
                        detectors=detectors)
    (root / "works").mkdir()
    (root / "queries").mkdir()
    sc = Scanner(settings, caller="bench")
    paths = []
    for seed in range(1, n_works + 1):
        p = root / "works" / f"work_{seed}.jpg"
        artwork(seed).save(p, quality=92)
        paths.append(p)
    sc.add_reference(paths, rights_holder="Bench")
    sc.build_index()
    _, token = sc.catalog.create_key(["check", "admin"], "bench")
    sc.catalog.close()
    queries = []  # (name, bytes, path, expected verdict)
    for i in range(16):
        if i % 2 == 0:
            data, expected = jpeg(artwork(1 + (i * 7) % n_works).resize((600, 400)), 70), "block"
        else:
            data, expected = jpeg(artwork(10_000 + i)), "pass"
        p = root / "queries" / f"q{i:02d}.jpg"
        p.write_bytes(data)
        queries.append((p.name, data, p, expected))
    return settings, token, queries


def baseline(settings: Settings, queries: list, n: int, deadline: float) -> tuple[list[float], float, int]:
    sc = Scanner(settings, caller="bench:direct")
    sc.check(queries[0][2])  # load models and indexes outside the timing, as the server does at start
    lat, wrong = [], 0
    t0 = time.perf_counter()
    for i in range(n):
        if time.monotonic() > deadline:
            break
        _, _, path, expected = queries[i % len(queries)]
        t = time.perf_counter()
        res = sc.check(path)
        lat.append(time.perf_counter() - t)
        wrong += res.verdict.value != expected
    return lat, time.perf_counter() - t0, wrong


def start_server(settings: Settings, args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SCANNER_CATALOG": str(settings.catalog), "SCANNER_INDEX_DIR": str(settings.index_dir),
           "SCANNER_DETECTORS": ",".join(settings.detectors), "SCANNER_MODEL_CACHE": str(settings.model_cache),
           "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from scanner.cli import main; main()", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--max-batch", str(args.max_batch), "--max-pending", str(args.max_pending),
         "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    until = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > until:
            proc.kill()
            raise SystemExit("server did not start:\n" + (proc.stdout.read() if proc.stdout else ""))
        time.sleep(0.1)


def load(url: str, token: str, queries: list, n: int, concurrency: int, deadline: float):
    """``n`` uploads from ``concurrency`` clients; returns latencies of 200s, wall time, 503s, failures, wrong."""
    lock = threading.Lock()
    counter = {"next": 0, "503": 0, "failed": 0, "wrong": 0}
    lat: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while True:
                with lock:
                    i = counter["next"]
                    counter["next"] += 1
                if i >= n or time.monotonic() > deadline:
                    return
                name, data, _, expected = queries[i % len(queries)]
                t = time.perf_counter()
                try:
                    r = c.post("/v1/check", files={"file": (name, data, "image/jpeg")}, headers=headers)
                except httpx.HTTPError:
                    with lock:
                        counter["failed"] += 1
                    continue
                dt = time.perf_counter() - t
                with lock:
                    if r.status_code == 200:
                        lat.append(dt)
                        counter["wrong"] += r.json()["verdict"] != expected
                    elif r.status_code == 503:
                        counter["503"] += 1
                    else:
                        counter["failed"] += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(client) for _ in range(concurrency)]:
            f.result()
    return lat, time.perf_counter() - t0, counter["503"], counter["failed"], counter["wrong"]


def slow_clients(url: str, n: int, until: float, stats: dict) -> None:
    """Hold ``n`` connections with unfinished request heads until ``until``, trickling a header
    line per second into each and re-opening any the server closes (as a slowloris client does)."""
    host, port = url.removeprefix("http://").split(":")
    socks: list[socket.socket | None] = [None] * n

    def opened() -> socket.socket | None:
        try:
            s = socket.create_connection((host, int(port)), timeout=2)
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
            s.setblocking(False)
            stats["opened"] += 1
            return s
        except OSError:
            stats["refused"] += 1
            return None

    try:
        while time.monotonic() < until:
            for i in range(n):
                s = socks[i]
                if s is not None:
                    try:
                        if s.recv(4096) == b"":  # closed by the server (its 408, or an eviction)
                            raise ConnectionResetError
                    except BlockingIOError:
                        pass  # still open, nothing said: keep it
                    except OSError:
                        stats["closed_by_server"] += 1
                        s.close()
                        s = socks[i] = None
                if s is None:
                    socks[i] = s = opened()
                if s is not None:
                    try:
                        s.send(b"X-Slow: 1\r\n")
                    except OSError:
                        pass
            stats["held"] = max(stats["held"], sum(x is not None for x in socks))
            time.sleep(max(0.0, min(1.0, until - time.monotonic())))
    finally:
        for s in socks:
            if s is not None:
                s.close()


def probe_health(url: str, until: float, statuses: list) -> None:
    """``/v1/health`` on a fresh connection every 0.2 s (no key: the bare liveness answer); records
    the status, or the name of the transport error."""
    while time.monotonic() < until:
        try:
            statuses.append(httpx.get(url + "/v1/health", timeout=10).status_code)
        except httpx.HTTPError as exc:
            statuses.append(type(exc).__name__)
        time.sleep(0.2)


def main() -> None:
    ap = cli.parser(__doc__, raw=True)
    ap.add_argument("--requests", type=int, default=400, help="uploads per HTTP run (default 400)")
    ap.add_argument("--concurrency", type=int, default=8, help="concurrent clients in the loaded run (default 8)")
    ap.add_argument("--works", type=int, default=50, help="registered works (default 50)")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--max-pending", type=int, default=64)
    ap.add_argument("--detectors", default="image.pdq", help="comma-separated (default image.pdq: no model download)")
    ap.add_argument("--seconds", type=float, default=120.0, help="time bound for each phase (default 120)")
    ap.add_argument("--slow-clients", type=int, default=400, help="slowloris connections held (default 400)")
    ap.add_argument("--slow-seconds", type=float, default=15.0, help="length of the slow-client phase (default 15)")
    args = ap.parse_args()
    detectors = cli.names(args.detectors)

    with tempfile.TemporaryDirectory(prefix="scanner-bench-") as tmpdir:
        root = Path(tmpdir)
        print(f"workspace: {args.works} works, detectors {', '.join(detectors)}; cores: {os.cpu_count()}")
        settings, token, queries = build_workspace(root, args.works, detectors)
        n_single = min(args.requests, 200)

        lat, wall, wrong = baseline(settings, queries, n_single, time.monotonic() + args.seconds)
        rows = [summary("direct Scanner.check (in-process)", lat, wall)]
        wrong_total = wrong

        tmp = root / "server-tmp"
        tmp.mkdir()
        proc, url = start_server(settings, args, tmp)
        try:
            load(url, token, queries, 16, 2, time.monotonic() + 30)  # warm-up (connections, caches)
            key = {"Authorization": f"Bearer {token}"}  # health details need a key
            before = httpx.get(url + "/v1/health", headers=key).json()["counters"]
            lat, wall, n503, failed, wrong = load(url, token, queries, n_single, 1, time.monotonic() + args.seconds)
            rows.append(summary("HTTP, 1 client", lat, wall, n503, failed))
            wrong_total += wrong
            mid = httpx.get(url + "/v1/health", headers=key).json()["counters"]
            lat, wall, n503, failed, wrong = load(url, token, queries, args.requests, args.concurrency,
                                                  time.monotonic() + args.seconds)
            rows.append(summary(f"HTTP, {args.concurrency} clients", lat, wall, n503, failed))
            wrong_total += wrong
            after = httpx.get(url + "/v1/health", headers=key).json()["counters"]

            slow = {"opened": 0, "refused": 0, "closed_by_server": 0, "held": 0}
            probes: list[int] = []
            until = time.monotonic() + args.slow_seconds
            attack = threading.Thread(target=slow_clients, args=(url, args.slow_clients, until, slow), daemon=True)
            attack.start()
            time.sleep(min(2.0, args.slow_seconds / 4))  # let the slow connections pile up first
            prober = threading.Thread(target=probe_health, args=(url, until, probes), daemon=True)
            prober.start()
            lat, wall, n503, failed, wrong = load(url, token, queries, 10**9, args.concurrency, until)
            rows.append(summary(f"HTTP, {args.concurrency} clients + slowloris", lat, wall, n503, failed))
            wrong_total += wrong
            attack.join(args.slow_seconds + 30)
            prober.join(30)
            guard = httpx.get(url + "/v1/health", headers=key).json().get("connections")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        leftovers = [p for p in tmp.rglob("*")]

    print()
    for row in rows:
        print(row)
    for label, a, b in (("1 client", before, mid), (f"{args.concurrency} clients", mid, after)):
        checked, batches = b["checked"] - a["checked"], b["batches"] - a["batches"]
        print(f"server batches, {label:<11}: {batches} batches for {checked} checks "
              f"(mean batch {checked / batches if batches else 0:.2f})")
    print(f"verdicts differing from the expected one: {wrong_total}; temp files left after shutdown: {len(leftovers)}")
    health_ok = sum(s == 200 for s in probes)
    stayed = health_ok == len(probes) and n503 == 0 and failed == 0 and bool(lat)
    print(f"slow-client phase ({args.slow_seconds:g} s): {args.slow_clients} slowloris connections, "
          f"{slow['opened']} opened ({slow['refused']} refused), {slow['closed_by_server']} closed by the server, "
          f"at most {slow['held']} open on the client side; server guard: {guard}")
    print(f"well-behaved clients during it: {len(lat)} checks answered 200 ({n503} x 503, {failed} other), "
          f"/v1/health {health_ok}/{len(probes)} x 200 -> {'stayed at 200' if stayed else 'NOT all 200'}"
          + ("" if stayed else f" (others: {sorted(set(map(str, probes)) - {'200'})})"))


if __name__ == "__main__":
    main()
