"""Deterministic synthetic music and in-memory encoders for audio tests (no third-party recordings).

``synth_music(seed)`` is a small "piece": two or three voices of harmonic tones with
attack/decay envelopes and a little vibrato, notes drawn from a seeded scale and rhythm,
plus soft noise-burst percussion. Different seeds give unrelated pieces.
``encode_audio`` writes WAV/FLAC/MP3/Ogg/Opus/M4A (and MP4/MKV video with or without an
audio track) through PyAV, all in memory.
"""

from __future__ import annotations

import io

import numpy as np

SCALES = ([0, 2, 4, 5, 7, 9, 11], [0, 2, 3, 5, 7, 8, 10], [0, 2, 4, 7, 9])


def synth_music(seed: int, seconds: float = 20.0, sr: int = 16000, voices: int | None = None) -> np.ndarray:
    """Mono float32 piece in [-1, 1] (peak about 0.5)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n, np.float64)
    scale = SCALES[rng.integers(len(SCALES))]
    root = int(rng.integers(45, 57))
    beat = float(rng.uniform(0.12, 0.3))
    for v in range(voices or int(rng.integers(2, 4))):
        octave = 12 * v
        t = 0.0
        n_harm = int(rng.integers(4, 9))
        harm_amp = rng.uniform(0.2, 1.0, n_harm) / np.arange(1, n_harm + 1)
        while t < seconds:
            dur = beat * int(rng.choice([1, 1, 2, 2, 3, 4]))
            if rng.random() < 0.15:  # rest
                t += dur
                continue
            midi = root + octave + scale[rng.integers(len(scale))] + 12 * int(rng.integers(0, 2))
            f0 = 440.0 * 2 ** ((midi - 69) / 12)
            a, b = int(t * sr), min(n, int((t + dur * 1.3) * sr))
            if b <= a:
                break
            tt = np.arange(b - a) / sr
            env = (1 - np.exp(-tt / 0.01)) * np.exp(-tt / (0.25 + 0.5 * dur))
            vib = 1 + 0.003 * np.sin(2 * np.pi * 5.0 * tt)
            phase = 2 * np.pi * f0 * np.cumsum(vib) / sr
            tone = sum(harm_amp[k] * np.sin((k + 1) * phase) for k in range(n_harm) if (k + 1) * f0 < sr / 2.2)
            out[a:b] += float(rng.uniform(0.5, 1.0)) * env * tone
            t += dur
    hits = np.arange(0.0, seconds, beat * 2)
    noise = rng.normal(0, 1, int(0.05 * sr))
    for h in hits[rng.random(hits.size) < 0.5]:
        a = int(h * sr)
        seg = noise[: max(0, min(noise.size, n - a))]
        out[a:a + seg.size] += 0.15 * seg * np.exp(-np.arange(seg.size) / (0.01 * sr))
    peak = float(np.max(np.abs(out))) or 1.0
    return (0.5 * out / peak).astype(np.float32)


_FORMATS = {  # name -> (container format, codec, encoder rate or None for the input rate, channels)
    "wav": ("wav", "pcm_s16le", None, 1),
    "flac": ("flac", "flac", None, 1),
    "mp3": ("mp3", "libmp3lame", 44100, 1),
    "ogg": ("ogg", "vorbis", None, 2),  # FFmpeg's own Vorbis encoder wants stereo
    "opus": ("ogg", "libopus", 48000, 1),
    "m4a": ("ipod", "aac", None, 1),
}


def encode_audio(samples: np.ndarray, sr: int, fmt: str = "wav", bitrate: int | None = None) -> bytes:
    """Encode mono float samples as ``fmt`` (one of ``_FORMATS``) in memory."""
    import av

    container, codec, rate, channels = _FORMATS[fmt]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        st = out.add_stream(codec, rate=rate or sr, layout="mono" if channels == 1 else "stereo")
        if codec == "vorbis":
            st.codec_context.options = {"strict": "experimental"}
        if bitrate:
            st.bit_rate = bitrate
        _write_audio(out, st, samples, sr)
    return buf.getvalue()


def video_bytes(samples: np.ndarray | None, sr: int = 16000, seconds: float = 2.0, fmt: str = "mp4") -> bytes:
    """A tiny video (moving gradient) with ``samples`` as its AAC audio track, or no audio when None."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        vs = out.add_stream("mpeg4", rate=10)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        aus = out.add_stream("aac", rate=sr, layout="mono") if samples is not None else None
        for i in range(int(seconds * 10)):
            img = np.full((48, 64, 3), (i * 10) % 256, np.uint8)
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
        if aus is not None:
            _write_audio(out, aus, samples, sr)
    return buf.getvalue()


def _write_audio(out, st, samples: np.ndarray, sr: int) -> None:
    import av

    x = np.asarray(samples, np.float32).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout="mono")
    frame.sample_rate = sr
    ctx = st.codec_context
    resampler = av.AudioResampler(format=ctx.format.name, layout=ctx.layout.name, rate=ctx.sample_rate)
    fifo = av.AudioFifo()
    for f in resampler.resample(frame) + resampler.resample(None):
        fifo.write(f)
    size = ctx.frame_size or 1024
    while True:
        f = fifo.read(size) or fifo.read()
        if f is None:
            break
        for pkt in st.encode(f):
            out.mux(pkt)
    for pkt in st.encode(None):
        out.mux(pkt)
