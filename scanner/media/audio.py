"""Audio decoding to mono float32 at a fixed rate, with duration limits.

Any container FFmpeg reads (WAV, FLAC, MP3, Ogg, M4A/AAC, the audio track of MP4/MKV/
WebM/AVI video) is decoded from memory with PyAV and resampled to mono at ``target_sr``
frame by frame, so only the target-rate mono signal is ever held whole: a 192 kHz
stereo file costs no more memory than a 16 kHz mono one of the same length.

``DEFAULT_SR`` is 16 kHz: the rate speech and speaker models expect (``audio.voice``),
twice what ``audio.fingerprint`` analyses (it works below 4 kHz, which survives
telephone band-limiting and low-bitrate MP3), and 64 kB per second of float32, so one
decoded hour is 230 MB. Decoding the file once at that rate serves every audio detector.

Silence is not an error (detectors say that they found nothing to compare); a file
with no audio stream, undecodable or truncated data, or a duration over the limit
raises ``MediaError`` with the reason.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from scanner.errors import MediaError

DEFAULT_SR = 16_000
MAX_BAD_PACKET_SHARE = 0.05  # more undecodable packets than this and the file is called corrupt
MIN_BAD_PACKETS = 3  # ... but a couple of damaged frames in a long file are tolerated (and skipped)
TRUNCATION_SLACK_S = 1.0  # decoded this much shorter than the header says -> truncated


@dataclass(frozen=True)
class AudioClip:
    """Decoded audio: mono float32 samples in [-1, 1] at ``sr`` Hz.

    ``source_sr``/``channels`` describe the decoded stream as found in the file
    (``codec``/``container`` name it); ``skipped_packets`` counts damaged packets that
    were dropped (the audio around them is still there).
    """

    samples: np.ndarray
    sr: int
    source_sr: int = 0
    channels: int = 1
    codec: str = ""
    container: str = ""
    skipped_packets: int = 0

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / float(self.sr)


def decode_audio(data: bytes, target_sr: int = DEFAULT_SR, max_seconds: float = 3 * 3600.0) -> AudioClip:
    """Decode the first audio stream of ``data`` (any container) to mono float32 at ``target_sr``.

    Raises ``MediaError`` when there is no audio stream ("video has no audio track"),
    when the data is not decodable, damaged or truncated, or when the audio is longer than
    ``max_seconds`` (checked from the header when it declares a duration, and again while
    decoding, so an over-long file is refused without decoding all of it).
    """
    limit = int(max_seconds * target_sr)
    info: dict = {}
    buf = np.zeros(0, np.float32)  # grown in place: the header's duration sizes it when it declares one
    total = 0
    for block in _stream(data, target_sr, max_seconds, info):
        if total + block.shape[0] > limit + target_sr // 10:  # resampler edge effects are not a reason to refuse
            raise MediaError(_too_long(max_seconds))
        if total + block.shape[0] > buf.shape[0]:
            declared = info.get("declared") or 0.0
            want = max(int(declared * target_sr * 1.01) + target_sr, int(buf.shape[0] * 1.5), total + block.shape[0])
            grown = np.empty(min(want, limit + target_sr), np.float32)
            grown[:total] = buf[:total]
            buf = grown
        buf[total:total + block.shape[0]] = block
        total += block.shape[0]
    n = min(total, limit)
    samples = buf[:n] if buf.shape[0] <= 1.1 * n + target_sr else buf[:n].copy()  # no large idle tail
    declared = info.get("declared")
    decoded_s = samples.shape[0] / float(target_sr)
    if declared and decoded_s < declared - max(TRUNCATION_SLACK_S, 0.02 * declared):
        raise MediaError(
            f"audio is truncated or damaged: the header declares {declared:.1f} s but only "
            f"{decoded_s:.1f} s could be decoded"
        )
    if samples.shape[0] == 0:
        raise MediaError("the audio stream holds no decodable samples (empty, corrupt or truncated)")
    np.nan_to_num(samples, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)  # float PCM may hold anything
    np.clip(samples, -1.0, 1.0, out=samples)
    return AudioClip(
        samples=samples, sr=target_sr, source_sr=info.get("source_sr", 0), channels=info.get("channels", 0),
        codec=info.get("codec", ""), container=info.get("container", ""), skipped_packets=info.get("bad", 0),
    )


def stream_audio(
    data: bytes, target_sr: int = DEFAULT_SR, max_seconds: float = 3 * 3600.0, block_seconds: float = 30.0
) -> Iterator[np.ndarray]:
    """Mono float32 blocks of about ``block_seconds`` at ``target_sr`` (for work on files too long to hold)."""
    want = max(1, int(block_seconds * target_sr))
    pending: list[np.ndarray] = []
    have = 0
    for block in _stream(data, target_sr, max_seconds, {}):
        pending.append(block)
        have += block.shape[0]
        if have >= want:
            joined = np.concatenate(pending)
            yield joined[:want]
            pending, have = [joined[want:]], joined.shape[0] - want
    if have:
        yield np.concatenate(pending)


def _too_long(max_seconds: float) -> str:
    return f"audio is longer than the {_fmt_duration(max_seconds)} limit (raise max audio seconds if it is genuine)"


def _fmt_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def av_open(target: Any):
    """``av.open`` for reading, ignoring undecodable metadata on PyAV versions that have the option (< 15)."""
    import av

    try:
        return av.open(target, mode="r", metadata_errors="ignore")
    except TypeError:  # PyAV >= 15 dropped the keyword (metadata is decoded leniently there)
        return av.open(target, mode="r")


def _stream(data: bytes, target_sr: int, max_seconds: float, info: dict) -> Iterator[np.ndarray]:
    """Resampled mono float32 blocks, one per decoded frame; fills ``info`` with what it learns."""
    try:
        import av
    except ImportError:  # pragma: no cover - a dependency of the package
        raise MediaError("audio decoding needs PyAV (`pip install av`)") from None
    logging.getLogger("libav").setLevel(logging.ERROR)
    if not data:
        raise MediaError("file is empty (0 bytes)")
    _check_wav_length(data)
    try:
        container = av_open(io.BytesIO(data))
    except av.error.FFmpegError as exc:
        raise MediaError(f"not a decodable audio/video file: {_reason(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - PyAV can raise plain errors on odd headers
        raise MediaError(f"not a decodable audio/video file: {exc}") from None
    with container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            has_video = any(s.type == "video" for s in container.streams)
            raise MediaError("video has no audio track" if has_video else "file has no audio stream")
        stream = streams[0]
        ctx = stream.codec_context
        if ctx is None:
            raise MediaError("the audio stream's codec is unknown or the stream header is damaged")
        info.update(
            source_sr=int(ctx.sample_rate or stream.sample_rate or 0),
            channels=int(getattr(ctx, "channels", 0) or getattr(getattr(ctx, "layout", None), "nb_channels", 0) or 0),
            codec=str(ctx.name or ""), container=str(container.format.name or ""),
        )
        declared = _declared_seconds(container, stream)
        info["declared"] = declared
        if declared and declared > max_seconds + 1.0:
            raise MediaError(_too_long(max_seconds) + f"; this file declares {_fmt_duration(declared)}")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=target_sr)
        packets = bad = 0
        produced = 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                packets += 1
                try:
                    frames = packet.decode()
                except (av.error.InvalidDataError, av.error.FFmpegError, ValueError):
                    bad += 1
                    info["bad"] = bad
                    if bad >= MIN_BAD_PACKETS and bad > MAX_BAD_PACKET_SHARE * packets:
                        raise MediaError(
                            f"audio data is corrupt: {bad} of the first {packets} packets cannot be decoded "
                            f"(at {produced / target_sr:.1f} s)"
                        ) from None
                    continue
                for frame in frames:
                    for out in _resample(resampler, frame):
                        produced += out.shape[0]
                        yield out
            for out in _resample(resampler, None):
                yield out
        except MediaError:
            raise
        except (av.error.FFmpegError, ValueError, RuntimeError, OverflowError) as exc:
            raise MediaError(f"audio data is corrupt or truncated at {produced / target_sr:.1f} s: {_reason(exc)}") from None
        if packets and bad == packets:
            raise MediaError("audio data is corrupt: no packet could be decoded")


def _resample(resampler, frame) -> Iterator[np.ndarray]:
    try:
        outs = resampler.resample(frame)
    except Exception as exc:  # noqa: BLE001 - format changes mid-stream, broken layouts
        raise MediaError(f"audio cannot be resampled: {exc}") from None
    for out in outs:
        arr = out.to_ndarray()
        yield np.ascontiguousarray(arr.reshape(-1), dtype=np.float32)


def _declared_seconds(container, stream) -> float | None:
    """Duration the header states (None when the container does not say)."""
    try:
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return float(container.duration) / 1_000_000.0
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return None


def _check_wav_length(data: bytes) -> None:
    """FFmpeg trusts the file size over a WAV header; a cut-off WAV is refused here instead."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return
    order = "little" if data[:4] == b"RIFF" else "big"
    pos, byte_rate = 12, 0
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], order)
        if cid == b"fmt " and pos + 16 <= len(data):
            byte_rate = int.from_bytes(data[pos + 16:pos + 20], order)
        if cid == b"data":
            have = len(data) - pos - 8
            if size not in (0, 0xFFFFFFFF) and size > have + 4096 and byte_rate > 0:
                raise MediaError(
                    f"audio is truncated: the WAV header declares {size / byte_rate:.1f} s of audio but the "
                    f"file holds {have / byte_rate:.1f} s"
                )
            return
        pos += 8 + size + (size & 1)


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(": '<")[0]
