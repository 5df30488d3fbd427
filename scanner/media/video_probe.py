"""Video containers: open one, probe its main video stream (duration, rate, size, codec) and
work out how its frames are turned upright (display matrix, legacy ``rotate`` tag, pixel aspect).

Cover art in audio files (a one-frame "attached picture" stream) is not video.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, BinaryIO, Union

import numpy as np
from PIL import Image

from scanner.errors import MediaError
from scanner.media.audio import av_open

log = logging.getLogger("scanner.media.video")

DEFAULT_MAX_PIXELS = 8192 * 8192  # per frame (8K UHD is 33 MP)

Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", BinaryIO]


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says about its (main) video stream.

    ``width``/``height`` are the coded frame size; ``display_width``/``display_height``
    the upright size after rotation and pixel aspect ratio. ``rotation`` is the clockwise
    turn (0, 90, 180, 270; other angles are rare) that makes frames upright, as the legacy
    ``rotate`` tag states it; ``mirrored`` says the display matrix also flips.
    """

    has_video: bool
    has_audio: bool
    duration: float | None = None
    fps: float | None = None
    width: int = 0
    height: int = 0
    display_width: int = 0
    display_height: int = 0
    rotation: int = 0
    mirrored: bool = False
    codec: str = ""
    pix_fmt: str = ""
    bit_depth: int = 0
    frame_count: int | None = None
    container: str = ""
    audio_codec: str = ""


# --------------------------------------------------------------------------- opening


def load_av():
    try:
        import av
    except ImportError:  # pragma: no cover - a dependency of the package
        raise MediaError("video decoding needs PyAV (`pip install av`)") from None
    logging.getLogger("libav").setLevel(logging.ERROR)
    return av


def open_container(source: Source):
    av = load_av()
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise MediaError("file is empty (0 bytes)")
        target: Any = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        target = os.fspath(source)
    else:
        target = source
    try:
        return av_open(target)
    except FileNotFoundError:
        raise MediaError(f"cannot open video: no such file {target!r}") from None
    except av.error.FFmpegError as exc:
        raise MediaError(f"not a decodable video file (corrupt or truncated container): {error_reason(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - PyAV raises plain errors on odd headers
        raise MediaError(f"not a decodable video file (corrupt or truncated container): {exc}") from None


def error_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(": '<")[0]


def _is_attached_picture(stream) -> bool:
    """Cover art in audio files shows up as a one-frame video stream: not video."""
    try:
        import av

        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except Exception:  # noqa: BLE001 - older PyAV without Disposition
        return False


def video_stream(container):
    """The main video stream: not cover art, default disposition first, then the largest."""
    cands = [s for s in container.streams.video if not _is_attached_picture(s)]
    if not cands:
        return None

    def rank(s):
        try:
            import av

            default = bool(s.disposition & av.stream.Disposition.default)
        except Exception:  # noqa: BLE001
            default = False
        ctx = s.codec_context
        area = (ctx.width or 0) * (ctx.height or 0) if ctx is not None else 0
        return (default, area, -s.index)

    return max(cands, key=rank)


def declared_duration(container, stream) -> float | None:
    try:
        if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
            return float(stream.duration * stream.time_base)
        if container.duration is not None and container.duration > 0:
            return float(container.duration) / 1_000_000.0
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return None


def start_time(container, stream) -> float | None:
    """Where presentation time 0 is: the container's start (what players show as 0:00)."""
    try:
        if container.start_time is not None:
            return float(container.start_time) / 1_000_000.0
        if stream.start_time is not None and stream.time_base is not None:
            return float(stream.start_time * stream.time_base)
    except (TypeError, ValueError, OverflowError):
        return None
    return None


def avg_fps(stream) -> float | None:
    for rate in (getattr(stream, "average_rate", None), getattr(stream, "guessed_rate", None),
                 getattr(stream, "base_rate", None)):
        try:
            if rate and float(rate) > 0:
                return float(rate)
        except (TypeError, ZeroDivisionError):
            continue
    return None


# --------------------------------------------------------------------------- orientation


def _display_matrix(side_data) -> np.ndarray | None:
    """The 3x3 int32 display matrix from frame (or stream) side data, if present."""
    if side_data is None:
        return None
    try:
        for item in side_data:
            kind = getattr(getattr(item, "type", None), "name", str(getattr(item, "type", "")))
            if "DISPLAYMATRIX" in str(kind).upper():
                raw = bytes(item)
                if len(raw) >= 36:
                    return np.frombuffer(raw[:36], dtype="<i4").copy()
    except Exception:  # noqa: BLE001 - side data API differences between PyAV versions
        return None
    return None


@dataclass(frozen=True)
class Orientation:
    """How to turn decoded frames upright: a PIL transpose op (or an arbitrary angle)."""

    rotation: int = 0  # clockwise degrees, as the 'rotate' tag
    mirrored: bool = False
    ops: tuple[Image.Transpose, ...] = ()
    angle: float = 0.0  # non-right angles only: counter-clockwise degrees for Image.rotate

    @property
    def swaps_axes(self) -> bool:
        return any(op in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270, Image.Transpose.TRANSPOSE,
                          Image.Transpose.TRANSVERSE) for op in self.ops)

    def apply(self, img: Image.Image) -> Image.Image:
        for op in self.ops:
            img = img.transpose(op)
        if self.angle:
            img = img.rotate(self.angle, resample=Image.Resampling.BICUBIC, expand=True)
        return img


def orientation_from_matrix(matrix: np.ndarray | None) -> Orientation:
    """Upright transform for an FFmpeg display matrix, as FFmpeg's own autorotate applies it.

    The matrix is 9 int32 (16.16 fixed point for a, b, c, d). The rotation it encodes is
    ``theta = -atan2(b, a)`` counter-clockwise; ``theta`` clockwise is the turn to apply,
    with the sign of ``c`` (90/270) or of ``a``/``d`` (0/180) telling a mirrored matrix.
    """
    if matrix is None or len(matrix) < 9:
        return Orientation()
    m = [float(v) for v in matrix[:9]]
    a, b, c, d = m[0] / 65536.0, m[1] / 65536.0, m[3] / 65536.0, m[4] / 65536.0
    s0, s1 = math.hypot(a, c), math.hypot(b, d)
    if s0 == 0 or s1 == 0:
        return Orientation()
    ccw = -math.degrees(math.atan2(b / s1, a / s0))  # av_display_rotation_get
    theta = -round(ccw)  # clockwise turn to apply
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    T = Image.Transpose
    if abs(theta - 90) < 1:
        if c > 0:
            return Orientation(90, True, (T.TRANSPOSE,))  # transpose=cclock_flip
        return Orientation(90, False, (T.ROTATE_270,))  # transpose=clock
    if abs(theta - 270) < 1:
        if c < 0:
            return Orientation(270, True, (T.TRANSVERSE,))  # transpose=clock_flip
        return Orientation(270, False, (T.ROTATE_90,))  # transpose=cclock
    if abs(theta - 180) < 1:
        ops = tuple(op for flag, op in ((a < 0, T.FLIP_LEFT_RIGHT), (d < 0, T.FLIP_TOP_BOTTOM)) if flag)
        mirrored = len(ops) == 1
        return Orientation(0 if mirrored else 180, mirrored, ops)
    if abs(theta) < 1 or abs(theta - 360) < 1:
        if d < 0:
            return Orientation(0, True, (T.FLIP_TOP_BOTTOM,))
        return Orientation()
    return Orientation(int(theta), False, (), float(-theta))


def orientation_from_tag(tag: Any) -> Orientation:
    """Upright transform for a legacy ``rotate`` metadata tag (clockwise degrees)."""
    try:
        cw = int(float(str(tag).strip())) % 360
    except (TypeError, ValueError):
        return Orientation()
    T = Image.Transpose
    table = {90: (T.ROTATE_270,), 180: (T.ROTATE_180,), 270: (T.ROTATE_90,)}
    if cw in table:
        return Orientation(cw, False, table[cw])
    return Orientation(cw, False, (), float(-cw)) if cw else Orientation()


def stream_orientation(stream) -> Orientation:
    """Orientation from the legacy ``rotate`` tag (PyAV does not expose stream side data;
    decoded frames carry the display matrix, which takes precedence)."""
    tag = (stream.metadata or {}).get("rotate")
    return orientation_from_tag(tag) if tag is not None else Orientation()


def _first_frame_orientation(container, stream, max_packets: int = 256) -> Orientation:
    """Orientation of the first decodable frame (its display matrix), for ``probe_video``."""
    fallback = stream_orientation(stream)
    try:
        for n, packet in enumerate(container.demux(stream)):
            if n >= max_packets:
                break
            try:
                frames = packet.decode()
            except Exception:  # noqa: BLE001 - damaged packet: try the next one
                continue
            for frame in frames:
                return frame_orientation(frame, fallback)
    except Exception:  # noqa: BLE001 - a probe never fails on damaged data
        pass
    return fallback


def frame_orientation(frame, fallback: Orientation) -> Orientation:
    matrix = _display_matrix(getattr(frame, "side_data", None))
    return orientation_from_matrix(matrix) if matrix is not None else fallback


# --------------------------------------------------------------------------- probe


def probe_video(source: Source) -> VideoInfo:
    """Header facts about ``source`` without decoding; ``has_video`` is False for audio-only files.

    Raises ``MediaError`` only when the container cannot be opened at all.
    """
    with open_container(source) as container:
        return _probe(container)


def _probe(container) -> VideoInfo:
    audio = [s for s in container.streams.audio]
    stream = video_stream(container)
    fmt = str(getattr(container.format, "name", "") or "")
    audio_codec = ""
    if audio and audio[0].codec_context is not None:
        audio_codec = str(audio[0].codec_context.name or "")
    if stream is None:
        dur = None
        if container.duration:
            dur = float(container.duration) / 1_000_000.0
        return VideoInfo(has_video=False, has_audio=bool(audio), duration=dur, container=fmt, audio_codec=audio_codec)
    ctx = stream.codec_context
    width = int(getattr(ctx, "width", 0) or 0) if ctx is not None else 0
    height = int(getattr(ctx, "height", 0) or 0) if ctx is not None else 0
    pix = ""
    depth = 0
    if ctx is not None and getattr(ctx, "format", None) is not None:
        pix = str(ctx.format.name or "")
        try:
            depth = max(int(c.bits) for c in ctx.format.components)
        except (AttributeError, ValueError, TypeError):
            depth = 0
    # The display matrix travels on decoded frames: decode one, unless the header declares
    # a frame too large to decode safely (iter_frames refuses those anyway).
    if 0 < width * height <= DEFAULT_MAX_PIXELS:
        orient = _first_frame_orientation(container, stream)
    else:
        orient = stream_orientation(stream)
    dw, dh = _display_size(width, height, sample_aspect(stream), orient)
    frames = int(stream.frames) if getattr(stream, "frames", 0) else None
    return VideoInfo(
        has_video=True, has_audio=bool(audio), duration=declared_duration(container, stream), fps=avg_fps(stream),
        width=width, height=height, display_width=dw, display_height=dh, rotation=orient.rotation,
        mirrored=orient.mirrored, codec=str(ctx.name or "") if ctx is not None else "", pix_fmt=pix,
        bit_depth=depth, frame_count=frames, container=fmt, audio_codec=audio_codec,
    )


def sample_aspect(stream) -> float:
    for holder in (stream, getattr(stream, "codec_context", None)):
        try:
            sar = getattr(holder, "sample_aspect_ratio", None)
            if sar and float(sar) > 0:
                return float(sar)
        except (TypeError, ZeroDivisionError, ValueError):
            continue
    return 1.0


def _display_size(width: int, height: int, sar: float, orient: Orientation) -> tuple[int, int]:
    """Upright size with square pixels (the long side keeps its coded length)."""
    if width <= 0 or height <= 0:
        return 0, 0
    w, h = float(width), float(height)
    if abs(sar - 1.0) > 1e-3 and 0.1 < sar < 10:
        if sar > 1:
            w *= sar
        else:
            h /= sar
    if orient.swaps_axes:
        w, h = h, w
    return max(1, int(round(w))), max(1, int(round(h)))


def target_size(width: int, height: int, sar: float, max_side: int) -> tuple[int, int]:
    """Scaled size (before rotation) with square pixels and the long side <= max_side; even numbers
    are not needed for RGB output."""
    w, h = _display_size(width, height, sar, Orientation())
    if max_side and max(w, h) > max_side:
        scale = max_side / float(max(w, h))
        w, h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    return w, h
