"""Audio-fingerprint benchmark: recall under edits, false matches, speed, index size, calibration.

    .venv/bin/python -m benchmarks.audio_fingerprint [--music DIR] [--seed N] [--quick]
        [--write-calibration [PATH]] [--jobs N]

Data. Every audio file in ``--music`` (default ``../shared/data/music``, 20 orchestral
tracks) is a recording. The tracks are shuffled with ``--seed``; ``HELD_OUT`` of them are
held out (never registered), the rest are registered in one index per method.

Queries. For every registered track, ``EXCERPTS`` (quick: 2) excerpts of 5 s and of 10 s
start at random offsets (tracks shorter than an excerpt give none of that length). Each
excerpt goes through every condition in ``CONDITIONS``: clean, white noise at 10/5/0 dB
SNR, MP3 at 64 kbit/s (PyAV/LAME, decoded again), speed +-2 % and +-5 % (resampling: tempo
and pitch together), pitch +-1 semitone and tempo +-5 % (librosa phase vocoder: one
without the other). These are *positives*: found when the top-scoring work is the right
one and its score passes the threshold. Held-out tracks give ``NEG_EXCERPTS`` excerpts
per length through the same conditions: *negatives* (any hit at or above the threshold
is a false match).

Methods, measured in the same run on the same queries:

* ``audio.fingerprint`` (``scanner/detectors/fingerprint.py``): tempo/pitch-invariant
  triplet hashes with neighbour probing and scale/offset/pitch verification.
* ``pairs baseline``: a plain constellation-pair fingerprint (Shazam/audfprint style):
  linear-frequency STFT peaks, hash = (f1, f2 - f1, t2 - t1), score = the largest
  count of matches sharing one exact time offset. No invariance, no probing.

Thresholds. Scores are counts (higher is stronger). With ``a = floor(FPR x negatives)``
negatives allowed, the threshold is one above the (a+1)-th highest negative score (and at
least the detector's reporting floor), for FPR 1 % and 0.1 %. ``--write-calibration``
merges ``detectors["audio.fingerprint"][<model id>]`` into the calibration file::

    final    = {"block": threshold at 0.1 % FPR, "review": threshold at 1 % FPR}
    ideation = {"block": threshold at 0.1 % FPR, "review": same}

keeping every other entry; ``version`` becomes ``<UTC date>-audio_fingerprint-<8 hex of
sha256 of all stored thresholds>``.

Speed. Fingerprinting speed is reference audio seconds per CPU second of one process
(x real time per core); latency is the wall time of a 30 s WAV clip through decode,
fingerprint and search against the full index; index bytes per hour are the serialised
index size over the registered audio.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage, signal

from benchmarks.common import cli
from benchmarks.common.calibrate import levels_entry, write_calibration
from benchmarks.common.data import AUDIO_SUFFIXES, media_files, require_dir
from benchmarks.common.memory import peak_rss_mib
from benchmarks.common.split import hold_out
from benchmarks.common.stats import FPR_LEVELS, operating_point, pct
from benchmarks.common.table import print_table
from scanner.detectors.base import Embedding
from scanner.detectors.fingerprint import FingerprintDetector, LandmarkParams
from scanner.index.landmarks import BYTES_PER_ROW, LandmarkIndex
from scanner.media.audio import AudioClip, decode_audio

SR = 16_000
HELD_OUT = 6
LENGTHS = (5.0, 10.0)
NEG_LENGTHS = (5.0, 10.0, 30.0)  # longer negatives too: the chance of a spurious match grows with length
EXCERPTS = 4
NEG_EXCERPTS = 8
QUICK_EXCERPTS = 1
QUICK_NEG_EXCERPTS = 2
LATENCY_CLIP_S = 30.0
SPAN_TOLERANCE_S = 0.5


# ---------------------------------------------------------------- conditions


def _noise(snr_db: float) -> Callable:
    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        power = float(np.mean(np.square(x))) or 1e-10
        return x + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), x.shape).astype(np.float32)
    return apply


def _speed(factor: float) -> Callable:
    """Played ``factor`` times faster (tempo and pitch together)."""
    up, down = 1000, int(round(1000 * factor))

    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return signal.resample_poly(x, up, down).astype(np.float32)
    return apply


def _pitch(steps: float) -> Callable:
    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import librosa
        return librosa.effects.pitch_shift(x, sr=SR, n_steps=steps).astype(np.float32)
    return apply


def _tempo(rate: float) -> Callable:
    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import librosa
        return librosa.effects.time_stretch(x, rate=rate).astype(np.float32)
    return apply


def _mp3(kbps: int) -> Callable:
    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return decode_audio(encode(x, SR, "mp3", "libmp3lame", rate=44100, bitrate=kbps * 1000), SR).samples
    return apply


def encode(x: np.ndarray, sr: int, fmt: str, codec: str, rate: int | None = None, bitrate: int | None = None) -> bytes:
    """Encode mono float samples with PyAV (used for the MP3 condition and the latency clip)."""
    import av
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        st = out.add_stream(codec, rate=rate or sr, layout="mono")
        if bitrate:
            st.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(np.asarray(x, np.float32)[None, :], format="fltp", layout="mono")
        frame.sample_rate = sr
        ctx = st.codec_context
        resampler = av.AudioResampler(format=ctx.format.name, layout="mono", rate=ctx.sample_rate)
        fifo = av.AudioFifo()
        for f in resampler.resample(frame) + resampler.resample(None):
            fifo.write(f)
        size = ctx.frame_size or 1024
        while (f := fifo.read(size)) is not None or (f := fifo.read()) is not None:
            for pkt in st.encode(f):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)
    return buf.getvalue()


@dataclass(frozen=True)
class Condition:
    name: str
    apply: Callable | None
    speed: float = 1.0  # how much faster the query plays than the reference (source span = length x speed)


CONDITIONS = [
    Condition("clean", None),
    Condition("noise 10 dB", _noise(10)),
    Condition("noise 5 dB", _noise(5)),
    Condition("noise 0 dB", _noise(0)),
    Condition("mp3 64k", _mp3(64)),
    Condition("speed -5%", _speed(0.95), 0.95),
    Condition("speed -2%", _speed(0.98), 0.98),
    Condition("speed +2%", _speed(1.02), 1.02),
    Condition("speed +5%", _speed(1.05), 1.05),
    Condition("pitch -1 st", _pitch(-1.0)),
    Condition("pitch +1 st", _pitch(1.0)),
    Condition("tempo -5%", _tempo(0.95), 0.95),
    Condition("tempo +5%", _tempo(1.05), 1.05),
    Condition("music bed 0 dB", None),  # another (held-out) recording layered at equal loudness
]
MUSIC_BED = "music bed 0 dB"


# ---------------------------------------------------------------- baseline


class PairsBaseline:
    """Plain constellation pairs: peaks of a linear STFT, hash (f1, f2-f1, t2-t1), offset histogram."""

    label = "pairs baseline"
    sr, n_fft, hop = 8000, 1024, 128
    f_lo, f_hi = 14, 448  # FFT bins kept (110 Hz - 3.5 kHz)
    nb_t, nb_f = 8, 8  # peak neighbourhood half-sizes (frames, bins)
    fan, dt_max = 5, 63

    def embed(self, clip: AudioClip) -> Embedding:
        x = signal.resample_poly(clip.samples, self.sr, clip.sr).astype(np.float32) if clip.sr != self.sr else clip.samples
        if x.size < self.n_fft:
            return Embedding(np.zeros((0, 1), np.int64), "too short")
        frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, self.n_fft // 2), self.n_fft)[:: self.hop]
        db = 20 * np.log10(np.abs(np.fft.rfft(frames * np.hanning(self.n_fft), axis=1)).T[self.f_lo:self.f_hi] + 1e-6)
        local = ndimage.maximum_filter(db, size=(2 * self.nb_f + 1, 2 * self.nb_t + 1), mode="nearest")
        f, t = np.nonzero((db == local) & (db > db.mean() + 10))
        order = np.argsort(t, kind="stable")
        f, t = f[order], t[order]
        rows_h, rows_t = [], []
        for i in range(t.size):
            j = np.arange(i + 1, min(t.size, i + 1 + 40))
            j = j[(t[j] > t[i]) & (t[j] - t[i] <= self.dt_max) & (np.abs(f[j] - f[i]) < 64)][: self.fan]
            rows_h.append((f[i] << 13) | ((f[j] - f[i] + 64) << 6) | (t[j] - t[i]))
            rows_t.append(np.full(j.size, t[i]))
        if not rows_h:
            return Embedding(np.zeros((0, 1), np.int64), "no peaks")
        h = np.concatenate(rows_h).astype(np.int64)
        return Embedding(h.reshape(-1, 1), extra={"t": np.concatenate(rows_t), "f": np.zeros(h.size), "dt": np.zeros(h.size)})

    def search(self, index: LandmarkIndex, q: Embedding) -> list[tuple[int, float, float]]:
        """(ref id, score, ref start s) per reference, best first."""
        if q.empty:
            return []
        m = index.lookup(q.vectors[:, 0])
        if m.query.size == 0:
            return []
        off = q.extra["t"][m.query].astype(np.int64) - m.t.astype(np.int64)
        key = m.ref.astype(np.int64) * (1 << 32) + (off + (1 << 31))
        keys, counts = np.unique(key, return_counts=True)
        out: dict[int, tuple[float, float]] = {}
        for k, c in zip(keys, counts):
            ref, o = int(k >> 32), int((k & 0xFFFFFFFF) - (1 << 31))
            if c > out.get(ref, (0, 0))[0]:
                out[ref] = (float(c), -o * self.hop / self.sr)
        return sorted(((r, s, st) for r, (s, st) in out.items()), key=lambda x: -x[1])


# ---------------------------------------------------------------- run


@dataclass
class Track:
    name: str
    clip: AudioClip


@dataclass
class Query:
    track: int  # index into tracks
    positive: bool
    start: float
    length: float
    condition: str


@dataclass
class Result:
    score: dict[str, float] = field(default_factory=dict)  # method -> best score (any work for negatives, own work for positives)
    top_ok: dict[str, bool] = field(default_factory=dict)  # positives: the top hit is the right work
    span_ok: dict[str, bool] = field(default_factory=dict)  # positives: ref start within SPAN_TOLERANCE_S


_STATE: dict = {}  # set before the worker processes fork


def load_tracks(folder: Path) -> list[Track]:
    return [Track(path.stem, decode_audio(path.read_bytes(), SR)) for path in media_files(folder, AUDIO_SUFFIXES)]


def make_queries(tracks: list[Track], registered: list[int], held: list[int], seed: int, quick: bool) -> list[Query]:
    rng = np.random.default_rng(seed)
    per_pos, per_neg = (QUICK_EXCERPTS, QUICK_NEG_EXCERPTS) if quick else (EXCERPTS, NEG_EXCERPTS)
    out = []
    for group, positive, per in ((registered, True, per_pos), (held, False, per_neg)):
        for ti in group:
            dur = tracks[ti].clip.duration
            for length in (LENGTHS if positive else NEG_LENGTHS):
                need = length * 1.06  # room for the slowest source span
                if dur < need:
                    continue
                for _ in range(per):
                    start = float(rng.uniform(0, dur - need))
                    out.extend(Query(ti, positive, start, length, c.name) for c in CONDITIONS)
    return out


def run_query(i: int) -> tuple[int, Result, float, float]:
    """Worker: build the query audio, search with both methods. Returns (i, result, transform s, search s)."""
    q: Query = _STATE["queries"][i]
    tracks: list[Track] = _STATE["tracks"]
    cond = next(c for c in CONDITIONS if c.name == q.condition)
    rng = np.random.default_rng([_STATE["seed"], i])
    x = tracks[q.track].clip.samples
    a = int(q.start * SR)
    y = x[a:a + int(q.length * cond.speed * SR)].copy()
    t0 = time.perf_counter()
    if cond.apply is not None:
        y = cond.apply(y, rng)
    elif cond.name == MUSIC_BED:
        others = [t for t in _STATE["held"] if t != q.track and tracks[t].clip.duration > q.length + 1]
        bed_clip = tracks[others[int(rng.integers(len(others)))]].clip.samples
        b = int(rng.uniform(0, bed_clip.size - y.size - 1))
        bed = bed_clip[b:b + y.size]
        gain = np.sqrt(np.mean(np.square(y)) / max(float(np.mean(np.square(bed))), 1e-10))
        y = y + gain * bed
    y = np.clip(y, -1, 1).astype(np.float32)
    t1 = time.perf_counter()
    clip = AudioClip(y, SR)
    res = Result()
    det: FingerprintDetector = _STATE["det"]
    hits = det.search(_STATE["index"], det.embed_queries([clip]))[0]
    res.score["ours"], res.top_ok["ours"], res.span_ok["ours"] = _judge(
        q, [(h.ref_id, h.score, h.extra["ref_start"] - h.extra["asset_start"] * h.extra["time_scale"] ** -1)
            for h in hits])
    base: PairsBaseline = _STATE["baseline"]
    bh = base.search(_STATE["base_index"], base.embed(clip))
    res.score["baseline"], res.top_ok["baseline"], res.span_ok["baseline"] = _judge(q, bh)
    return i, res, t1 - t0, time.perf_counter() - t1


def _judge(q: Query, hits: list[tuple[int, float, float]]) -> tuple[float, bool, bool]:
    """Score, right-work-on-top, and span check; ``hits`` = (ref id, score, ref time of asset 0 s)."""
    if not hits:
        return 0.0, False, False
    if not q.positive:
        return max(h[1] for h in hits), False, False
    own = [h for h in hits if h[0] == q.track]
    if not own:
        return 0.0, False, False
    top = max(hits, key=lambda h: h[1])
    return own[0][1], top[0] == q.track, abs(own[0][2] - q.start) <= SPAN_TOLERANCE_S


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = cli.parser(__doc__)
    cli.add_data(p, "--music", sub="music", help="folder of recordings")
    cli.add_seed(p)
    cli.add_quick(p, "smoke run: fewer excerpts")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes for the queries")
    p.add_argument("--params", default="", help="JSON overrides of LandmarkParams (experiments; not for calibration)")
    cli.add_write_calibration(p)
    args = p.parse_args(argv)
    if args.write_calibration and (args.quick or args.params):
        p.error("--quick and --params runs are not calibration runs")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    require_dir(args.music, "--music")
    wall0 = time.perf_counter()
    tracks = load_tracks(args.music)
    if len(tracks) < HELD_OUT + 2:
        sys.exit(f"need at least {HELD_OUT + 2} recordings in {args.music}, found {len(tracks)}")
    held, registered = (sorted(side) for side in hold_out(len(tracks), HELD_OUT, args.seed))
    params = LandmarkParams(**json.loads(args.params)) if args.params else LandmarkParams()
    det = FingerprintDetector(params=params)
    base = PairsBaseline()
    reg_seconds = sum(tracks[i].clip.duration for i in registered)

    # references: fingerprint speed and index size
    index, base_index = det.new_index(), LandmarkIndex()
    cpu = {"ours": 0.0, "baseline": 0.0}
    for i in registered:
        c0 = time.process_time()
        e = det.embed_references([tracks[i].clip])[0]
        c1 = time.process_time()
        b = base.embed(tracks[i].clip)
        c2 = time.process_time()
        cpu["ours"] += c1 - c0
        cpu["baseline"] += c2 - c1
        index.add(np.full(e.vectors.shape[0], i), e.vectors, e.extra)
        base_index.add(np.full(b.vectors.shape[0], i), b.vectors, b.extra)
    size = {"ours": len(index.to_bytes()), "baseline": len(base_index.to_bytes())}
    rows = {"ours": index.rows, "baseline": base_index.rows}

    # latency: 30 s WAV clips of registered tracks, end to end against the full index
    latency, latency_cpu = [], []
    long_tracks = [i for i in registered if tracks[i].clip.duration > LATENCY_CLIP_S + 1]
    rng = np.random.default_rng(args.seed + 1)
    for i in long_tracks[: 3 if args.quick else 10]:
        a = int(rng.uniform(0, tracks[i].clip.duration - LATENCY_CLIP_S) * SR)
        wav = encode(tracks[i].clip.samples[a:a + int(LATENCY_CLIP_S * SR)], SR, "wav", "pcm_s16le")
        t0, c0 = time.perf_counter(), time.process_time()
        clip = decode_audio(wav, SR)
        hits = det.search(index, det.embed_queries([clip]))[0]
        latency.append(time.perf_counter() - t0)
        latency_cpu.append(time.process_time() - c0)
        assert hits and hits[0].ref_id == i, "latency clip not found"

    queries = make_queries(tracks, registered, held, args.seed, args.quick)
    _STATE.update(queries=queries, tracks=tracks, det=det, index=index, baseline=base, base_index=base_index,
                  seed=args.seed, held=held)
    results: list[Result | None] = [None] * len(queries)
    t_transform = t_search = 0.0
    if args.jobs > 1:
        import multiprocessing as mp
        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("fork")) as pool:
            for i, r, tt, ts in pool.map(run_query, range(len(queries)), chunksize=16):
                results[i], t_transform, t_search = r, t_transform + tt, t_search + ts
    else:
        for i in range(len(queries)):
            _, r, tt, ts = run_query(i)
            results[i], t_transform, t_search = r, t_transform + tt, t_search + ts

    # ----- figures
    pos = np.array([q.positive for q in queries])
    conds = np.array([q.condition for q in queries])
    lengths = np.array([q.length for q in queries])
    methods = ["ours", "baseline"]
    labels = {"ours": f"audio.fingerprint [{det.model_id}]", "baseline": base.label}
    score = {m: np.array([r.score[m] for r in results]) for m in methods}
    top_ok = {m: np.array([r.top_ok[m] for r in results]) for m in methods}
    span_ok = {m: np.array([r.span_ok[m] for r in results]) for m in methods}
    floor = {"ours": float(det.min_hit_matches), "baseline": 1.0}
    ops = {m: [operating_point(score[m][pos], score[m][~pos], f, right=top_ok[m][pos], floor=floor[m])
               for f in FPR_LEVELS] for m in methods}

    print(f"== Audio fingerprint benchmark ({'quick' if args.quick else 'full'}, seed {args.seed}) ==")
    print(f"Data: {args.music} — {len(tracks)} recordings ({len(registered)} registered, {reg_seconds / 60:.1f} min; "
          f"{len(held)} held out: {', '.join(tracks[i].name for i in held)})")
    print(f"Queries: {int(pos.sum())} positives (excerpts of {', '.join(f'{x:g}' for x in LENGTHS)} s), "
          f"{int((~pos).sum())} negatives ({', '.join(f'{x:g}' for x in NEG_LENGTHS)} s) x {len(CONDITIONS)} conditions")
    for length in NEG_LENGTHS:
        sel = ~pos & (lengths == length)
        print(f"  negatives {length:g} s: ours max {score['ours'][sel].max():.0f}, 99th pct "
              f"{np.percentile(score['ours'][sel], 99):.0f}; baseline max {score['baseline'][sel].max():.0f}")
    print("\nOperating points (threshold from the negatives of this run):")
    print_table(["method", "FPR target", "threshold", "recall", "measured FPR"],
                [[labels[m], pct(o.target), f">= {o.threshold:g}", pct(o.recall), pct(o.fpr)]
                 for m in methods for o in ops[m]])
    for length in LENGTHS:
        print(f"\nRecall per condition, {length:g} s excerpts (at each method's 1% / 0.1% FPR threshold; "
              "right work on top):")
        rows_out = []
        for c in CONDITIONS:
            sel = pos & (conds == c.name) & (lengths == length)
            row = [c.name, str(int(sel.sum()))]
            for m in methods:
                for o in ops[m]:
                    row.append(pct(float(np.mean(top_ok[m][sel] & (score[m][sel] >= o.threshold)))) if sel.any() else "-")
            sel_n = ~pos & (conds == c.name) & (lengths == length)
            row.append(f"{np.median(score['ours'][sel]):.0f}/{np.max(score['ours'][sel_n]) if sel_n.any() else 0:.0f}")
            rows_out.append(row)
        print_table(["condition", "n", "ours@1%", "ours@0.1%", "base@1%", "base@0.1%", "ours med pos/max neg"],
                    rows_out)
    found = top_ok["ours"] & (score["ours"] >= ops["ours"][0].threshold) & pos
    print(f"\nSpan accuracy (ours, found positives): ref start within {SPAN_TOLERANCE_S} s of the truth in "
          f"{pct(float(span_ok['ours'][found].mean()) if found.any() else 0)}")
    hours = reg_seconds / 3600
    per_hour = {m: rows[m] * BYTES_PER_ROW / hours for m in methods}
    fixed = {m: size[m] - rows[m] * BYTES_PER_ROW for m in methods}  # hash directory + archive headers
    print("\nSpeed and size (index = 11 bytes per landmark + a fixed hash directory):")
    print_table(["method", "fingerprint x RT/core", "landmarks/s", "bytes/hour", "directory", "1,000 h", "10,000 h"],
                [[labels[m], f"{reg_seconds / max(cpu[m], 1e-9):.0f}", f"{rows[m] / reg_seconds:.0f}",
                  f"{per_hour[m] / 1e6:.2f} MB", f"{fixed[m] / 1e6:.1f} MB",
                  f"{(per_hour[m] * 1000 + fixed[m]) / 1e9:.1f} GB",
                  f"{(per_hour[m] * 10000 + fixed[m]) / 1e9:.0f} GB"] for m in methods])
    if latency:
        print(f"Query latency, {LATENCY_CLIP_S:g} s WAV clip (decode + fingerprint + search, {len(registered)} works): "
              f"median {1000 * np.median(latency):.0f} ms, max {1000 * np.max(latency):.0f} ms wall; "
              f"median {1000 * np.median(latency_cpu):.0f} ms CPU")
    print(f"Query work: transforms {t_transform:.0f} s, both methods' fingerprint+search {t_search:.0f} s CPU; "
          f"wall {time.perf_counter() - wall0:.0f} s on {args.jobs} processes; peak RSS "
          f"{peak_rss_mib():.0f} MiB")

    if args.write_calibration:
        loose, strict = ops["ours"]
        entry = levels_entry(
            det.metric.value, strict.threshold, loose.threshold, {
                "recall_at_1pct_fpr": round(loose.recall, 4), "recall_at_0_1pct_fpr": round(strict.recall, 4),
                "negatives": int((~pos).sum()), "positives": int(pos.sum()),
                "score": "verified landmark matches in the best 10 s", "excerpt_seconds": list(LENGTHS),
                "negative_excerpt_seconds": list(NEG_LENGTHS),
                "index_bytes_per_hour": int(per_hour["ours"]), "index_fixed_bytes": int(fixed["ours"]),
                "fingerprint_x_realtime_per_core": round(reg_seconds / max(cpu["ours"], 1e-9)),
                "latency_30s_ms_median": round(1000 * float(np.median(latency))) if latency else None,
                "recall_by_condition_at_review": {
                    c.name: round(float(np.mean(top_ok["ours"][pos & (conds == c.name)]
                                                & (score["ours"][pos & (conds == c.name)] >= loose.threshold))), 4)
                    for c in CONDITIONS},
            })
        source = (f"benchmarks/audio_fingerprint.py on {args.music.name} ({len(registered)} registered, "
                  f"{len(held)} held out, {int(pos.sum())} positives, {int((~pos).sum())} negatives, seed {args.seed})")
        print()
        write_calibration(args.write_calibration, "audio.fingerprint", det.model_id, entry, "audio_fingerprint", source)


if __name__ == "__main__":
    main()
