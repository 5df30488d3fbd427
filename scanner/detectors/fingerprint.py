"""``audio.fingerprint``: spectral-peak landmarks hashed as tempo- and pitch-invariant triplets.

Pipeline (numpy only, so a one-shot ``scanner check`` does not pay for importing scipy; the clip
is first resampled to ``LandmarkParams.sr`` = 8 kHz with FFmpeg's resampler through PyAV)::

    samples -> STFT (1024/128 @ 8 kHz: 128 ms window, 16 ms hop)
            -> log-frequency power (24 bins per octave, 110 Hz - 3.5 kHz, triangular filters)
            -> peaks: local maxima of the level in +-12 frames x +-6 bins (+-192 ms x +-3
               semitones) that stand above their 1 s running mean and above -80 dB re full
               scale; sub-bin pitch by parabolic interpolation (about 15 peaks/s of music)
            -> triplets: each peak (anchor) with pairs from its next ``fan`` (5) peaks that lie
               0.05-1.5 s later and within +-12 semitones

Hash of a triplet (anchor a, targets b, c with a.t < b.t < c.t), in the spirit of Panako
(Six & Leman 2014) but with its own layout (``HASH_LAYOUT``)::

    df_b = pitch(b) - pitch(a), df_c = pitch(c) - pitch(a)   half-semitone steps:    pitch-shift invariant
    r    = (b.t - a.t) / (c.t - a.t)                          time ratio:             tempo invariant
    span = log(c.t - a.t), a coarse log scale (25 % steps)    changes 5 % under +-5 % tempo
    band = pitch(a) in half-octave bands                      changes 0.85 st under +-5 % pitch

``span`` and ``band`` are kept coarse and only add bits. Quantisation boundaries are the
weak point of any hash, so queries probe the neighbouring cell of every component whose
value lies near a cell edge (references store one hash). Matching then verifies geometry:
per reference, matches vote for a time scale ``s`` and offset ``o`` (asset time =
``s`` x reference time + ``o``, ``s`` searched over +-8 %) and must agree on one pitch shift
(within +-0.45 semitone); the inliers of the best (``s``, ``o``, pitch) are the evidence.

Score: the number of verified landmark matches (distinct asset landmarks consistent with
one time scale, offset and pitch shift) inside the best 10 s of the asset, so it does not
keep growing with the length of a long asset. Higher is stronger (``Metric.COSINE``
semantics); thresholds come from ``benchmarks/audio_fingerprint.py``. A clean copy scores
about 100 per second of copied audio (capped by the 10 s window), a copy under 0 dB SNR
noise or +-1 semitone pitch shift about 20-30 per second. ``extra["matches"]`` counts
the verified matches over the whole span.

Query cost: a probe fetches every index row stored under its hash, and hashes are skewed (on
music a probe meets ~40x the rows a uniform hash would), so the rows a query fetches grow with
the indexed hours. A query spends at most ``MATCH_BUDGET_PER_PROBE`` rows per probe on average,
cheapest per expected match first (rare hashes, and the landmark's own cell before neighbour
cells: ``_within_budget``); below that (catalogs of a few tens of hours) every probe is used.
The references those rows shortlist (``SHORTLIST_REFS``, densest offset first) then collect
their rows from the hashes left out, by a binary search inside each bucket (buckets are sorted
by reference, see ``scanner.index.landmarks``), so a shortlisted copy scores as it would with
every probe. ``benchmarks/index_scale.py --only audio`` measures cost and recall from 10 to
1,000 (synthetic) hours.

Hashing speed is about 600x real time per core; an index holds about 140 landmarks per
second of reference audio at 11 bytes each (about 5.6 MB per hour, plus a fixed 10 MB hash
directory; see ``scanner.index.landmarks``).
Long clips are processed in blocks (resampling, spectrogram, triplets), so memory beyond
the decoded clip stays bounded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from scanner.config import Settings
from scanner.detectors.base import Embedding, Hit, OwnIndexDetector, floors_for, register
from scanner.index.landmarks import LandmarkIndex
from scanner.media.audio import AudioClip
from scanner.types import Landmarks, Metric, Modality, Span

MODEL_ID = "landmark-triplet-v1"
HASH_LAYOUT = "band|span|r|df_b|df_c mixed radix"


@dataclass(frozen=True)
class LandmarkParams:
    """Everything that shapes the landmarks; an index built with other values is refused."""

    sr: int = 8000
    n_fft: int = 1024
    hop: int = 128
    f_min: float = 110.0
    bins_per_octave: int = 24
    octaves: int = 5
    contrast_window_s: float = 1.0
    peak_frames: int = 12  # neighbourhood half-size in time
    peak_bins: int = 6  # ... and in log-frequency bins
    min_contrast_db: float = 0.0
    maxima_of: str = "level"  # "contrast" or "level": the surface whose local maxima are peaks
    smooth_frames: int = 1
    floor_dbfs: float = -80.0
    fan: int = 5  # targets considered per anchor -> up to fan*(fan-1)/2 triplets
    query_fan: int = 5  # the same for queries; more than ``fan`` tolerates extra (noise, other work) peaks
    dt_min_s: float = 0.05  # anchor -> first target
    dt_max_s: float = 1.5  # anchor -> last target
    span_min_s: float = 0.15  # anchor -> last target, smallest
    df_max_st: float = 12.0
    df_step_st: float = 0.5
    r_levels: int = 8
    span_ratio: float = 1.25
    band_st: float = 6.0
    probe_margin: float = 0.25  # query probes a neighbour cell when this close to an edge (cell units)
    hash_layout: str = HASH_LAYOUT

    @property
    def frame_s(self) -> float:
        return self.hop / self.sr


# verification
SCALE_RANGE = 0.08  # time scales searched: 1 +- this
SCALE_STEP = 0.01
PITCH_TOL_ST = 0.45
OFFSET_TOL_FRAMES = 2.5
SCORE_WINDOW_S = 10.0  # the score counts matches inside the best window of this length
# Gating floor (calibration entry "floors"): min_hit_matches, fewer verified matches are not reported at all
# (calibrated thresholds sit well above).
MIN_SECONDS = 1.0
# index rows a query may fetch per probe, on average (see _within_budget). Measured with
# benchmarks/index_scale.py --only audio (10 s queries, synthetic hours): with the shortlist, 64
# finds every copy at 1,000 h (median score 744; 754 without a budget) at 1.9x the 10 h cost
# (256 rarest-first without the shortlist: 4.8x, one copy lost, median 162); 32 loses the weakest
# (5 dB noise) copy there. Catalogs below ~25 h never reach it.
MATCH_BUDGET_PER_PROBE = 64
SHORTLIST_REFS = 4  # references the budgeted rows shortlist and collect the left-out probes' rows for
SHORTLIST_MAX_FLIPS = 1  # ... from probes with at most this many neighbour cells (see _search_one)
BLOCK_FRAMES = 4096  # spectrogram computed in blocks of this many frames (bounded memory)


@register("audio.fingerprint")
class FingerprintDetector(OwnIndexDetector):
    """A registered recording in an asset's audio (landmark hashes, robust to speed and pitch changes)."""

    modality = Modality.AUDIO
    metric = Metric.COUNT  # verified landmark matches
    index_type = LandmarkIndex
    score_unit = "matching landmark hashes (aligned in time)"  # what the count counts, in reports
    FLOORS = ("min_hit_matches",)

    def __init__(self, settings: Settings | None = None, params: LandmarkParams | None = None):
        self.p = params or LandmarkParams()
        self.model_id = MODEL_ID
        self.weights_sha256 = "none"
        self.dim = 1
        self.floors = floors_for(self, settings or Settings(), self.model_id)
        self.min_hit_matches = int(self.floors["min_hit_matches"])
        self._fb = _log_filterbank(self.p)

    @property
    def params(self) -> dict[str, Any]:
        return asdict(self.p)

    # ----- signals ------------------------------------------------------------
    def embed_references(self, clips: Sequence[AudioClip]) -> list[Embedding]:
        return [self.embed(c) for c in clips]

    def embed_queries(self, clips: Sequence[AudioClip]) -> list[Embedding]:
        return [self.embed(c, query=True) for c in clips]

    def embed(self, clip: AudioClip, query: bool = False) -> Embedding:
        """Triplet landmarks of one clip: ``vectors[:, 0]`` = hash; ``extra`` = t, f, dt, v."""
        p = self.p
        x = np.nan_to_num(np.asarray(clip.samples, dtype=np.float32).reshape(-1), nan=0.0, posinf=1.0, neginf=-1.0)
        x = _resample(x, int(clip.sr), p.sr)
        if x.shape[0] < MIN_SECONDS * p.sr:
            return _empty(f"audio.fingerprint: audio too short ({x.shape[0] / p.sr:.2f} s < {MIN_SECONDS:g} s); not compared")
        peaks_t, peaks_f = self.peaks(x)
        if peaks_t.size < 3:
            level = 20 * np.log10(max(float(np.sqrt(np.mean(np.square(x - x.mean())))), 1e-12))
            why = "silent" if level < p.floor_dbfs + 10 else "no distinct spectral peaks (steady tone or noise)"
            return _empty(f"audio.fingerprint: {why} (RMS {level:.0f} dBFS); not compared")
        trip = _triplets(peaks_t, peaks_f, p, p.query_fan if query else p.fan)
        if trip is None:
            return _empty("audio.fingerprint: too few spectral peaks to form landmarks; not compared")
        t, f, dt, v = trip
        return Embedding(
            vectors=_pack(np.floor(v).astype(np.int64), p).reshape(-1, 1),
            extra={"t": t, "f": f, "dt": dt, "v": v},
        )

    def peaks(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Spectral peaks: (frame times as float, pitch in semitones above ``f_min``), sorted by time."""
        p = self.p
        n_frames = 1 + x.shape[0] // p.hop
        win = max(1, int(round(p.contrast_window_s / p.frame_s)))
        margin = win // 2 + p.peak_frames + 2
        ts, fs = [], []
        for start in range(0, n_frames, BLOCK_FRAMES):
            stop = min(n_frames, start + BLOCK_FRAMES)
            a, b = max(0, start - margin), min(n_frames, stop + margin)
            db = self._log_spec(x, a, b)
            t, f = _pick(db, win, p)
            t = t + a
            keep = (t >= start) & (t < stop)
            ts.append(t[keep])
            fs.append(f[keep])
        t = np.concatenate(ts)
        f = np.concatenate(fs)
        order = np.lexsort((f, t))
        return t[order], f[order]

    def _log_spec(self, x: np.ndarray, a: int, b: int) -> np.ndarray:
        """dB log-frequency power of frames ``a``..``b`` (frame m centred on sample m*hop), shape (bins, frames)."""
        p = self.p
        half = p.n_fft // 2
        lo, hi = a * p.hop - half, (b - 1) * p.hop + half
        seg = x[max(lo, 0):max(min(hi, x.shape[0]), 0)]
        seg = np.pad(seg, (max(0, -lo), max(0, hi - max(lo, 0) - seg.shape[0])))
        frames = np.lib.stride_tricks.sliding_window_view(seg, p.n_fft)[:: p.hop]
        spec = np.fft.rfft(frames * _window(p.n_fft), axis=1)
        power = spec.real**2 + spec.imag**2
        logf = (power.astype(np.float32) @ self._fb.T).T  # (bins, frames)
        ref = (np.sum(_window(p.n_fft)) / 2.0) ** 2  # full-scale sine
        return 10.0 * np.log10(np.maximum(logf / ref, 10 ** ((p.floor_dbfs - 20) / 10)))

    # ----- index --------------------------------------------------------------
    def _search_one(self, index: LandmarkIndex, q: Embedding) -> list[Hit]:
        if q.empty or index.rows == 0:
            return []
        p = self.p
        rows, hashes, flips = _probes(q.extra["v"], p)
        lo, hi = index.ranges(hashes)
        keep = _within_budget(hi - lo, flips)
        span_q = float(q.extra["t"].max() - q.extra["t"].min()) if q.extra["t"].size else 0.0
        qi, ref, tr, pitch = _filtered(q, rows[keep], index.gather(lo[keep], hi[keep]))
        left_out = np.ones(hashes.size, bool)
        left_out[keep] = False
        # (probes with two or more neighbour cells are skipped here: 46 % of all probes, 1.6 % of true matches)
        left_out = np.flatnonzero(left_out & (hi > lo) & (flips <= SHORTLIST_MAX_FLIPS))
        if left_out.size and ref.size:
            # The budget left the common hashes out. The references the rare ones shortlist get
            # their rows from those too (a binary search per bucket; buckets are sorted by
            # reference), so a shortlisted reference is scored almost as without a budget.
            short = _shortlist(ref, q.extra["t"][qi] - tr, span_q, SHORTLIST_REFS)
            if short.size:
                probe = np.repeat(left_out, short.size)
                lo2, hi2 = index.ranges(hashes[probe], np.tile(short, left_out.size))
                found = np.flatnonzero(hi2 > lo2)
                # bounded too (a reference holding most of some bucket, e.g. a very long drone)
                found = found[_within_budget(hi2[found] - lo2[found], flips[probe[found]], probes=hashes.size)]
                more = _filtered(q, rows[probe[found]], index.gather(lo2[found], hi2[found]))
                qi, ref, tr, pitch = (np.concatenate([a, b]) for a, b in zip((qi, ref, tr, pitch), more))
        if ref.size == 0:
            return []
        tq = q.extra["t"][qi].astype(np.float64)
        hits = []
        for sel in _candidates(ref, tq - tr, span_q, self.min_hit_matches):
            if _pitch_window_max(pitch[sel]) < self.min_hit_matches:
                continue  # no pitch shift shared by enough matches: _verify would find none
            rid = int(ref[sel[0]])
            fit = _verify(qi[sel], tq[sel], tr[sel], pitch[sel], span_q, SCORE_WINDOW_S / p.frame_s,
                          self.min_hit_matches)
            if fit is None or fit["matches"] < self.min_hit_matches:
                continue
            fs = p.frame_s
            dt_q = q.extra["dt"]
            q_lo = float(fit["tq_min"])
            q_hi = float(fit["tq_max"] + dt_q[fit["last_row"]])
            s, o = fit["scale"], fit["offset"]
            hits.append(Hit(int(rid), float(fit["score"]), evidence=(
                Span(asset=(round(q_lo * fs, 3), round(q_hi * fs, 3)),
                     ref=(round(max(0.0, (q_lo - o) / s) * fs, 3), round(max(0.0, (q_hi - o) / s) * fs, 3))),
                Landmarks(int(fit["matches"]), time_scale=round(float(s), 4), pitch_shift=round(float(fit["pitch"]), 2),
                          asset_landmarks=int(q.vectors.shape[0])),
            )))
        hits.sort(key=lambda h: -h.score)
        return hits


# --------------------------------------------------------------------------- signal helpers

F_SCALE = 64.0  # stored anchor pitch unit: 1/64 semitone
# largest |query - reference| anchor pitch (F_SCALE units) a match may have: a pitch shift in the searched range
_PITCH_CODE_MAX = int((12 * np.log2(1 + SCALE_RANGE) + PITCH_TOL_ST) * F_SCALE)


def _empty(note: str) -> Embedding:
    return Embedding(np.zeros((0, 1), np.int64), note)


_WINDOWS: dict[int, np.ndarray] = {}


def _window(n: int) -> np.ndarray:
    """Periodic Hann window."""
    if n not in _WINDOWS:
        _WINDOWS[n] = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)
    return _WINDOWS[n]


def _resample(x: np.ndarray, sr: int, target: int, chunk_s: float = 30.0) -> np.ndarray:
    """Resample with libswresample (PyAV), fed in chunks: a stateful stream, so long clips never
    need more than the output plus one chunk."""
    if sr == target:
        return x
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=target)
    out = []
    step = max(1, int(chunk_s * sr))
    for a in range(0, x.shape[0], step):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[a:a + step], np.float32).reshape(1, -1),
                                           format="flt", layout="mono")
        frame.sample_rate = sr
        out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros(0, np.float32)


def _running_mean(a: np.ndarray, size: int) -> np.ndarray:
    """Mean over ``size`` frames along axis 1 (window [i - size//2, i + size - 1 - size//2]), edges repeated."""
    lo, hi = size // 2, size - 1 - size // 2
    padded = np.pad(a, ((0, 0), (lo + 1, hi)), mode="edge").astype(np.float64)
    c = np.cumsum(padded, axis=1)
    return ((c[:, size:] - c[:, :-size]) / size).astype(a.dtype)


def _running_max(a: np.ndarray, half: int, axis: int) -> np.ndarray:
    """Max over +-``half`` along ``axis``, edges repeated (van Herk / Gil-Werman: O(1) per element)."""
    if half <= 0:
        return a
    a = np.moveaxis(a, axis, -1)
    n, w = a.shape[-1], 2 * half + 1
    blocks = -(-(n + 2 * half) // w)
    pad_hi = blocks * w - n - half
    x = np.pad(a, [(0, 0)] * (a.ndim - 1) + [(half, pad_hi)], mode="edge")
    xb = x.reshape(a.shape[:-1] + (blocks, w))
    prefix = np.maximum.accumulate(xb, axis=-1).reshape(x.shape)
    suffix = np.maximum.accumulate(xb[..., ::-1], axis=-1)[..., ::-1].reshape(x.shape)
    out = np.maximum(suffix[..., :n], prefix[..., w - 1:w - 1 + n])
    return np.moveaxis(out, -1, axis)


def _log_filterbank(p: LandmarkParams) -> np.ndarray:
    """Triangular filters on a log-frequency axis, each at least ~2 FFT bins wide, shape (bins, n_fft//2+1)."""
    n_bins = p.bins_per_octave * p.octaves
    k = np.arange(n_bins)
    centre = p.f_min * 2.0 ** (k / p.bins_per_octave) * p.n_fft / p.sr  # in FFT bins
    width = np.maximum(centre * (2.0 ** (1.0 / p.bins_per_octave) - 1.0), 1.0)
    fft_bins = np.arange(p.n_fft // 2 + 1)[None, :]
    w = np.maximum(0.0, 1.0 - np.abs(fft_bins - centre[:, None]) / width[:, None])
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-9)
    return w.astype(np.float32)


def _pick(db: np.ndarray, win: int, p: LandmarkParams) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of one spectrogram block: (frame index, pitch in semitones), unsorted."""
    if db.shape[1] == 0:
        return np.zeros(0), np.zeros(0)
    if p.smooth_frames > 1:
        db = _running_mean(db, p.smooth_frames)
    contrast = db - _running_mean(db, win)
    surface = contrast if p.maxima_of == "contrast" else db
    local = _running_max(_running_max(surface, p.peak_bins, axis=0), p.peak_frames, axis=1)
    mask = (surface == local) & (contrast >= p.min_contrast_db) & (db > p.floor_dbfs)
    mask[0, :] = mask[-1, :] = False  # pitch of edge bins cannot be interpolated
    fb, tf = np.nonzero(mask)
    if fb.size == 0:
        return np.zeros(0), np.zeros(0)
    # plateaus (equal neighbours) would give several peaks: keep the first in time of each
    dup = np.zeros(fb.size, bool)
    prev = (tf > 0)
    dup[prev] = mask[fb[prev], tf[prev] - 1]
    fb, tf = fb[~dup], tf[~dup]
    y0, y1, y2 = db[fb - 1, tf], db[fb, tf], db[fb + 1, tf]
    den = y0 - 2 * y1 + y2
    delta = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
    delta = np.clip(delta, -0.5, 0.5)
    semis = (fb + delta) * (12.0 / p.bins_per_octave)
    return tf.astype(np.float64), semis


def _triplets(t: np.ndarray, f: np.ndarray, p: LandmarkParams, fan: int):
    """Anchor/target triplets -> (anchor frame, anchor pitch code, span frames, component values)."""
    n = t.size
    dt_min = p.dt_min_s / p.frame_s
    dt_max = p.dt_max_s / p.frame_s
    span_min = p.span_min_s / p.frame_s
    depth = int(min(n - 1, 64))  # the next peaks in time that may be targets
    if depth < 2:
        return None
    pairs = [(i, j) for i in range(fan) for j in range(i + 1, fan)]
    A, B, C = [], [], []
    for a0 in range(0, n, 16384):  # anchors in chunks: bounded memory for long clips
        anchors = np.arange(a0, min(n, a0 + 16384))
        idx = anchors[:, None] + np.arange(1, depth + 1)[None, :]
        inside = idx < n
        idx = np.where(inside, idx, n - 1)
        dtt = t[idx] - t[anchors, None]
        dff = f[idx] - f[anchors, None]
        valid = inside & (dtt >= dt_min) & (dtt <= dt_max) & (np.abs(dff) <= p.df_max_st)
        rank = np.cumsum(valid, axis=1) - 1
        valid &= rank < fan  # the first `fan` peaks in the target zone
        tgt = np.full((anchors.size, fan), -1, np.int64)
        ai, col = np.nonzero(valid)
        tgt[ai, rank[ai, col]] = idx[ai, col]
        for i, j in pairs:
            ok = (tgt[:, i] >= 0) & (tgt[:, j] >= 0)
            A.append(anchors[ok])
            B.append(tgt[ok, i])
            C.append(tgt[ok, j])
    a, b, c = np.concatenate(A), np.concatenate(B), np.concatenate(C)
    span = t[c] - t[a]
    keep = (span >= span_min) & (t[c] > t[b])
    a, b, c, span = a[keep], b[keep], c[keep], span[keep]
    if a.size == 0:
        return None
    order = np.lexsort((c, b, a))
    a, b, c, span = a[order], b[order], c[order], span[order]
    ratio = (t[b] - t[a]) / span
    n_df = int(round(2 * p.df_max_st / p.df_step_st)) + 1
    v = np.stack([
        f[a] / p.band_st,
        np.log(span / span_min) / np.log(p.span_ratio),
        ratio * p.r_levels,
        (f[b] - f[a]) / p.df_step_st + (n_df // 2) + 0.5,
        (f[c] - f[a]) / p.df_step_st + (n_df // 2) + 0.5,
    ], axis=1).astype(np.float32)
    return (
        t[a].astype(np.float32),
        np.rint(f[a] * F_SCALE).astype(np.float32),
        np.rint(span).astype(np.float32),
        v,
    )


def _radices(p: LandmarkParams) -> tuple[int, ...]:
    n_band = int(np.ceil(p.octaves * 12 / p.band_st)) + 1
    n_span = int(np.ceil(np.log(p.dt_max_s / p.span_min_s) / np.log(p.span_ratio))) + 1
    n_df = int(round(2 * p.df_max_st / p.df_step_st)) + 1
    return (n_band, n_span, p.r_levels, n_df, n_df)


def _pack(cells: np.ndarray, p: LandmarkParams) -> np.ndarray:
    """Cell indices (rows x 5) -> hashes, mixed radix (11 x 12 x 8 x 49 x 49 = 2.5 M values with the
    default params); cells are clipped to range."""
    h = np.zeros(cells.shape[0], np.int64)
    for k, radix in enumerate(_radices(p)):
        h = h * radix + np.clip(cells[:, k], 0, radix - 1)
    return h


def _probes(v: np.ndarray, p: LandmarkParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes to look up for query component values ``v``: the cell of each component and,
    near an edge, its neighbour (all combinations). Returns (query row, hash, flips), flips being
    how many components of that probe are a neighbour cell (0 for the landmark's own cell)."""
    cells = np.floor(v).astype(np.int64)
    frac = v - cells
    alt = np.where(frac < p.probe_margin, -1, np.where(frac > 1 - p.probe_margin, 1, 0))
    rows = np.arange(v.shape[0])
    flips = np.zeros(v.shape[0], np.int64)
    for k in range(v.shape[1]):  # each probe near an edge of component k gets a twin in the next cell
        near = np.nonzero(alt[rows, k])[0]
        if near.size:
            twin = cells[near].copy()
            twin[:, k] += alt[rows[near], k]
            cells = np.concatenate([cells, twin])
            rows = np.concatenate([rows, rows[near]])
            flips = np.concatenate([flips, flips[near] + 1])
    return rows, _pack(cells, p), flips


# A probe in a neighbour cell finds the true landmark far less often than the landmark's own
# cell: on the 16 benchmark queries of index_scale.py --only audio (real tracks, half with 5 dB
# noise) 46 % of own-cell probes met their true match, 3.9 % of one-flip probes, 0.5 % of two-flip
# ones (each flip ~10x less), and twins are 85 % of all probes. The budget ranks probes by rows
# per expected true match: bucket rows x FLIP_COST ** flips.
FLIP_COST = 10.0


def _within_budget(sizes: np.ndarray, flips: np.ndarray | None = None,
                   per_probe: int | None = None, probes: int | None = None) -> np.ndarray:
    """Positions of the probes to look up, in probe order: all of them while their rows fit
    ``per_probe`` x ``probes`` (default: as many as ``sizes``), else the cheapest per expected
    match first (rows x ``FLIP_COST`` ** flips: rare hashes, own cells before neighbour cells)
    until that budget is spent.

    Why: the rows a probe returns grow with the catalog (a hash's bucket holds every reference
    landmark with that hash, and landmark hashes are skewed: on music a query probe meets ~40x
    the rows a uniform hash would), so matching cost would grow linearly with indexed hours.
    A common hash (a steady chord, a drum pattern) is also the least telling: it matches many
    references at random, which verification then rejects. Rare hashes carry the evidence;
    spending a fixed budget on them keeps the query cost flat as the catalog grows, and below
    the budget (catalogs up to a few tens of hours) every probe is used, as before."""
    sizes = np.asarray(sizes, np.int64)
    budget = (MATCH_BUDGET_PER_PROBE if per_probe is None else per_probe) * max(1, sizes.size if probes is None else probes)
    if int(sizes.sum()) <= budget:
        return np.arange(sizes.size)
    cost = sizes.astype(np.float64)
    if flips is not None:
        cost *= FLIP_COST ** np.asarray(flips, np.float64)
    order = np.argsort(cost, kind="stable")
    return np.sort(order[np.cumsum(sizes[order]) <= budget])


def _filtered(q: Embedding, qrow: np.ndarray, m) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The index rows ``m`` (found for query landmarks ``qrow[m.query]``) that can belong to a
    copy: an anchor pitch one searched pitch shift away and a landmark span that agrees with a
    time scale in the searched range (cheap integer tests before any alignment: a large index
    returns many random matches). Returns (query landmark, reference, reference time, pitch shift)."""
    qi = qrow[m.query]
    pitch_code = q.extra["f"].astype(np.int32)[qi] - m.f.astype(np.int32)
    ratio = q.extra["dt"].astype(np.float32)[qi] / np.maximum(m.dt.astype(np.float32), 1.0)
    limit = np.float32((1 + SCALE_RANGE) * np.exp(0.12))
    sel = np.flatnonzero((np.abs(pitch_code) <= _PITCH_CODE_MAX) & (ratio <= limit) & (ratio >= 1 / limit))
    return qi[sel], m.ref[sel], m.t[sel].astype(np.float64), pitch_code[sel].astype(np.float64) / F_SCALE


def _shortlist(ref: np.ndarray, offset: np.ndarray, span_q: float, n: int) -> np.ndarray:
    """Up to ``n`` references with the most matches in two neighbouring coarse offset bins (the
    bins of ``_candidates``), at least 2, most first (ties: lower id)."""
    width = max(32.0, SCALE_RANGE * span_q + 2 * OFFSET_TOL_FRAMES)
    b = np.floor(offset / width).astype(np.int64)
    b -= b.min()
    stride = int(b.max()) + 2
    key, counts = np.unique(ref.astype(np.int64) * stride + b, return_counts=True)
    pair = counts.copy()
    adjacent = np.flatnonzero(key[1:] == key[:-1] + 1)
    pair[adjacent] += counts[adjacent + 1]
    refs = key // stride
    ok = pair >= 2
    refs, pair = refs[ok], pair[ok]
    order = np.lexsort((refs, -pair))
    _, first = np.unique(refs[order], return_index=True)  # each reference once, at its best pair
    best = np.sort(first)[:n]
    return refs[order][best]


def _candidates(ref: np.ndarray, offset: np.ndarray, span_q: float, min_matches: int) -> list[np.ndarray]:
    """Per reference, the matches around its densest coarse offset (asset time - reference time).

    Bins are as wide as the drift a +-8 % time scale causes over the asset, so a stretched copy
    still falls into one bin or two neighbouring ones; only references with at least
    ``min_matches`` there are verified. One sort of all matches by (reference, bin); the match
    position rides in the low bits of the sort key when it fits in 63 bits, so it is a value sort
    (several times faster than an argsort; same order as a stable argsort)."""
    n = ref.size
    if n == 0:
        return []
    width = max(32.0, SCALE_RANGE * span_q + 2 * OFFSET_TOL_FRAMES)
    b = np.floor(offset / width).astype(np.int64)
    b -= b.min()
    r = ref.astype(np.int64)
    r -= r.min()
    stride = int(b.max()) + 2  # a gap after the last bin: bins of two references are never adjacent
    key = r * stride + b
    idx_bits = max(1, int(n - 1).bit_length())
    if int(key.max()).bit_length() + idx_bits <= 63:
        packed = np.sort((key << idx_bits) | np.arange(n, dtype=np.int64))
        by_bin = packed & ((1 << idx_bits) - 1)  # matches grouped by bin, bins in key order
        skey = packed >> idx_bits
    else:
        by_bin = np.argsort(key, kind="stable")
        skey = key[by_bin]
    starts = np.flatnonzero(np.concatenate([[True], skey[1:] != skey[:-1]]))
    uniq = skey[starts]
    bounds = np.append(starts, n)
    counts = np.diff(bounds)
    nxt = np.zeros_like(counts)
    adjacent = uniq[1:] == uniq[:-1] + 1
    nxt[:-1][adjacent] = counts[1:][adjacent]
    pair = counts + nxt  # matches in bin i and bin i+1 of the same reference
    refs = uniq // stride  # non-decreasing: uniq is sorted by (reference, bin)
    group = np.flatnonzero(np.concatenate([[True], refs[1:] != refs[:-1]]))
    top = np.maximum.reduceat(pair, group)  # each reference's best pair
    size = np.diff(np.append(group, refs.size))
    is_top = np.flatnonzero(pair == np.repeat(top, size))
    best = is_top[np.searchsorted(is_top, group)]  # the first (lowest bin) best pair of each reference
    out = []
    for i in best[top >= min_matches]:
        stop = bounds[i + 2] if i + 1 < uniq.size and adjacent[i] else bounds[i + 1]
        out.append(np.sort(by_bin[bounds[i]:stop]))
    return out


def _pitch_window_max(pitch: np.ndarray) -> int:
    """Most matches whose pitch shifts fit one window of 2 x ``PITCH_TOL_ST``: an upper bound on
    the matches ``_verify`` can accept (its inliers share a pitch shift within that tolerance)."""
    xs = np.sort(pitch)
    ends = np.searchsorted(xs, xs + 2 * PITCH_TOL_ST + 1e-9, side="right")
    return int(np.max(ends - np.arange(xs.size))) if xs.size else 0


def _window_count(t: np.ndarray, key: np.ndarray, window: float) -> int:
    """Most distinct ``key`` values whose first time falls inside one window of ``window`` frames."""
    uk, first = np.unique(key, return_index=True)
    times = np.sort(t[first])
    ends = np.searchsorted(times, times + window, side="left")
    return int(np.max(ends - np.arange(times.size))) if times.size else 0


def _verify(qi: np.ndarray, tq: np.ndarray, tr: np.ndarray, pitch: np.ndarray, span_q: float,
            window: float, min_matches: int) -> dict | None:
    """Best (time scale, offset, pitch shift) for one reference's matches and its inliers."""
    best = None
    scales = 1.0 + np.arange(-SCALE_RANGE, SCALE_RANGE + 1e-9, SCALE_STEP)
    width = 2 * OFFSET_TOL_FRAMES + SCALE_STEP / 2 * span_q
    for s in scales:
        o = tq - s * tr
        order = np.argsort(o)
        os_ = o[order]
        ends = np.searchsorted(os_, os_ + width, side="right")
        counts = ends - np.arange(os_.size)
        top = np.argsort(-counts)[:3]
        for i in top:
            if counts[i] < min_matches or (best is not None and counts[i] <= best[0]):
                continue
            members = order[i:ends[i]]
            pm = _mode(pitch[members])
            inl = members[np.abs(pitch[members] - pm) <= PITCH_TOL_ST]
            n = np.unique(qi[inl]).size
            if best is None or n > best[0]:
                best = (n, s, inl, pm)
    if best is None:
        return None
    _, s, inl, pm = best
    # refine: least-squares line through the inliers, then re-collect inliers over all matches
    for _ in range(2):
        if inl.size >= 3 and np.ptp(tr[inl]) > 20:
            s_fit, o_fit = np.polyfit(tr[inl], tq[inl], 1)
            if abs(s_fit - 1.0) <= SCALE_RANGE + SCALE_STEP:
                s = s_fit
        o = float(np.median(tq[inl] - s * tr[inl]))
        pm = float(np.median(pitch[inl]))
        res = np.abs(tq - s * tr - o)
        good = (res <= OFFSET_TOL_FRAMES) & (np.abs(pitch - pm) <= PITCH_TOL_ST)
        new = np.nonzero(good)[0]
        if new.size < min_matches:
            break
        inl = new
    matches = np.unique(qi[inl]).size
    last = inl[np.argmax(tq[inl])]
    return {
        "score": _window_count(tq[inl], qi[inl], window),
        "matches": matches, "scale": float(s), "offset": float(np.median(tq[inl] - s * tr[inl])),
        "pitch": float(np.median(pitch[inl])), "tq_min": float(tq[inl].min()), "tq_max": float(tq[inl].max()),
        "last_row": int(qi[last]),
    }


def _mode(x: np.ndarray) -> float:
    """Centre of the densest +-PITCH_TOL_ST window of ``x``."""
    xs = np.sort(x)
    ends = np.searchsorted(xs, xs + 2 * PITCH_TOL_ST, side="right")
    i = int(np.argmax(ends - np.arange(xs.size)))
    return float(np.median(xs[i:ends[i]]))
