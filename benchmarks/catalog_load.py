"""Load benchmark for the shared catalog: many processes appending audit records at once.

    .venv/bin/python -m benchmarks.catalog_load [--shards 8] [--workers 2] [--records 300]
        [--work-ms 0] [--url postgresql://...]

What it does:

1. Starts a throw-away PostgreSQL server (``scanner.testing.pg_cluster``, unix socket, fsync on
   so commits cost what they cost in production) unless ``--url`` names an empty database.
2. For each backend, PostgreSQL and SQLite on a local temp disk: ``--shards`` processes play
   ``scanner scan --shard K/N`` tasks and ``--workers`` processes play ``scanner serve`` workers.
   All start together; each registers a few overlapping works (idempotent adds racing) and then
   appends ``--records`` audit records shaped like a scan's (a result with findings, models,
   indexes, weights), optionally spending ``--work-ms`` per asset as if checking it.
3. Checks: every process finished, the trail holds exactly processes × records entries, each
   (caller, sequence number) exactly once, ``scanner audit verify`` prints ``ok``, and the
   overlapping works were registered once each.
4. Prints appends/s over the whole run and the latency of one append (p50, p95, mean, max) per
   backend. PostgreSQL queues writers fairly on its advisory lock (latency ~ writers x commit
   time); SQLite's busy handler lets the writer that just committed go again while the others
   back off, so its median is low and its tail long.

Both backends here run on the same machine and disk as the writers; on a farm the PostgreSQL
figure also pays a network round trip per statement, and SQLite is not an option at all.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import cli
from scanner.catalog import Catalog
from scanner.testing.catalog_kit import work


def _record(caller: str, seq: int) -> dict:
    sha = f"{abs(hash((caller, seq))):064x}"[-64:]
    return {"sha256": sha, "path": f"shots/{caller}/frame_{seq:05d}.exr", "media_type": "image",
            "verdict": "block" if seq % 17 == 0 else "pass", "stage": "final", "project": "ep104", "seq": seq,
            "findings": [{"detector": "image.sscd", "reference_id": seq % 50 + 1, "score": 0.91, "threshold": 0.8}]
            if seq % 17 == 0 else [],
            "models": {"image.pdq": "pdq", "image.sscd": "sscd-disc-mixup"},
            "indexes": {"image.pdq": "a" * 64, "image.sscd": "b" * 64}, "weights": {"image.sscd": "c" * 64},
            "calibration": "d" * 16}


def _writer(target: str, caller: str, records: int, work_ms: float, start: mp.Event, out: mp.Queue) -> None:
    try:
        with Catalog(target) as cat:
            start.wait()
            for i in range(6):  # every process registers the same six works: adds race, each lands once
                cat.add_work(work(f"shared-{i}"))
            lat = []
            for seq in range(records):
                if work_ms:
                    time.sleep(work_ms / 1000)
                t = time.perf_counter()
                cat.append_audit(caller, _record(caller, seq))
                lat.append(time.perf_counter() - t)
        out.put((caller, lat, None))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        out.put((caller, [], repr(exc)))


def run(target: str, label: str, shards: int, workers: int, records: int, work_ms: float) -> dict:
    """Run the writers against ``target`` and check the result; returns the figures."""
    with Catalog(target):  # create the schema before the clock starts
        pass
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    callers = [f"cli:shard{k + 1}of{shards}" for k in range(shards)] + [f"key:worker{w}" for w in range(workers)]
    procs = [ctx.Process(target=_writer, args=(target, c, records, work_ms, start, out)) for c in callers]
    for p in procs:
        p.start()
    time.sleep(2.0)  # let every process import and connect, so the clock measures appends only
    t0 = time.perf_counter()
    start.set()
    results = [out.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(60)
    errors = [(c, e) for c, _, e in results if e]
    lat = [x for _, ls, _ in results for x in ls]
    with Catalog(target) as cat:
        check = cat.check_audit()
        seen: dict[tuple[str, int], int] = {}
        for e in cat.audit_entries():
            key = (e.caller, int(e.record["seq"]))
            seen[key] = seen.get(key, 0) + 1
        shared = [w for w in cat.works() if w.title.startswith("Work shared-")]
    expected = {(c, s) for c in callers for s in range(records)}
    env = {**os.environ, "SCANNER_CATALOG": target}
    verify = subprocess.run([sys.executable, "-c", "from scanner.cli import main; main()", "audit", "verify"],
                            env=env, capture_output=True, text=True, timeout=600)
    return {
        "label": label, "processes": len(procs), "appends": len(lat), "wall": wall,
        "rate": len(lat) / wall if wall else 0.0,
        "p50": statistics.median(lat) * 1000 if lat else float("nan"),
        "p95": statistics.quantiles(lat, n=20)[18] * 1000 if len(lat) > 20 else float("nan"),
        "mean": statistics.fmean(lat) * 1000 if lat else float("nan"), "max": max(lat) * 1000 if lat else float("nan"),
        "errors": errors, "stored": check.records, "chain_ok": check.ok,
        "lost": len(expected - set(seen)), "duplicated": sum(n - 1 for n in seen.values() if n > 1),
        "unexpected": len(set(seen) - expected), "verify": verify.stdout.strip() or verify.stderr.strip()[-200:],
        "shared_works": len(shared),
    }


def main() -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--records", type=int, default=300, help="audit appends per process")
    ap.add_argument("--work-ms", type=float, default=0.0, help="simulated check time per asset")
    ap.add_argument("--url", help="an empty PostgreSQL database to use instead of a throw-away server")
    args = ap.parse_args()

    from scanner.testing.pg_cluster import PgCluster

    cluster = None
    url = args.url
    if not url:
        cluster = PgCluster(durable=True).start()
        url = cluster.create_database("catalog_load")
    rows = []
    try:
        rows.append(run(url, "PostgreSQL (unix socket, fsync on)", args.shards, args.workers, args.records,
                        args.work_ms))
        with tempfile.TemporaryDirectory(prefix="catalog-load-") as tmp:
            rows.append(run(str(Path(tmp) / "catalog.db"), "SQLite WAL (local disk)", args.shards, args.workers,
                            args.records, args.work_ms))
    finally:
        if cluster:
            cluster.stop()
    print(f"\n{args.shards} shard processes + {args.workers} service workers, {args.records} audit appends each, "
          f"work {args.work_ms:g} ms/asset, {os.cpu_count()} CPUs\n")
    print(f"{'backend':38} {'appends':>8} {'wall s':>7} {'appends/s':>10} {'p50 ms':>7} {'p95 ms':>7} {'mean':>6} "
          f"{'max ms':>7}  "
          "stored lost dup chain verify works")
    ok = True
    for r in rows:
        print(f"{r['label']:38} {r['appends']:8d} {r['wall']:7.2f} {r['rate']:10.0f} {r['p50']:7.2f} {r['p95']:7.2f} "
              f"{r['mean']:6.1f} {r['max']:7.0f}  "
              f"{r['stored']:6d} {r['lost']:4d} {r['duplicated']:3d} {'ok' if r['chain_ok'] else 'BROKEN':5} "
              f"{r['verify']:6} {r['shared_works']}")
        for caller, err in r["errors"]:
            print(f"  {caller}: {err}")
        ok &= (not r["errors"] and r["chain_ok"] and r["lost"] == 0 and r["duplicated"] == 0 and r["verify"] == "ok"
               and r["stored"] == r["appends"] and r["shared_works"] == 6 and r["unexpected"] == 0)
    print("\nno lost or duplicated records, chains verify" if ok else "\nFAILED: see the table")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
