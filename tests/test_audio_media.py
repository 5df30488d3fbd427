"""Audio decoding: every container from memory, resampling, probe fields, bad input as MediaError."""

from __future__ import annotations

import io
import time
import tracemalloc
import wave

import numpy as np
import pytest

pytest.importorskip("av")

from scanner.errors import MediaError  # noqa: E402
from scanner.media.audio import AudioClip, decode_audio, stream_audio  # noqa: E402
from scanner.media.sniff import sniff  # noqa: E402
from scanner.testing.audio import encode_audio, synth_music, video_bytes  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return synth_music(7, seconds=6.0, sr=SR)


def _wav(samples: np.ndarray, sr: int, channels: int = 1) -> bytes:
    x = np.clip(np.asarray(samples, np.float64), -1, 1)
    pcm = (x * 32767).astype("<i2")
    if channels == 2:
        pcm = np.stack([pcm, pcm], axis=1).reshape(-1)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


@pytest.mark.parametrize("fmt, kind, source_sr", [
    ("wav", "wav", SR), ("flac", "flac", SR), ("mp3", "mp3", 44100), ("ogg", "ogg", SR),
    ("opus", "ogg", 48000), ("m4a", "m4a", SR),
])
def test_every_audio_container_decodes_to_mono_16k(music, fmt, kind, source_sr):
    data = encode_audio(music, SR, fmt)
    assert sniff(data[:64]) == ("audio", kind)
    clip = decode_audio(data)
    assert isinstance(clip, AudioClip)
    assert clip.sr == SR and clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert clip.source_sr == source_sr and clip.channels in (1, 2)
    assert clip.duration == pytest.approx(6.0, abs=0.15)
    assert np.abs(clip.samples).max() <= 1.0
    if fmt in ("wav", "flac"):
        assert _corr(clip.samples, music) > 0.999


@pytest.mark.parametrize("fmt", ["mp4", "matroska"])
def test_audio_track_of_a_video(music, fmt):
    clip = decode_audio(video_bytes(music[: 2 * SR], SR, seconds=2.0, fmt=fmt))
    assert clip.duration == pytest.approx(2.0, abs=0.2)
    assert clip.codec == "aac"


def test_video_without_audio_track_is_a_media_error():
    data = video_bytes(None)
    assert sniff(data[:64])[0] == "video"
    with pytest.raises(MediaError, match="video has no audio track"):
        decode_audio(data)


@pytest.mark.parametrize("rate", [8000, 22050, 96000, 192000])
def test_sample_rates_8k_to_192k(rate):
    t = np.arange(int(1.5 * rate)) / rate
    clip = decode_audio(_wav(0.4 * np.sin(2 * np.pi * 1000 * t), rate))
    assert clip.source_sr == rate and clip.sr == SR
    assert clip.duration == pytest.approx(1.5, abs=0.01)
    spectrum = np.abs(np.fft.rfft(clip.samples[2000:18000]))
    assert np.argmax(spectrum) * SR / 16000 == pytest.approx(1000, abs=2)


def test_stereo_is_mixed_to_mono_and_probed():
    t = np.arange(SR) / 48000
    clip = decode_audio(_wav(0.3 * np.sin(2 * np.pi * 440 * t), 48000, channels=2))
    assert clip.channels == 2 and clip.source_sr == 48000 and clip.samples.ndim == 1


def test_other_target_rate():
    clip = decode_audio(_wav(np.zeros(44100), 44100), target_sr=8000)
    assert clip.sr == 8000 and clip.samples.shape[0] == pytest.approx(8000, abs=2)


def test_silence_dc_and_clipping_decode_without_error(music):
    silent = decode_audio(_wav(np.zeros(2 * SR), SR))
    assert silent.duration == pytest.approx(2.0) and not np.any(silent.samples)
    dc = decode_audio(_wav(np.full(SR, 0.5), SR))
    assert np.median(dc.samples) == pytest.approx(0.5, abs=0.01)
    clipped = decode_audio(_wav(np.clip(music * 8, -1, 1), SR))
    assert np.abs(clipped.samples).max() <= 1.0


@pytest.mark.parametrize("damage", ["truncate", "scramble", "garbage", "header-only", "empty"])
def test_corrupt_or_truncated_mp3_is_a_media_error(music, damage):
    data = encode_audio(music, SR, "mp3")
    rng = np.random.default_rng(3)
    if damage == "truncate":
        bad = data[: len(data) // 2]
    elif damage == "scramble":
        arr = np.frombuffer(data, np.uint8).copy()
        where = rng.integers(len(data) // 5, len(data), 400)
        arr[where] = rng.integers(0, 256, where.size)
        bad = arr.tobytes()
    elif damage == "garbage":
        bad = b"ID3" + rng.integers(0, 256, 20000, dtype=np.uint8).tobytes()
    elif damage == "header-only":
        bad = data[:200]
    else:
        bad = b""
    with pytest.raises(MediaError):
        decode_audio(bad)


def test_truncated_wav_and_flac_are_media_errors(music):
    for data in (_wav(music, SR), encode_audio(music, SR, "flac")):
        with pytest.raises(MediaError, match="truncated"):
            decode_audio(data[: len(data) // 2])


def test_garbage_in_every_container_never_crashes(music):
    for fmt in ("wav", "flac", "ogg", "opus", "m4a"):
        data = encode_audio(music, SR, fmt)
        arr = np.frombuffer(data, np.uint8).copy()
        rng = np.random.default_rng(len(data))
        where = rng.integers(0, len(data), 300)
        arr[where] = rng.integers(0, 256, where.size)
        try:
            clip = decode_audio(arr.tobytes())
        except MediaError:
            continue
        assert clip.samples.dtype == np.float32 and np.all(np.isfinite(clip.samples))


def test_duration_limit_refuses_long_audio_early():
    sr = 8000
    data = _wav(np.zeros(20 * 60 * sr), sr)  # 20 minutes, header declares it
    t0 = time.perf_counter()
    with pytest.raises(MediaError, match="5 min limit"):
        decode_audio(data, max_seconds=300)
    assert time.perf_counter() - t0 < 1.0  # refused from the header, nothing decoded


def test_duration_limit_while_decoding_when_header_is_silent(music):
    # an MP3 without a duration header still stops at the limit
    data = encode_audio(np.tile(music, 3), SR, "mp3")
    with pytest.raises(MediaError, match="limit"):
        decode_audio(data, max_seconds=5)


def test_long_file_streams_in_bounded_memory():
    sr = 8000
    minutes = 4
    data = _wav(np.tile(np.sin(np.arange(sr) * 0.3) * 0.2, minutes * 60), sr)
    tracemalloc.start()
    try:
        total = 0
        for block in stream_audio(data, target_sr=SR, block_seconds=20):
            assert block.dtype == np.float32
            total += block.size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == pytest.approx(minutes * 60 * SR, rel=1e-3)
    assert peak < 8e6  # 4 min at 16 kHz float32 would be 15 MB; blocks of 20 s are 1.3 MB
    # decode_audio holds only the target-rate mono result (plus the input bytes)
    tracemalloc.start()
    try:
        clip = decode_audio(data, target_sr=8000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert clip.duration == pytest.approx(minutes * 60, abs=0.1)
    assert peak < 3.5 * clip.samples.nbytes
