"""Index types by collection size: build time, bytes, query latency, recall against exact search.

    .venv/bin/python benchmarks/index_scale.py [--sizes 1000,10000,100000,300000,1000000]
        [--queries 100] [--threads 1] [--memory-gb G] [--full] [--seed 0]
        [--only all|vectors|audio] [--audio-hours 10,100,1000] [--audio-queries 16] [--music DIR]

Audio (``--only audio``; also at the end of a full run): the landmark index of
``audio.fingerprint`` at ``--audio-hours`` of indexed audio. 3/4 of the real tracks in
``--music`` are registered; the rest of each catalog is **synthetic hours** (landmark hashes
drawn from the real tracks' hash distribution, half from its histogram and half from the
product of its component marginals; random anchor times; pitch and span inside the cells
the hash names), built directly in index order (1,000 h = 514 M rows, 5.7 GB, ~9 min here;
a size that does not fit in the available memory is skipped and says so). The synthetic model
is pessimistic for recall: every hash of a registered track is drawn again in proportion to its
count in 40 min of music, so a query's true hashes sit in buckets ~750 rows deep at 1,000 h.
Queries: 10 s excerpts of registered tracks, half with 5 dB white noise; negatives: excerpts of
held-out tracks. Per size and per search setting (``AUDIO_CONFIGS``: "off" = every row, the
previous setting, the detector's defaults), same run: search CPU ms per query for the copies
and the held-out excerpts (fingerprinting the query is the same at every size and not
included), found (top hit is the right track at or above the review threshold), false matches
and the median score of the copies (the right track's score).

Run of ``--only audio --audio-hours 10,100,1000`` (2 cores shared with ~8 other jobs, load
average ~16; the "off" row at 1,000 h runs 4 of the 16 copies)::

    hours  rows         setting                             ms/q copies  ms/q held-out  found  false  median score
    10     5,137,218    off (every row)                      31.2 (1.00x)   -           16/16    -      754
    10                  previous (256/probe, rarest first)   31.9 (1.00x)   24.3        16/16   0/10    754
    10                  default (64/probe + shortlist)       31.6 (1.00x)   24.2        16/16   0/10    754
    100    51,372,187   off                                 137.1 (4.39x)   -           16/16    -      754
    100                 previous                            142.8 (4.48x)  120.0        16/16   0/10    649
    100                 default                              65.0 (2.05x)   49.4        16/16   0/10    744
    1000   513,721,874  off                                2872.7 (91.9x)   -            4/4     -      686
    1000                previous                            153.2 (4.80x)  130.4        15/16   0/10    162
    1000                default                              59.6 (1.88x)   42.2        16/16   0/10    744

"previous" is the previous setting run on today's code (faster candidates, bucket order);
the code of the previous session measured 46 / 282 / 263 ms at 10 / 100 / 1,000 h. Below ~25 h
the budget is never reached and every setting gives the same matches and scores.

Data. Synthetic, shaped like real signals: 512-d float vectors from a Gaussian mixture
(1024 clusters, per-dimension spread decaying as ``(1 + i) ** -0.5``, a shared mean
direction, L2-normalised: same-cluster pairs average cosine 0.68, other pairs 0.18,
like image embeddings), and 256-bit hashes as random-hyperplane signs of those vectors
(so near vectors give near hashes, as perceptual hashes of near images do).

Queries, ``--queries`` of them, half of each kind:

* *copies*: a reference vector plus noise (cosine 0.97 to its source); its hash is the
  hash of the noisy vector (a few bits flipped). ``copy@1`` is the share of copies whose
  top hit is their source: the copy-detection case.
* *fresh*: new draws from the mixture (generic nearest-neighbour search).

Measures, per size and index type, in the same run: build time (add + train), bytes of
the serialised index, query latency (one batch of all queries, per query ms), recall@10
(share of the exact top-10 rows found, exact = flat in the same run, over all queries),
copy@1, the score error (largest |score - exact score| over rows both searches returned;
Hamming distances are exact in every type), and ``*`` marks the type ``choose_index`` picks for that size (with
``--memory-gb`` as the budget, none by default).

Time. Sized to finish in under 10 minutes on 2 cores: the float HNSW graph at 1M rows
(~10 min to build here) and binary HNSW graphs above 100k rows run only with ``--full``
(the table prints an extrapolated build time instead). FAISS runs with ``--threads`` OpenMP threads
(default 1: on a shared 2-core box OpenMP's spinning threads are slower than one
thread). The machine's load average is printed: other processes inflate timings.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss  # noqa: E402

from scanner.index import choose  # noqa: E402
from scanner.index.faiss_index import (  # noqa: E402
    BinaryHNSWIndex, BinaryIndex, BinaryIVFIndex, FloatIndex, HNSWIndex, IVFPQIndex, IVFSQIndex,
)
from scanner.types import Metric  # noqa: E402

DIM, BITS, CLUSTERS = 512, 256, 1024
NOISE, COPY_NOISE, MEAN_WEIGHT = 0.8, 0.25, 0.6


class Mixture:
    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.scale = ((1.0 + np.arange(DIM)) ** -0.5).astype(np.float32)
        self.scale /= np.linalg.norm(self.scale) / math.sqrt(DIM)
        self.centers = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32) * self.scale
        mean = rng.standard_normal(DIM, dtype=np.float32) * self.scale
        self.mean = mean * (MEAN_WEIGHT * math.sqrt(DIM) / np.linalg.norm(mean))
        self.planes = rng.standard_normal((DIM, BITS), dtype=np.float32)

    def draw(self, n: int, rng: np.random.Generator, chunk: int = 100_000) -> np.ndarray:
        out = np.empty((n, DIM), np.float32)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            x = self.centers[rng.integers(0, CLUSTERS, e - s)]
            x += NOISE * rng.standard_normal((e - s, DIM), dtype=np.float32) * self.scale
            x += self.mean
            out[s:e] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    def copies(self, src: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = src + COPY_NOISE * rng.standard_normal(src.shape, dtype=np.float32) / math.sqrt(DIM)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def hashes(self, x: np.ndarray, chunk: int = 100_000) -> np.ndarray:
        out = np.empty((x.shape[0], BITS // 8), np.uint8)
        for s in range(0, x.shape[0], chunk):
            out[s:s + chunk] = np.packbits((x[s:s + chunk] @ self.planes) > 0, axis=1)
        return out


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) for f, t in zip(found, truth))
    return hits / max(1, int((truth >= 0).sum()))


def plan_params(kind: str, n: int, metric: Metric) -> dict:
    """Parameters ``choose_index`` would give ``kind`` at this size (whether or not it picks it);
    IVF-PQ is built with its SQ8 re-scoring copy so both of its variants come from one build."""
    dim = DIM if metric is Metric.COSINE else BITS
    extra = {"refine": "sq8"} if kind == "ivfpq" else {}
    return dict(choose.plan_for(kind, n, dim, metric, **extra).params)


def run_size(n: int, args, mix: Mixture, rows: list, hnsw_rate: dict) -> None:
    rng = np.random.default_rng(args.seed + n)
    gen_t = time.perf_counter()
    x = mix.draw(n, rng)
    ids = np.arange(n, dtype=np.int64)
    q_copy = max(1, args.queries // 2)
    src = rng.choice(n, q_copy, replace=False)
    q = np.concatenate([mix.copies(x[src], rng), mix.draw(args.queries - q_copy, rng)])
    hx, hq = mix.hashes(x), mix.hashes(q)
    print(f"\n[{n:,} rows] data generated in {time.perf_counter() - gen_t:.1f} s", flush=True)
    budget = None if args.memory_gb is None else int(args.memory_gb * 1024**3)

    for metric, data, queries in ((Metric.COSINE, x, q), (Metric.HAMMING, hx, hq)):
        dim = DIM if metric is Metric.COSINE else BITS
        chosen = choose.choose_index(n, dim, metric, budget)
        flat = FloatIndex(dim) if metric is Metric.COSINE else BinaryIndex(dim)
        _, build = timed(lambda: flat.add(ids, data))
        (s0, i0), lat = timed(lambda: flat.search(queries, 10))
        nbytes = len(flat.to_bytes())
        copy1 = float(np.mean(i0[:q_copy, 0] == src))
        rows.append((n, metric.value, "flat", build, nbytes, 1000 * lat / len(queries), 1.0, copy1, 0.0,
                     chosen.kind == "flat", ""))
        print(f"  {metric.value:7s} flat        build {build:7.1f} s  {lat * 1000 / len(queries):7.2f} ms/q",
              flush=True)
        del flat
        gc.collect()
        kinds = ["hnsw", "ivf-sq8", "ivfpq"] if metric is Metric.COSINE else ["binary-hnsw", "binary-ivf"]
        for kind in kinds:
            if kind in ("ivfpq", "ivf-sq8", "binary-ivf") and n < choose.IVF_MIN // 2:
                for k2 in ([kind, "ivfpq-raw"] if kind == "ivfpq" else [kind]):
                    rows.append((n, metric.value, k2, None, None, None, None, None, None, False,
                                 f"n/a: too few rows to train (< {choose.IVF_MIN // 2})"))
                continue
            if (kind == "hnsw" and n >= 1_000_000 or kind == "binary-hnsw" and n > 100_000) and not args.full:
                rate = hnsw_rate.get(kind)
                est = f"~{n / rate / 60:.0f} min build (extrapolated)" if rate else "not run"
                rows.append((n, metric.value, kind, None, None, None, None, None, None, chosen.kind == kind,
                             f"skipped without --full: {est}"))
                continue
            cls = {"hnsw": HNSWIndex, "ivf-sq8": IVFSQIndex, "ivfpq": IVFPQIndex, "binary-hnsw": BinaryHNSWIndex,
                   "binary-ivf": BinaryIVFIndex}[kind]
            index = cls(dim, plan_params(kind, n, metric))
            _, build = timed(lambda: index.add(ids, data))
            if kind in ("hnsw", "binary-hnsw"):
                hnsw_rate[kind] = n / build / (1 + math.log10(max(10, n)) / 10)  # rough n log n
            blob = index.to_bytes()
            variants = [(kind, True)] + ([("ivfpq-raw", False)] if kind == "ivfpq" else [])
            for name, rescore in variants:
                if kind == "ivfpq":
                    (s, i), lat = timed(lambda: index.search(queries, 10, rescore=rescore))
                    nbytes = len(blob) if rescore else len(blob) - len(faiss.serialize_index(index._store))
                else:
                    (s, i), lat = timed(lambda: index.search(queries, 10))
                    nbytes = len(blob)
                rec = recall_at(i, i0)
                copy1 = float(np.mean(i[:q_copy, 0] == src))
                err = score_error(s, i, s0, i0)
                picked = chosen.kind == kind and (name != "ivfpq-raw") == (chosen.params.get("refine", "sq8") != "none")
                rows.append((n, metric.value, name, build, nbytes, 1000 * lat / len(queries), rec, copy1, err,
                             picked, "same build as ivfpq" if name == "ivfpq-raw" else ""))
                print(f"  {metric.value:7s} {name:11s} build {build:7.1f} s  {lat * 1000 / len(queries):7.2f} ms/q  "
                      f"recall@10 {rec:.3f}", flush=True)
            del index, blob
            gc.collect()


def score_error(s: np.ndarray, i: np.ndarray, s0: np.ndarray, i0: np.ndarray) -> float:
    """Largest |score - exact score| over the rows both searches returned for a query."""
    worst = 0.0
    for srow, irow, s0row, i0row in zip(s, i, s0, i0):
        exact = {int(a): float(b) for a, b in zip(i0row, s0row) if a >= 0}
        for a, b in zip(irow, srow):
            if int(a) in exact:
                worst = max(worst, abs(float(b) - exact[int(a)]))
    return worst


def fmt_bytes(b: int | None) -> str:
    if b is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if b < 1024 or unit == "GB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return str(b)


# =============================================================== audio landmarks


def _mem_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def synthetic_landmarks(hours: float, real_h: np.ndarray, real_cols: dict, det, rng: np.random.Generator):
    """A LandmarkIndex of ``hours`` of audio: the real tracks' rows plus synthetic filler.

    Filler hashes follow the real tracks' hash distribution (half drawn from their histogram,
    half from the product of its five component marginals, so the tail is wider than the
    sample), one synthetic reference per hour, random anchor times, and anchor pitch and span
    drawn inside the band and span cells the hash names, so the query-side filters see what
    they would on real rows. Built directly in index order (hash, then reference: one small
    sort per block of hashes, no sort of the whole table)."""
    from scanner.detectors.fingerprint import _radices
    from scanner.index.landmarks import LandmarkIndex

    p = det.p
    radices = _radices(p)
    H = int(np.prod(radices))
    rows_per_hour = 3600 * real_h.size / real_cols["seconds"]
    n_fill = max(0, int(hours * rows_per_hour) - real_h.size)
    hist = np.bincount(real_h, minlength=H).astype(np.float64)
    cells = []
    rest = np.arange(H, dtype=np.int64)
    for radix in reversed(radices):  # mixed radix, last component least significant
        cells.append(rest % radix)
        rest //= radix
    cells = cells[::-1]
    prod = np.ones(H)
    for k, radix in enumerate(radices):
        prod *= np.bincount(cells[k], weights=hist, minlength=radix)[cells[k]] / hist.sum()
    prob = 0.5 * hist / hist.sum() + 0.5 * prod / prod.sum()
    fill = rng.multinomial(n_fill, prob / prob.sum()) if n_fill else np.zeros(H, np.int64)
    real_counts = np.bincount(real_h, minlength=H)
    counts = fill + real_counts
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n = int(offsets[-1])
    cols = {"ref": np.empty(n, np.int32), "t": np.empty(n, np.uint32), "f": np.empty(n, np.uint16),
            "dt": np.empty(n, np.uint8)}
    frames_per_hour = int(3600 / p.frame_s)
    span_min = p.span_min_s / p.frame_s
    step = 1 << 16
    for h0 in range(0, H, step):
        c = fill[h0:h0 + step]
        m = int(c.sum())
        if not m:
            continue
        hh = np.repeat(np.arange(h0, h0 + c.size), c)
        first = np.repeat(np.cumsum(c) - c, c)
        pos = np.repeat(offsets[h0:h0 + c.size], c) + (np.arange(m) - first)
        cols["ref"][pos] = 1_000_000 + rng.integers(0, max(1, int(hours)), m)
        cols["t"][pos] = rng.integers(0, frames_per_hour, m, dtype=np.uint32)
        band, span = cells[0][hh], cells[1][hh]
        cols["f"][pos] = np.clip((band + rng.random(m)) * p.band_st * 64.0, 0, 65535).astype(np.uint16)
        cols["dt"][pos] = np.clip(span_min * p.span_ratio ** (span + rng.random(m)), 0, 255).astype(np.uint8)
    order = np.argsort(real_h, kind="stable")
    rh = real_h[order]
    start = np.searchsorted(rh, rh, side="left")
    pos = offsets[rh] + fill[rh] + (np.arange(rh.size) - start)
    for k in cols:
        cols[k][pos] = real_cols[k][order]
    for h0 in range(0, H, step):  # the index keeps each hash's rows in reference order
        a, b = int(offsets[h0]), int(offsets[min(H, h0 + step)])
        if b - a > 1:
            local = np.repeat(np.arange(min(step, H - h0), dtype=np.int64), counts[h0:h0 + step])
            o = np.argsort((local << 31) | cols["ref"][a:b], kind="stable")
            for k in cols:
                cols[k][a:b] = cols[k][a:b][o]
    return LandmarkIndex(1, offsets.astype(np.uint32 if n < 2**32 else np.int64), cols)


# search settings compared in one run (module constants of scanner.detectors.fingerprint; {} = its defaults)
AUDIO_CONFIGS = (
    ("off (every row)", {"MATCH_BUDGET_PER_PROBE": 1 << 40}),
    ("previous: 256 rows/probe, rarest first, no shortlist", {"MATCH_BUDGET_PER_PROBE": 256, "FLIP_COST": 1.0,
                                                              "SHORTLIST_REFS": 0}),
    ("default", {}),
)


def run_audio(hours_list: list[float], music: Path, n_queries: int, seed: int,
              configs: tuple = AUDIO_CONFIGS) -> None:
    """Query CPU time and recall against catalogs of growing size, per search setting, same run."""
    import scanner.detectors.fingerprint as fp
    from scanner.detectors.fingerprint import FingerprintDetector
    from scanner.media.audio import AudioClip, decode_audio

    det = FingerprintDetector()
    tracks = sorted(p for p in music.iterdir() if p.suffix.lower() in (".ogg", ".flac", ".wav", ".mp3")) \
        if music.is_dir() else []
    if len(tracks) < 4:
        print(f"\naudio: fewer than 4 tracks in {music}; skipped")
        return
    rng = np.random.default_rng(seed)
    clips = [decode_audio(p.read_bytes()) for p in tracks]
    registered = [i for i in range(len(clips)) if i % 4 != 3]
    held = [i for i in range(len(clips)) if i % 4 == 3]
    parts, seconds = [], 0.0
    for rid in registered:
        e = det.embed_references([clips[rid]])[0]
        parts.append((np.full(e.vectors.shape[0], rid), e))
        seconds += clips[rid].duration
    real_h = np.concatenate([e.vectors[:, 0] for _, e in parts]).astype(np.int64)
    real_cols = {"ref": np.concatenate([r for r, _ in parts]).astype(np.int32),
                 "t": np.concatenate([e.extra["t"] for _, e in parts]).astype(np.uint32),
                 "f": np.concatenate([e.extra["f"] for _, e in parts]).astype(np.uint16),
                 "dt": np.concatenate([e.extra["dt"] for _, e in parts]).astype(np.uint8),
                 "seconds": seconds}

    def excerpt(i: int, noisy: bool) -> AudioClip:
        c = clips[i]
        length = min(10.0, c.duration - 0.1)
        start = float(rng.uniform(0, max(0.0, c.duration - length)))
        x = c.samples[int(start * c.sr):int((start + length) * c.sr)].astype(np.float32)
        if noisy:  # white noise at 5 dB SNR
            x = x + rng.normal(0, np.sqrt(np.mean(x ** 2) / 10 ** 0.5), x.size).astype(np.float32)
        return AudioClip(x, c.sr)

    queries = [(rid, det.embed_queries([excerpt(rid, k % 2 == 1)])[0])
               for k, rid in enumerate(rng.choice(registered, n_queries))]
    negatives = [det.embed_queries([excerpt(i, False)])[0] for i in held for _ in range(2)]
    review = 22.0  # the calibrated review threshold (scanner/policy/calibration.json, final stage)
    print(f"\n== Audio landmark index: query cost against catalog size ==\n"
          f"real tracks: {len(registered)} registered ({seconds / 60:.0f} min, {real_h.size / seconds:.0f} landmarks/s),"
          f" {len(held)} held out; filler: synthetic hours (hash distribution of the real tracks); "
          f"{len(queries)} 10 s queries (half with 5 dB white noise), {len(negatives)} held-out excerpts; "
          f"default: {fp.MATCH_BUDGET_PER_PROBE} rows/probe, flip cost {fp.FLIP_COST:g}, "
          f"shortlist {fp.SHORTLIST_REFS} references")
    print("| hours | rows | index | search | ms/query (CPU), copies | ms/query, held-out | found | false matches "
          "| median score of the copies |")
    print("|---|---|---|---|---|---|---|---|---|")
    base: dict = {}
    for hours in hours_list:
        need = int(hours * 3600 * real_h.size / seconds) * 11 * 1.3
        if need > _mem_available():
            print(f"| {hours:g} | - | - | - | skipped: needs ~{need / 1e9:.1f} GB, "
                  f"{_mem_available() / 1e9:.1f} GB available | - | - |")
            continue
        t0 = time.perf_counter()
        index = synthetic_landmarks(hours, real_h, real_cols, det, rng)
        built = time.perf_counter() - t0
        for label, settings in configs:
            off = settings.get("MATCH_BUDGET_PER_PROBE", 0) >= 1 << 40
            subset = queries if not off or hours <= 100 else queries[: max(2, len(queries) // 4)]
            saved = {k: getattr(fp, k) for k in settings}
            for k, v in settings.items():
                setattr(fp, k, v)
            try:
                det.search(index, [subset[0][1]])  # warm: first touch of the index pages
                c0 = time.process_time()
                hits = [det.search(index, [q])[0] for _, q in subset]
                ms = (time.process_time() - c0) / len(subset) * 1000
                c0 = time.process_time()
                neg = [] if off else [det.search(index, [q])[0] for q in negatives]
                ms_neg = (time.process_time() - c0) / max(1, len(neg)) * 1000
            finally:
                for k, v in saved.items():
                    setattr(fp, k, v)
            found = sum(1 for (rid, _), h in zip(subset, hits) if h and h[0].ref_id == rid and h[0].score >= review)
            false = sum(1 for h in neg if h and h[0].score >= review)
            score = np.median([next((x.score for x in h if x.ref_id == rid), 0.0) for (rid, _), h in zip(subset, hits)])
            base.setdefault(label, ms)
            print(f"| {hours:g} | {index.rows:,} | {index.nbytes / 1e9:.2f} GB, built {built:.0f} s | {label} | "
                  f"{ms:.1f} ({ms / base[label]:.2f}x the first size) | {'-' if off else f'{ms_neg:.1f}'} | "
                  f"{found}/{len(subset)} | {'-' if off else f'{false}/{len(neg)}'} | {score:.0f} |", flush=True)
        del index


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000,300000,1000000")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--memory-gb", type=float, default=None)
    ap.add_argument("--full", action="store_true", help="also build HNSW graphs at 1M rows (slow)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("all", "vectors", "audio"), default="all")
    ap.add_argument("--audio-hours", default="10,100,1000", help="catalog sizes for the landmark index")
    ap.add_argument("--audio-queries", type=int, default=16)
    ap.add_argument("--music", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "music")
    args = ap.parse_args()
    if args.only == "audio":
        run_audio([float(h) for h in args.audio_hours.split(",") if h.strip()], args.music, args.audio_queries,
                  args.seed)
        return
    faiss.omp_set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    mix = Mixture(args.seed)
    rows: list = []
    hnsw_rate: dict = {}
    t0 = time.perf_counter()
    load0 = os.getloadavg()
    for n in sizes:
        run_size(n, args, mix, rows, hnsw_rate)
    total = time.perf_counter() - t0
    print("\n== Index scale ==")
    print(f"{args.queries} queries ({args.queries // 2} copies, rest fresh), {args.threads} FAISS thread(s), "
          f"load average {load0[0]:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, total {total:.0f} s")
    head = ("rows", "metric", "type", "build s", "bytes", "ms/query", "recall@10", "copy@1", "score err", "note")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for n, metric, kind, build, nbytes, ms, rec, copy1, err, chosen, note in rows:
        cells = [f"{n:,}", metric, kind + (" *" if chosen else ""),
                 "-" if build is None else f"{build:.2f}", fmt_bytes(nbytes),
                 "-" if ms is None else f"{ms:.3f}", "-" if rec is None else f"{rec:.3f}",
                 "-" if copy1 is None else f"{copy1:.2f}", "-" if err is None else f"{err:.4f}", note]
        print("| " + " | ".join(cells) + " |")
    print("\n* = choose_index's pick for that size"
          + ("" if args.memory_gb is None else f" with a {args.memory_gb:g} GB budget") + ". "
          "ivf-sq8 = IVF over 8-bit vectors; ivfpq = IVF-PQ (32 B codes) with SQ8 re-scoring of 16x k "
          "candidates; ivfpq-raw = the same index's PQ scores without re-scoring (bytes without the SQ8 copy).")
    if args.only == "all":
        run_audio([float(h) for h in args.audio_hours.split(",") if h.strip()], args.music, args.audio_queries,
                  args.seed)


if __name__ == "__main__":
    main()
