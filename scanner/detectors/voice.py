"""``audio.voice``: speaker embeddings of the speech in a clip, compared by cosine similarity.

Model: the GE2E speaker encoder (Wan et al. 2018, "Generalized end-to-end loss for speaker
verification") as trained and shipped by ``resemblyzer`` (its wheel carries
``pretrained.pt``; see ``models/voice-resemblyzer-ge2e.json``): 40-band mel power
spectrogram (25 ms windows, 10 ms hop, 16 kHz) -> 3-layer LSTM (256) -> linear 256 -> ReLU ->
L2 norm. The network is declared here and loaded from that checkpoint (exact key and shape
match required); resemblyzer itself is not imported (its module imports ``webrtcvad``, whose
energy-based decisions call noise, tones and music "speech" -- measured: 80-100 % of frames
of every instrumental track in the shared music set).

Speech is found with **Silero VAD** (neural, shipped in the ``silero-vad`` wheel, run through
TorchScript): on the shared data it marks 0 % of frames of white noise, a 440 Hz tone and 20
instrumental tracks as speech (at most 1 % of one track), against 60-87 % of LibriSpeech
utterances. Frames are 32 ms; a region starts at probability 0.5 and ends below 0.35; gaps
up to 0.25 s are closed and regions shorter than 0.25 s dropped.

* ``embed_references(clips)``: five rows per clip. First the embedding of all its speech
  (silences cut out, level normalised), averaged over 1.6 s partials with 0.8 s hop (the
  encoder's training length); then, for multi-condition enrolment, one row per
  ``REF_CONDITIONS`` (pink noise at 10 dB SNR, a synthetic music bed at 10 dB, a synthetic
  room with RT60 0.5 s, synthetic string-like pads and a melody at 0 dB, applied to at most
  60 s of the speech): the mean of the clean embedding and the degraded copy's, renormalised.
  The beds are generated here in numpy (no recording behind them: the shared music files are
  evaluation data). A query's score is its best row against
  the reference's best row, so a noisy, scored or reverberant query meets the reference as it
  would sound there. Less than the ``min_ref_speech_s`` floor (1.5 s) of speech -> empty, with a note.
* ``embed_queries(clips)``: one row per window of ``WINDOW_S`` (3 s) of speech, hop
  ``HOP_S`` (1.5 s), taken over speech segments (speech regions less than 1 s apart; the
  silences inside a segment are cut out), each with ``extra["start"]``/``["end"]`` in seconds
  of the given clip; with ``segment_means`` on (off by default: measured, no gain), also one row
  per segment of two or more windows, the mean of its window rows (``extra["segment_mean"]``
  True, span = the segment). Then, with ``denoise`` on (the default), each window once more after
  **RNNoise** (``scanner/detectors/voice_denoise.py``; ``extra["denoised"]`` True, same span): the
  speech of overlapping windows is denoised once as one run, and a window RNNoise lowered by
  ``DENOISE_MAX_DROP_DB`` (15 dB) or more gets no such row (no speech was left in it). At most ``MAX_WINDOWS`` windows
  per clip, spread evenly over the whole clip when there are more (an hour of talk yields
  well over 1,000; the note says so).

Measured by ``benchmarks/likeness.py`` (5 LibriSpeech speakers; see the calibration entry's
``measured``), thresholds at 1 % / 0.1 % false accepts *per query* (a query's best row against a
talent's best row is one trial), 5 s queries at review, same run: plain detector -> multi-condition
enrolment -> + denoised query rows (shipped; review 0.7294 -> 0.7342, block 0.7609 -> 0.7671):
white noise at 10 dB 46 -> 98 -> 100 %, music bed at 10 dB 91 -> 99 -> 100 %, music at equal loudness
(0 dB, the 20 shared orchestral tracks) 26 -> 81 -> 97 % (3 s queries 62 -> 82 %), a 0.7 s room
47 -> 98 -> 98 %, phone band 100 -> 98 -> 98 %, MP3 and Vorbis 100 %; clean utterance EER 1.8 % in
all three. The denoised rows alone, with the clean reference row only, give music 0 dB 88 % and a
room 58 %: denoising helps where a bed covers the voice and not against reverberation, which the
enrolment's room row covers. Their cost: queries 40x -> 12x real time (5 s clips under music, one
thread), an hour of talk 91 s instead of about 35 s; ``denoise = false`` is the fast option (its
rows then meet the shipped, slightly stricter thresholds). Earlier, on the first three enrolment
rows only, the 0 dB pads row added 13 points at music 0 dB. Cohort score normalisation (AS-norm), several reference samples (max or
centroid) and the segment-mean query rows were measured and are not used: with the few speakers
there are for a cohort AS-norm lowered every figure, and the others changed nothing measurable.
Also measured and not used (harness on the benchmark's cached 5 s queries): a second 0 dB row
(the chords bed at 0 dB: music 0 dB +4 points, room and noise at 3 s -1 to -3, one more copy per
reference); harmonic suppression of query spectra (a 0.41 s running-median HPSS mask or
running-median subtraction): on query rows alone music 0 dB 66 -> 76 % but noise, room and phone
fell 20-35 points and utterance EER rose to 3.9 %; as extra query rows beside the plain ones music
0 dB 89 % but utterance EER 2.45 % (> 2 %) and 2.5x the query time; filtering references too made
every voice alike (review threshold 0.83, EER 5 %).

Any sample rate is accepted (resampled to 16 kHz with a polyphase filter). Torch runs with
one thread inside this detector by default (``threads``): the LSTM batches are small and on
a 2-core machine two threads ran 3-8x slower than one under load. (``torch.set_num_threads``
is process-wide: it is set for the duration of each call and restored after.)

Measured on the 2-core dev machine while other jobs kept it busy (load ~6): short queries
30x real time, a one-hour file 100-125x real time (30-36 s: VAD over the whole hour, then
400 capped windows), with peak memory ~165 MB above the decoded clip. Registering a voice
reference embeds its speech once clean and once per enrolment condition (each on at most 60 s):
15x real time with the five rows, against 22x with the previous four and 38x clean only (same run). The VAD runs
~100x (short clips) to ~400x (long files) real time on one thread.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from math import gcd
from typing import Any, Iterator, Sequence

import numpy as np

from scanner.config import Settings
from scanner.detectors import voice_denoise
from scanner.detectors.torch_threads import torch_threads
from scanner.detectors.base import DetectorOptions, Embedding, VectorDetector, floors_for, options_for, register
from scanner.models import resolve
from scanner.errors import ConfigError, ModelMissingError
from scanner.types import Metric, Modality, ReferenceKind

DEFAULT_MODEL = "voice-resemblyzer-ge2e"
SR = 16_000
# encoder front end (fixed by the trained model)
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s: the encoder's training utterance length
PARTIAL_HOP = 80  # 0.8 s between partials
TARGET_DBFS = -30.0  # level every embedded excerpt is normalised to (the encoder's training level)
# voice activity
VAD_FRAME = 512  # 32 ms at 16 kHz (Silero's frame)
VAD_STREAM_S = 30.0  # audio is cut into streams of this length that the VAD runs on as one batch
VAD_CONTEXT_FRAMES = 16  # frames of the previous stream replayed to warm up each stream's state
VAD_MIN_STREAM_FRAMES = 64  # 2 s
VAD_BATCH = 16  # streams per VAD batch (8 minutes of audio, ~16 MB)
VAD_ON, VAD_OFF = 0.5, 0.35
VAD_CLOSE_GAP_S = 0.25
VAD_MIN_REGION_S = 0.25
SILENT_DBFS = -70.0  # clips quieter than this everywhere are silent: VAD is not even run
# windows
WINDOW_S = 3.0
HOP_S = 1.5
SEGMENT_GAP_S = 1.0  # speech regions closer than this form one segment (windows span them)
# Gating floors (calibration entry "floors"): min_window_speech_s, shorter speech segments are not embedded
# (too short to identify); min_ref_speech_s, the least speech a talent voice reference needs.
MAX_REF_SPEECH_S = 300.0  # at most this much of a reference's speech is embedded (spread evenly)
MAX_WINDOWS = 400  # per query clip (10 minutes of speech at 1.5 s hop)
BATCH = 128  # partials per encoder batch
NO_SPEECH = "no speech found"
# multi-condition enrolment: a reference is also embedded as heard under these (synthetic) degradations
REF_CONDITIONS = ("pink noise 10 dB", "synthetic music 10 dB", "reverb 0.5 s", "synthetic pads 0 dB")
AUG_SNR_DB = 10.0
AUG_RT60_S = 0.5
AUG_MAX_SPEECH_S = 60.0
# Denoised query rows: a window whose level RNNoise lowered by this much or more had no speech left in it
# (measured on 3 s excerpts: clean speech 0.1-2 dB, speech under music at 0 dB 3.5-5.5 dB, music alone 17-35 dB,
# white noise 49 dB), so it gets no denoised row.
DENOISE_MAX_DROP_DB = 15.0  # the degraded copies use at most this much of a reference's speech


# ---------------------------------------------------------------- model pieces


def _torch():
    try:
        import torch
    except ImportError:
        raise ModelMissingError("audio.voice needs torch: `pip install torch`") from None
    return torch


def _mel_filters(sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-style mel filterbank (area-normalised triangles), shape (n_mels, n_fft // 2 + 1).

    The encoder was trained on librosa's default ``melspectrogram`` (Slaney mel scale and
    normalisation, 0 Hz to Nyquist); this reproduces that filterbank without librosa.
    """
    def hz_to_mel(f):
        f = np.asarray(f, np.float64)
        f_sp, min_log_hz = 200.0 / 3, 1000.0
        min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m):
        m = np.asarray(m, np.float64)
        f_sp, min_log_hz = 200.0 / 3, 1000.0
        min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=2)
def _encoder(weights: str):
    torch = _torch()

    class GE2E(torch.nn.Module):
        """3-layer LSTM over mel frames; the last layer's final state -> linear -> ReLU -> unit norm."""

        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(N_MELS, 256, 3, batch_first=True)
            self.linear = torch.nn.Linear(256, 256)

        def forward(self, mels):
            _, (hidden, _) = self.lstm(mels)
            out = torch.relu(self.linear(hidden[-1]))
            return out / torch.clamp(torch.linalg.vector_norm(out, dim=1, keepdim=True), min=1e-12)

    try:
        checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
        state = {k: v for k, v in checkpoint["model_state"].items() if k.startswith(("lstm.", "linear."))}
        model = GE2E()
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, OSError, ValueError) as exc:
        raise ConfigError(f"{weights} is not the GE2E speaker encoder this detector expects: {exc}") from None
    return model.eval()


_VAD_LOCK = threading.Lock()


@lru_cache(maxsize=2)
def load_vad(path: str):
    torch = _torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load deprecation notice
        try:
            return torch.jit.load(path, map_location="cpu").eval()
        except (RuntimeError, OSError, ValueError) as exc:
            raise ConfigError(f"{path} is not a loadable Silero VAD TorchScript model: {exc}") from None


# ---------------------------------------------------------------- signal helpers


def find_speech(vad: Any, x: np.ndarray) -> _Speech:
    """Speech regions (samples of ``x``, 16 kHz) from the Silero VAD model ``vad``'s probabilities (``load_vad``)."""
    if x.size < VAD_FRAME or max(float(x.max()), -float(x.min())) < 10 ** (SILENT_DBFS / 20):
        return _Speech([])
    probs = _vad_probs(vad, x)
    mask = _hysteresis(probs, VAD_ON, VAD_OFF)
    frame_s = VAD_FRAME / SR
    gap = int(round(VAD_CLOSE_GAP_S / frame_s))
    for a, b in _regions(~mask):
        if a > 0 and b < mask.size and b - a <= gap:
            mask[a:b] = True
    regions = [(a * VAD_FRAME, min(x.size, b * VAD_FRAME)) for a, b in _regions(mask)
               if (b - a) * frame_s >= VAD_MIN_REGION_S]
    return _Speech(regions)


def _vad_probs(vad: Any, x: np.ndarray) -> np.ndarray:
    """Speech probability per 32 ms frame.

    The clip is cut into 30 s streams that run side by side as one batch (Silero is a
    recurrent model: frames within a stream are sequential, streams are independent); each
    stream first replays the 16 frames before it so its state is warm at its first frame.
    Batches of ``VAD_BATCH`` streams bound memory on long files.
    """
    torch = _torch()
    n_frames = -(-x.size // VAD_FRAME)
    # long clips: 30 s streams; short ones: at least ~16 streams of at least 2 s, so they batch too
    per_stream = max(VAD_MIN_STREAM_FRAMES, min(int(VAD_STREAM_S * SR) // VAD_FRAME, -(-n_frames // 16)))
    per_stream = min(per_stream, n_frames)
    ctx = VAD_CONTEXT_FRAMES
    n_streams = -(-n_frames // per_stream)
    probs = np.zeros(n_streams * per_stream, np.float32)
    for lo in range(0, n_streams, VAD_BATCH):
        hi = min(n_streams, lo + VAD_BATCH)
        batch = np.zeros((hi - lo, (ctx + per_stream) * VAD_FRAME), np.float32)
        for s in range(lo, hi):
            a = s * per_stream * VAD_FRAME
            c = max(0, a - ctx * VAD_FRAME)
            piece = x[c: a + per_stream * VAD_FRAME]
            off = ctx * VAD_FRAME - (a - c)
            batch[s - lo, off: off + piece.size] = np.clip(piece, -1.0, 1.0)
        with _VAD_LOCK, torch.inference_mode():  # stateful, and one loaded model serves every detector
            vad.reset_states()
            p = vad.audio_forward(torch.from_numpy(batch), SR).numpy()
        probs[lo * per_stream: hi * per_stream] = p[:, ctx: ctx + per_stream].reshape(-1)
    return probs[:n_frames]


def to_16k(samples: np.ndarray, sr: int) -> np.ndarray:
    """Mono float32 at 16 kHz (polyphase resampling; channels averaged)."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1 if x.shape[1] <= 8 else 0)
    x = x.reshape(-1)
    if not np.isfinite(x).all():  # copy only when needed: a decoded hour is 230 MB
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    if sr == SR or x.size == 0:
        return np.ascontiguousarray(x, np.float32)
    if sr <= 0:
        raise ConfigError(f"audio.voice: invalid sample rate {sr}")
    from scipy.signal import resample_poly

    g = gcd(int(sr), SR)
    return resample_poly(x, SR // g, int(sr) // g).astype(np.float32)


def _dbfs(x: np.ndarray) -> float:
    """RMS level in dB full scale (summed in blocks: no full-length temporaries)."""
    if not x.size:
        return -200.0
    block = 1 << 20
    total = sum(float(np.dot(x[i: i + block].astype(np.float64), x[i: i + block])) for i in range(0, x.size, block))
    return 20 * np.log10(max(np.sqrt(total / x.size), 1e-10))


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x * (10 ** ((TARGET_DBFS - _dbfs(x)) / 20))).astype(np.float32)


def _regions(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs of True."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def _hysteresis(p: np.ndarray, on: float, off: float) -> np.ndarray:
    """Frames inside runs above ``off`` that reach ``on`` somewhere."""
    mask = np.zeros(p.shape, bool)
    for a, b in _regions(p >= off):
        if (p[a:b] >= on).any():
            mask[a:b] = True
    return mask


class _Speech:
    """Speech regions of a clip, and an index from 'speech time' back to clip time."""

    def __init__(self, regions: list[tuple[int, int]]):
        self.regions = regions  # [start, end) samples
        lengths = np.array([b - a for a, b in regions], np.int64)
        self.cum = np.concatenate([[0], np.cumsum(lengths)])  # speech offset where each region starts

    @property
    def total(self) -> int:
        return int(self.cum[-1])

    def to_clip(self, offset: int) -> int:
        """Clip sample of speech offset ``offset`` (0 <= offset < total)."""
        i = int(np.searchsorted(self.cum, offset, side="right") - 1)
        return self.regions[i][0] + int(offset - self.cum[i])

    def gather(self, x: np.ndarray, a: int, b: int) -> np.ndarray:
        """Speech samples [a, b) (speech offsets), silences cut out."""
        out = []
        i = int(np.searchsorted(self.cum, a, side="right") - 1)
        while a < b and i < len(self.regions):
            start, end = self.regions[i]
            lo = start + (a - int(self.cum[i]))
            hi = min(end, lo + (b - a))
            out.append(x[lo:hi])
            a += hi - lo
            i += 1
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def _mix_at(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x`` plus ``noise`` scaled to ``snr_db`` below it (both over the whole excerpt)."""
    px, pn = float(np.mean(np.square(x, dtype=np.float64))), float(np.mean(np.square(noise, dtype=np.float64)))
    if px <= 0 or pn <= 0:
        return x
    return (x + noise * np.sqrt(px / (pn * 10 ** (snr_db / 10)))).astype(np.float32)


def _pink_noise(n: int, seed: int = 7) -> np.ndarray:
    """1/f noise (white noise shaped in the spectrum; deterministic)."""
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spec /= np.sqrt(np.arange(1, spec.size + 1))
    return np.fft.irfft(spec, n).astype(np.float32)


def _synthetic_music(n: int, seed: int = 11) -> np.ndarray:
    """A music bed with no recording behind it: sustained chords with harmonics, a bass line and hi-hats."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR, dtype=np.float64) / SR  # one chord per second
    env = np.minimum(1.0, t / 0.05) * np.exp(-t * 1.5)
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    bars = []
    for _ in range(-(-n // SR)):
        root = int(rng.integers(0, 7))
        bar = np.zeros(SR)
        for step in (0, 2, 4):  # a triad of the scale
            f0 = 196.0 * 2 ** ((scale[(root + step) % 7] + 12 * ((root + step) // 7)) / 12)
            bar += sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h for h in range(1, 6))
        bar += 1.5 * np.sin(2 * np.pi * 98.0 * 2 ** (scale[root] / 12) / 2 * t)
        bar *= env
        for beat in range(4):
            a = beat * SR // 4
            bar[a: a + 800] += 0.8 * rng.standard_normal(800) * np.exp(-np.arange(800) / 150)
        bars.append(bar)
    out = np.concatenate(bars)[:n]
    return (out / max(1e-9, float(np.abs(out).max()))).astype(np.float32)


def _reverb(x: np.ndarray, rt60: float = AUG_RT60_S, seed: int = 3) -> np.ndarray:
    """``x`` in a synthetic room: direct path plus an exponentially decaying diffuse tail (+6 dB direct-to-reverb)."""
    from scipy.signal import fftconvolve

    n = int(rt60 * SR)
    tail = np.random.default_rng(seed).standard_normal(n) * np.exp(-6.9 * np.arange(n) / (rt60 * SR))
    tail[: int(0.0025 * SR)] = 0.0
    tail *= 0.5 / max(1e-9, float(np.sqrt(np.sum(tail ** 2))))
    tail[0] = 1.0
    return fftconvolve(x, tail)[: x.size].astype(np.float32)


_TABLE_N = 8192  # samples of one period in the pads' wavetables


def _synthetic_pads(n: int, seed: int = 13) -> np.ndarray:
    """A denser bed with no recording behind it: sustained string-like pads (slow attack, 2 s chords over
    three octaves, rich harmonics, vibrato) under a plucked melody line of 0.25-0.5 s notes."""
    rng = np.random.default_rng(seed)
    chord_n = 2 * SR
    t = np.arange(chord_n, dtype=np.float64) / SR
    env = np.minimum(1.0, t / 0.3) * np.minimum(1.0, (t[::-1] + 0.05) / 0.3)  # swell in, fade out
    scale = np.array([0, 2, 3, 5, 7, 8, 10])  # minor: film and game scores lean on it
    out = []
    for _ in range(-(-n // chord_n)):
        root = int(rng.integers(0, 7))
        bar = np.zeros(chord_n)
        for octave in (0, 1, 2):
            for step in (0, 2, 4):
                f0 = 110.0 * 2 ** (octave + (scale[(root + step) % 7] + 12 * ((root + step) // 7)) / 12)
                vib = 1 + 0.004 * np.sin(2 * np.pi * rng.uniform(4.5, 6.0) * t + rng.uniform(0, 6.3))
                phase = f0 * np.cumsum(vib) / SR  # in cycles
                harm = np.arange(1, max(2, int(4000 // f0)))
                # one period of the voice's waveform, read at its (vibrato) phase: a wavetable, ~20x faster
                # than a sine per harmonic per sample (a bed for 60 s of speech: 0.1 s instead of 2.2 s)
                offsets = np.array([rng.uniform(0, 6.3) for _ in harm])
                spec = np.zeros(_TABLE_N // 2 + 1, np.complex128)  # sum of sin(h theta + offset) / h, via one FFT
                spec[harm] = (-0.5j * _TABLE_N) * np.exp(1j * offsets) / harm
                period = np.fft.irfft(spec, _TABLE_N)
                period = np.append(period, period[0])
                pos = (phase % 1.0) * _TABLE_N
                i = pos.astype(np.int64)
                bar += (period[i] + (pos - i) * (period[i + 1] - period[i])) / (1 + octave)
        bar *= env
        pos = 0
        while pos < chord_n:  # melody, an octave above the pads
            length = int(SR * rng.choice([0.25, 0.5]))
            seg = np.arange(min(length, chord_n - pos)) / SR
            f0 = 440.0 * 2 ** (scale[int(rng.integers(0, 7))] / 12)
            bar[pos: pos + seg.size] += 3 * np.exp(-seg * 4) * sum(np.sin(2 * np.pi * f0 * h * seg) / h ** 1.5
                                                                for h in range(1, 8))
            pos += length
        out.append(bar)
    y = np.concatenate(out)[:n]
    return (y / max(1e-9, float(np.abs(y).max()))).astype(np.float32)


# name -> degradation of a reference's speech, for multi-condition enrolment (``VoiceDetector.ref_conditions``)
DEGRADATIONS = {
    "pink noise 10 dB": lambda a: _mix_at(a, _pink_noise(a.size), AUG_SNR_DB),
    "synthetic music 10 dB": lambda a: _mix_at(a, _synthetic_music(a.size), AUG_SNR_DB),
    "reverb 0.5 s": lambda a: _reverb(a),
    "synthetic pads 0 dB": lambda a: _mix_at(a, _synthetic_pads(a.size), 0.0),
}


def degraded_copies(audio: np.ndarray, conditions: Sequence[str] = REF_CONDITIONS) -> list[np.ndarray]:
    """``audio`` as heard under each of ``conditions`` (names of ``DEGRADATIONS``; same length, deterministic)."""
    unknown = [c for c in conditions if c not in DEGRADATIONS]
    if unknown:
        raise ConfigError(f"audio.voice: unknown reference condition(s) {unknown}; known: {list(DEGRADATIONS)}")
    return [DEGRADATIONS[c](audio) for c in conditions]


def _evenly(speech: "_Speech", x: np.ndarray, limit_s: float) -> np.ndarray:
    """All the speech of ``x``, or at most ``limit_s`` of it as evenly spread pieces of 10 s."""
    limit = int(limit_s * SR)
    if speech.total <= limit:
        return speech.gather(x, 0, speech.total)
    piece = 10 * SR
    starts = np.linspace(0, speech.total - piece, max(1, limit // piece)).astype(np.int64)
    return np.concatenate([speech.gather(x, int(s), int(s) + piece) for s in starts])


# ---------------------------------------------------------------- detector


@register("audio.voice")
class VoiceDetector(VectorDetector):
    """Voices of registered talent (speech windows, with their time spans)."""

    modality = Modality.AUDIO
    references = ReferenceKind.TALENT
    sample_kind = "voice"
    consent_scopes = ("voice", "digital-replica")
    metric = Metric.COSINE
    one_thread = True  # the speaker model runs at ``threads`` (1) torch threads
    FLOORS = ("search_k", "min_ref_speech_s", "min_window_speech_s")

    @dataclass(frozen=True)
    class Options(DetectorOptions):
        model: str = DEFAULT_MODEL
        window_s: float = WINDOW_S  # speech window compared with a talent's voice
        hop_s: float = HOP_S
        max_windows: int = MAX_WINDOWS  # per query clip
        denoise: bool = True  # query windows also embedded after RNNoise (off: ~3x faster queries, see above)

    def __init__(self, settings: Settings | None = None, *, model: str | None = None, window_s: float | None = None,
                 hop_s: float | None = None, max_windows: int | None = None, threads: int = 1):
        # Keyword arguments (benchmarks, tests) win over the settings' options.
        settings = settings or Settings()
        opts = self.options = options_for(self, settings)
        window_s = opts.window_s if window_s is None else window_s
        hop_s = opts.hop_s if hop_s is None else hop_s
        max_windows = opts.max_windows if max_windows is None else max_windows
        resolved = resolve(settings, self, model)
        spec = resolved.spec
        if not (1.0 <= window_s <= 30.0 and 0.1 <= hop_s <= window_s):
            raise ConfigError(f"audio.voice: need 1 <= window_s <= 30 and 0.1 <= hop_s <= window_s "
                              f"(got {window_s}, {hop_s})")
        weights, self.weights_sha256 = resolved.weights, resolved.sha256
        vad_path, self.vad_sha256 = resolved.aux("vad")
        denoise_path, self.denoise_sha256 = resolved.aux("denoise")
        self._denoiser = voice_denoise.load(str(denoise_path))
        self._torch = _torch()
        self._encoder = _encoder(str(weights))
        self._vad = load_vad(str(vad_path))
        self._mel = self._torch.from_numpy(_mel_filters())
        self._window = self._torch.hann_window(N_FFT, periodic=True)
        self._lock = threading.Lock()  # one call at a time (torch's thread count: ``torch_threads``)
        self.spec = spec
        self.model_id = spec.name
        self.dim = spec.dim
        self.window_s = float(window_s)
        self.hop_s = float(hop_s)
        self.max_windows = int(max_windows)
        self.threads = int(threads)
        self.denoised_rows = bool(opts.denoise)
        self.floors = floors_for(self, settings, self.model_id)
        self.min_ref_speech_s = float(self.floors["min_ref_speech_s"])
        self.min_window_speech_s = float(self.floors["min_window_speech_s"])

    @property
    def params(self) -> dict[str, Any]:
        return {"window_s": self.window_s, "hop_s": self.hop_s, "vad": f"silero:{self.vad_sha256[:12]}",
                "vad_on": VAD_ON, "vad_off": VAD_OFF, "partial_s": PARTIAL_FRAMES / 100,
                "level_dbfs": TARGET_DBFS, "similarity": "cosine",
                "reference_rows": list(self.ref_conditions) or ["clean"], "segment_means": self.segment_means}

    def describe(self) -> str:
        # Query-side only (references and indexes are unchanged), so not in ``params``: named here for reports.
        denoise = f", query windows also denoised (RNNoise {self.denoise_sha256[:12]})" if self.denoised_rows else ""
        return f"{self.name} [{self.model_label}{denoise}]"

    # ------------------------------------------------------------------ public API

    # Scoring levers (benchmarks/likeness.py measures each against the plain detector by switching it
    # on an instance): reference rows under REF_CONDITIONS (on), and a mean row per speech segment of a
    # query (off: with the multi-condition rows it gained nothing measurable and raised the threshold).
    ref_conditions: tuple[str, ...] = REF_CONDITIONS
    segment_means: bool = False
    denoised_rows: bool = True  # each query window also embedded after RNNoise (same span, extra["denoised"])
    # (option ``denoise``; the library is loaded either way: one model entry, one check)

    def embed_references(self, clips: Sequence[Any]) -> list[Embedding]:
        out = []
        with self._compute():
            for clip in clips:
                x = to_16k(clip.samples, clip.sr)
                speech = self._speech(x)
                if speech.total < self.min_ref_speech_s * SR:
                    out.append(self._empty(self._no_speech_note(speech, self.min_ref_speech_s, "a voice reference")))
                    continue
                # Multi-condition enrolment: the clean speech's embedding, then one row per REF_CONDITIONS,
                # each the mean of the clean embedding and that degraded copy's (renormalised). Degraded
                # queries (noise, music beds, rooms) score against the row nearest their condition; the
                # clean row keeps clean-speech trials as they were (without it utterance EER rose 1.8 -> 2.5 %).
                clean = self._embed_excerpts([_evenly(speech, x, MAX_REF_SPEECH_S)])
                if self.ref_conditions:
                    base = _evenly(speech, x, AUG_MAX_SPEECH_S)
                    mixed = self._embed_excerpts(degraded_copies(base, self.ref_conditions)) + clean
                    vec = np.vstack([clean, mixed / np.linalg.norm(mixed, axis=1, keepdims=True)])
                else:
                    vec = clean
                first, last = speech.to_clip(0), speech.to_clip(speech.total - 1) + 1
                rows = vec.shape[0]
                out.append(Embedding(vec.astype(np.float32), "", {
                    "start": np.full(rows, first / SR), "end": np.full(rows, last / SR),
                    "speech_s": np.full(rows, round(speech.total / SR, 2))}))
        return out

    def embed_queries(self, clips: Sequence[Any]) -> list[Embedding]:
        out = []
        with self._compute():
            for clip in clips:
                x = to_16k(clip.samples, clip.sr)
                speech = self._speech(x)
                spans = self._window_segments(speech)
                if not spans:
                    out.append(self._empty(self._no_speech_note(speech, self.min_window_speech_s, "a speech window")))
                    continue
                note = ""
                if len(spans) > self.max_windows:
                    keep = np.unique(np.linspace(0, len(spans) - 1, self.max_windows).round().astype(int))
                    note = (f"{len(keep)} of {len(spans)} speech windows embedded, spread evenly over the clip "
                            f"(at most {self.max_windows} per clip)")
                    spans = [spans[i] for i in keep]
                vecs = self._embed_excerpts([speech.gather(x, a, b) for a, b, _ in spans])
                starts = [round(speech.to_clip(a) / SR, 3) for a, _, _ in spans]
                ends = [round((speech.to_clip(b - 1) + 1) / SR, 3) for _, b, _ in spans]
                vecs, starts, ends, pooled = self._segment_rows(vecs, starts, ends, [g for _, _, g in spans])
                denoised = np.zeros(len(starts), bool)
                if self.denoised_rows:
                    keep, cleaned = self._denoised_excerpts(speech, x, [(a, b) for a, b, _ in spans])
                    if keep:
                        vecs = np.vstack([vecs, self._embed_excerpts(cleaned)]).astype(np.float32)
                        starts, ends = starts + [starts[i] for i in keep], ends + [ends[i] for i in keep]
                        pooled = np.concatenate([pooled, np.zeros(len(keep), bool)])
                        denoised = np.concatenate([denoised, np.ones(len(keep), bool)])
                out.append(Embedding(vecs, note, {"start": np.array(starts), "end": np.array(ends),
                                                  "segment_mean": pooled, "denoised": denoised}))
        return out

    def speech_regions(self, clip: Any) -> list[tuple[float, float]]:
        """Speech (start, end) seconds found by the VAD, for reports and tests."""
        with self._compute():
            speech = self._speech(to_16k(clip.samples, clip.sr))
        return [(a / SR, b / SR) for a, b in speech.regions]

    # ------------------------------------------------------------------ internals

    def _empty(self, note: str) -> Embedding:
        return Embedding(np.zeros((0, self.dim), np.float32), note,
                         {"start": np.zeros(0), "end": np.zeros(0)})

    @staticmethod
    def _no_speech_note(speech: _Speech, need: float, what: str) -> str:
        if speech.total == 0:
            return NO_SPEECH
        return f"too little speech ({speech.total / SR:.1f} s found; {what} needs at least {need:g} s)"

    @contextlib.contextmanager
    def _compute(self) -> Iterator[None]:
        torch = self._torch
        with self._lock, torch_threads(torch, self.threads), torch.inference_mode():
            yield

    def _speech(self, x: np.ndarray) -> _Speech:
        """Speech regions (samples) from Silero VAD probabilities."""
        return find_speech(self._vad, x)

    def _windows(self, speech: _Speech) -> list[tuple[int, int]]:
        """(a, b) speech offsets of every query window: WINDOW_S of speech, HOP_S apart, per segment."""
        return [(a, b) for a, b, _ in self._window_segments(speech)]

    def _window_segments(self, speech: _Speech) -> list[tuple[int, int, int]]:
        """(a, b, segment) for every query window: ``_windows`` with the number of the speech segment it is in."""
        win, hop = int(self.window_s * SR), int(self.hop_s * SR)
        gap = SEGMENT_GAP_S * SR
        spans: list[tuple[int, int, int]] = []
        seg_start, seg = 0, 0
        for i in range(len(speech.regions)):
            last = i == len(speech.regions) - 1
            if not last and speech.regions[i + 1][0] - speech.regions[i][1] <= gap:
                continue
            seg_end = int(speech.cum[i + 1])
            length = seg_end - seg_start
            if length >= self.min_window_speech_s * SR:
                if length <= win:
                    spans.append((seg_start, seg_end, seg))
                else:
                    starts = list(range(seg_start, seg_end - win + 1, hop))
                    if seg_end - (starts[-1] + win) > hop // 2:  # a tail worth its own window
                        starts.append(seg_end - win)
                    spans.extend((s, s + win, seg) for s in starts)
            seg_start = seg_end
            seg += 1
        return spans

    def _segment_rows(self, vecs: np.ndarray, starts: list[float], ends: list[float], segments: list[int]
                      ) -> tuple[np.ndarray, list[float], list[float], np.ndarray]:
        """Window rows plus, per speech segment of two or more windows, the mean of its windows (renormalised).

        The whole segment's speech says more about the voice than its best 3 s (under noise or a music bed
        one window's score swings); the windows stay, for short turns and for where in the clip it was.
        Returns rows, starts, ends and a bool per row (True: a segment mean).
        """
        seg = np.asarray(segments)
        extra_rows, s_out, e_out = [], list(starts), list(ends)
        if self.segment_means:
            for g in np.unique(seg):
                idx = np.flatnonzero(seg == g)
                if idx.size < 2:
                    continue
                m = vecs[idx].mean(axis=0)
                extra_rows.append(m / max(1e-12, float(np.linalg.norm(m))))
                s_out.append(starts[idx[0]])
                e_out.append(ends[idx[-1]])
        pooled = np.zeros(len(s_out), bool)
        pooled[len(starts):] = True
        if extra_rows:
            vecs = np.vstack([vecs, np.stack(extra_rows)]).astype(np.float32)
        return vecs, s_out, e_out, pooled

    def _denoised_excerpts(self, speech: _Speech, x: np.ndarray, spans: list[tuple[int, int]]
                           ) -> tuple[list[int], list[np.ndarray]]:
        """The speech of each window ``(a, b)`` after RNNoise: (indices of the windows kept, their excerpts).

        Overlapping windows are merged into runs of speech, each denoised once as one stream (RNNoise is
        recurrent: a run gives it the speech before each window), so the cost is the speech the windows
        cover, not twice it; a capped hour-long clip denoises only its kept windows. A window that lost
        ``DENOISE_MAX_DROP_DB`` or more is left out: RNNoise heard no speech in it, and its residue, brought
        back to the encoder's level, would be compared as a voice (the window's plain row stays).
        """
        runs: list[list[int]] = []
        for a, b in sorted(spans):
            if runs and a <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], b)
            else:
                runs.append([a, b])
        raws = [(lo, speech.gather(x, lo, hi)) for lo, hi in runs]
        cleaned = [(lo, raw, self._denoiser.denoise(raw)) for lo, raw in raws]
        starts = np.array([lo for lo, _, _ in cleaned])
        keep, out = [], []
        for i, (a, b) in enumerate(spans):
            lo, raw, run = cleaned[int(np.searchsorted(starts, a, side="right")) - 1]
            if _dbfs(raw[a - lo: b - lo]) - _dbfs(run[a - lo: b - lo]) < DENOISE_MAX_DROP_DB:
                keep.append(i)
                out.append(run[a - lo: b - lo])
        return keep, out

    def _mels(self, audio: np.ndarray):
        """(frames, 40) mel power spectrogram of level-normalised audio, as the encoder was trained."""
        torch = self._torch
        x = torch.from_numpy(_normalise(audio))
        spec = torch.stft(x, N_FFT, HOP, N_FFT, self._window, center=True, pad_mode="reflect",
                          return_complex=True).abs() ** 2
        return (self._mel @ spec).T.contiguous()

    def _embed_excerpts(self, excerpts: Sequence[np.ndarray]) -> np.ndarray:
        """One unit vector per excerpt: mean of its 1.6 s partial embeddings, renormalised."""
        torch = self._torch
        partials, owner = [], []
        for k, audio in enumerate(excerpts):
            mel = self._mels(audio)
            n = mel.shape[0]
            if n < PARTIAL_FRAMES:
                mel = torch.nn.functional.pad(mel, (0, 0, 0, PARTIAL_FRAMES - n))
                n = PARTIAL_FRAMES
            starts = list(range(0, n - PARTIAL_FRAMES + 1, PARTIAL_HOP))
            if starts[-1] + PARTIAL_FRAMES < n:
                starts.append(n - PARTIAL_FRAMES)
            partials.extend(mel[s: s + PARTIAL_FRAMES] for s in starts)
            owner.extend([k] * len(starts))
        embeds = torch.cat([self._encoder(torch.stack(partials[i: i + BATCH]))
                            for i in range(0, len(partials), BATCH)]).numpy()
        owner_arr = np.asarray(owner)
        out = np.zeros((len(excerpts), self.dim), np.float32)
        np.add.at(out, owner_arr, embeds)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
