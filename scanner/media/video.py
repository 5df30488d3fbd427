"""Video decoding: a bounded stream of sampled, upright RGB frames with their times.

Video is not a detector. A video asset is decoded into sampled frames (sent to the
image detectors, each with its time and timecode) and its audio track (decoded by
``scanner.media.audio.decode_audio``, which reads the audio stream of any container).

Which frames are sampled (``iter_frames``)
-----------------------------------------
* the **first** decoded frame;
* every **cut**: each decoded frame is reduced to a 32x32 greyscale thumbnail (by
  swscale, in C, from the decoder's own pixel format: no RGB conversion of frames that are
  not kept). Its mean absolute difference (MAD, 0-255 grey levels) against the previous
  decoded frame's thumbnail is ``mad``; the cut score is ``min(mad, mad - previous mad)``
  (FFmpeg's ``scene`` score does the same): a hard cut is a single large jump, while fast
  motion or camera shake keeps ``mad`` high on *every* frame, so its jump over the previous
  frame's ``mad`` stays small. Measured on synthetic 320x180 H.264 clips (artwork pans,
  zooms, +-15 px hand-held shake, sensor noise): within-shot scores stayed <= 12.8 (shake;
  pans <= 1.5), hard cuts between different pictures scored >= 26, hence the default 18. 32x32 is small enough to ignore grain, compression noise
  and small moving objects, and large enough to see a change of shot. A colour histogram
  distance was not chosen: it is blind to a cut between two shots of similar palette
  (two paintings of the same sky, a reframed copy of the same scene), which is exactly
  what a copy check must not miss, while MAD sees the change of layout;
* **drift**: a frame whose thumbnail differs from the last *sampled* frame's by more than
  ``drift_threshold`` (default twice ``scene_threshold``): dissolves, fades and pans
  change the picture without any single large jump;
* at least one frame every ``max_interval`` seconds of presentation time (times come from
  each frame's pts, so variable frame rate is handled): when a frame lies more than
  ``max_interval`` after the last sample, the frame *before* it is sampled (one decoded
  frame of look-ahead), so consecutive samples are never further apart than
  ``max_interval`` unless the video itself has a longer gap between frames.

Cap. ``max_frames`` bounds the samples of any file. When the header declares a duration
``D`` and ``D / max_interval`` would use more than half the budget, the periodic interval
is stretched to ``2 D / max_frames``; cuts and drift frames draw on the rest of the budget
through a token bucket refilled in proportion to video time, so they stay spread over the
whole file (a strobe sequence cannot spend the budget of the next hour). With no usable
duration (or once decoding runs past the declared one) the interval doubles each time the
remaining budget halves. Either way the ``SamplingReport`` says so in ``notes`` (and logs
it) and ``capped`` is set.

Memory is bounded: frames are decoded one at a time from a demuxed packet stream; only
the previous decoded frame (look-ahead) and two 32x32 thumbnails are held, plus the
decoder's own reference frames.

Errors raise ``MediaError``: no video stream (an audio-only container: the caller treats
it as audio), an undecodable/corrupt/truncated container, zero decodable frames, a
duration or frame size over the limits. Undecodable packets and frames are skipped and
counted; decoding that stops early (truncated file) gives the frames decoded so far and
sets ``report.truncated`` with a note.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, BinaryIO, Iterator, Union

import numpy as np
from PIL import Image

from scanner.errors import MediaError
from scanner.media.audio import av_open

log = logging.getLogger(__name__)

Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", BinaryIO]

DEFAULT_MAX_INTERVAL = 2.0
DEFAULT_SCENE_THRESHOLD = 18.0  # grey levels (0-255) of 32x32 thumbnail MAD; see module doc
DEFAULT_MAX_FRAMES = 500
DEFAULT_MAX_SIDE = 1024
DEFAULT_MAX_SECONDS = 3 * 3600.0  # same default as decode_audio
DEFAULT_MAX_PIXELS = 8192 * 8192  # per frame (8K UHD is 33 MP)
THUMB = 32
TRUNCATION_SLACK_S = 1.0
_EPS = 1e-6


@dataclass(frozen=True)
class VideoFrame:
    """One sampled frame: upright RGB ``image`` (long side <= max_side) at ``time`` seconds.

    ``index`` is the frame's number in the order the decoder produced frames (0-based);
    ``reason`` is why it was sampled: "first", "cut", "drift" or "interval".
    """

    image: Image.Image
    time: float
    index: int
    timecode: str
    reason: str = ""


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


@dataclass
class SamplingReport:
    """Filled in while ``iter_frames`` runs; read it when the iteration ends."""

    decoded: int = 0
    sampled: int = 0
    cuts: int = 0
    drifts: int = 0
    skipped_packets: int = 0  # packets the decoder rejected (skipped, decoding went on)
    corrupt_frames: int = 0  # frames the decoder flagged as damaged (error-concealed, still used)
    dropped_scene_frames: int = 0  # cuts/drifts not sampled because of the frame budget
    capped: bool = False
    truncated: bool = False
    interval: float = 0.0  # periodic sampling interval actually used at the start
    max_gap: float = 0.0  # longest time between two consecutive samples
    keyframes_only: bool = False
    duration: float | None = None  # declared duration
    last_time: float = 0.0  # presentation time of the last decoded frame
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            log.info("video: %s", text)


def timecode(seconds: float) -> str:
    """``HH:MM:SS.mmm`` (hours are not wrapped at 24)."""
    ms = int(round(max(0.0, seconds) * 1000.0))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


# --------------------------------------------------------------------------- opening


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - a dependency of the package
        raise MediaError("video decoding needs PyAV (`pip install av`)") from None
    logging.getLogger("libav").setLevel(logging.ERROR)
    return av


def _open(source: Source):
    av = _av()
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
        raise MediaError(f"not a decodable video file (corrupt or truncated container): {_reason(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - PyAV raises plain errors on odd headers
        raise MediaError(f"not a decodable video file (corrupt or truncated container): {exc}") from None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(": '<")[0]


def _is_attached_picture(stream) -> bool:
    """Cover art in audio files shows up as a one-frame video stream: not video."""
    try:
        import av

        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except Exception:  # noqa: BLE001 - older PyAV without Disposition
        return False


def _video_stream(container):
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


def _declared_duration(container, stream) -> float | None:
    try:
        if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
            return float(stream.duration * stream.time_base)
        if container.duration is not None and container.duration > 0:
            return float(container.duration) / 1_000_000.0
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return None


def _start_time(container, stream) -> float | None:
    """Where presentation time 0 is: the container's start (what players show as 0:00)."""
    try:
        if container.start_time is not None:
            return float(container.start_time) / 1_000_000.0
        if stream.start_time is not None and stream.time_base is not None:
            return float(stream.start_time * stream.time_base)
    except (TypeError, ValueError, OverflowError):
        return None
    return None


def _avg_fps(stream) -> float | None:
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


def _stream_orientation(stream) -> Orientation:
    """Orientation from the legacy ``rotate`` tag (PyAV does not expose stream side data;
    decoded frames carry the display matrix, which takes precedence)."""
    tag = (stream.metadata or {}).get("rotate")
    return orientation_from_tag(tag) if tag is not None else Orientation()


def _first_frame_orientation(container, stream, max_packets: int = 256) -> Orientation:
    """Orientation of the first decodable frame (its display matrix), for ``probe_video``."""
    fallback = _stream_orientation(stream)
    try:
        for n, packet in enumerate(container.demux(stream)):
            if n >= max_packets:
                break
            try:
                frames = packet.decode()
            except Exception:  # noqa: BLE001 - damaged packet: try the next one
                continue
            for frame in frames:
                return _frame_orientation(frame, fallback)
    except Exception:  # noqa: BLE001 - a probe never fails on damaged data
        pass
    return fallback


def _frame_orientation(frame, fallback: Orientation) -> Orientation:
    matrix = _display_matrix(getattr(frame, "side_data", None))
    return orientation_from_matrix(matrix) if matrix is not None else fallback


# --------------------------------------------------------------------------- probe


def probe_video(source: Source) -> VideoInfo:
    """Header facts about ``source`` without decoding; ``has_video`` is False for audio-only files.

    Raises ``MediaError`` only when the container cannot be opened at all.
    """
    with _open(source) as container:
        return _probe(container)


def _probe(container) -> VideoInfo:
    audio = [s for s in container.streams.audio]
    stream = _video_stream(container)
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
        orient = _stream_orientation(stream)
    dw, dh = _display_size(width, height, _sar(stream), orient)
    frames = int(stream.frames) if getattr(stream, "frames", 0) else None
    return VideoInfo(
        has_video=True, has_audio=bool(audio), duration=_declared_duration(container, stream), fps=_avg_fps(stream),
        width=width, height=height, display_width=dw, display_height=dh, rotation=orient.rotation,
        mirrored=orient.mirrored, codec=str(ctx.name or "") if ctx is not None else "", pix_fmt=pix,
        bit_depth=depth, frame_count=frames, container=fmt, audio_codec=audio_codec,
    )


def _sar(stream) -> float:
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


def _target_size(width: int, height: int, sar: float, max_side: int) -> tuple[int, int]:
    """Scaled size (before rotation) with square pixels and the long side <= max_side; even numbers
    are not needed for RGB output."""
    w, h = _display_size(width, height, sar, Orientation())
    if max_side and max(w, h) > max_side:
        scale = max_side / float(max(w, h))
        w, h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    return w, h


# --------------------------------------------------------------------------- sampling


class _Budget:
    """Frame budget: periodic interval and a token bucket for cuts/drifts (see module doc)."""

    def __init__(self, max_frames: int, max_interval: float, duration: float | None, report: SamplingReport):
        self.max_frames = max_frames
        self.base = max_interval
        self.duration = duration if duration and duration > 0 else None
        self.report = report
        if self.duration is not None:
            self.interval = max(max_interval, 2.0 * self.duration / max_frames)
            periodic = int(math.ceil(self.duration / self.interval)) + 1
            scene = max(0, max_frames - periodic - 1)
            self.rate = scene / self.duration
            self.capacity = max(2.0, scene / 8.0)
            self.tokens = self.capacity
            if self.interval > max_interval + _EPS:
                report.capped = True
                report.note(
                    f"frame cap {max_frames}: a {self.duration:.0f} s video is sampled every {self.interval:.1f} s "
                    f"instead of every {max_interval:g} s, with cuts spread over the rest of the budget"
                )
        else:
            self.interval = max_interval
            self.rate = 0.0
            self.capacity = self.tokens = 0.0
        report.interval = self.interval
        self.last_t = 0.0

    def advance(self, t: float) -> None:
        if self.duration is not None and t > self.duration + TRUNCATION_SLACK_S:
            # The header's duration was wrong: fall back to the duration-free regime.
            self.report.note(f"decoding ran past the declared duration ({self.duration:.1f} s); "
                             "sampling backs off as the frame budget runs down")
            self.duration = None
        if self.duration is not None:
            self.tokens = min(self.capacity, self.tokens + self.rate * max(0.0, t - self.last_t))
        self.last_t = t

    @property
    def remaining(self) -> int:
        return self.max_frames - self.report.sampled

    def periodic_interval(self) -> float:
        if self.duration is not None:
            return self.interval
        # Unknown duration: the interval doubles each time the remaining budget halves.
        rem = max(1, self.remaining)
        k = max(0, int(math.floor(math.log2(self.max_frames / rem))))
        if k:
            if not self.report.capped:
                self.report.capped = True
            self.report.note(
                f"frame cap {self.max_frames}: the video's length is not known in advance, so the sampling "
                "interval doubles each time the remaining budget halves"
            )
        return self.interval * (2 ** k)

    def allow_scene(self) -> bool:
        if self.remaining <= 1:
            return False
        if self.duration is not None:
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False
        return self.report.sampled < self.max_frames // 2


def _thumb(frame) -> np.ndarray:
    small = frame.reformat(width=THUMB, height=THUMB, format="gray", interpolation="AREA")
    arr = small.to_ndarray()
    return np.asarray(arr[:THUMB, :THUMB], dtype=np.float32)


def iter_frames(
    source: Source,
    max_interval: float = DEFAULT_MAX_INTERVAL,
    scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_side: int = DEFAULT_MAX_SIDE,
    *,
    drift_threshold: float | None = None,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    keyframes_only: bool = False,
    report: SamplingReport | None = None,
) -> Iterator[VideoFrame]:
    """Sampled upright RGB frames of the main video stream, in presentation order.

    ``source`` is bytes, a path or a binary file object. Pass a ``SamplingReport`` to
    learn what happened (frames decoded, skipped, capped, truncated, notes).
    ``keyframes_only`` makes the decoder skip every non-key frame (several times faster on
    long-GOP files, but cuts are then only seen at key frames and ``max_interval`` cannot
    be finer than the key-frame spacing; ``index`` then counts decoded key frames).
    """
    if max_interval <= 0:
        raise ValueError("max_interval must be positive")
    if max_frames < 1:
        raise ValueError("max_frames must be at least 1")
    rep = report if report is not None else SamplingReport()
    drift = 2.0 * scene_threshold if drift_threshold is None else drift_threshold
    av = _av()
    container = _open(source)
    with container:
        stream = _video_stream(container)
        if stream is None:
            what = "an audio-only file" if container.streams.audio else "no streams a scanner can read"
            raise MediaError(f"no video stream ({what}; treat it as audio if it has an audio track)")
        ctx = stream.codec_context
        if ctx is None or not getattr(ctx, "name", None):
            raise MediaError("the video stream's codec is unknown or its header is damaged")
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width * height > max_pixels:
            raise MediaError(
                f"video frames are {width}x{height} = {width * height / 1e6:.0f} MP, over the "
                f"{max_pixels / 1e6:.0f} MP limit"
            )
        declared = _declared_duration(container, stream)
        rep.duration = declared
        if declared is not None and declared > max_seconds + 1.0:
            raise MediaError(f"video is {declared / 60:.1f} min long, over the {max_seconds / 60:g} min limit "
                             "(raise the limit if it is genuine)")
        start = _start_time(container, stream)
        fps = _avg_fps(stream)
        sar = _sar(stream)
        stream_orient = _stream_orientation(stream)
        try:
            stream.thread_type = "AUTO"
        except Exception:  # noqa: BLE001 - some codecs refuse threading settings
            pass
        if keyframes_only:
            try:
                ctx.skip_frame = "NONKEY"
            except Exception:  # noqa: BLE001
                keyframes_only = False
        rep.keyframes_only = keyframes_only
        budget = _Budget(max_frames, max_interval, declared, rep)

        prev_frame = None  # look-ahead: last decoded frame, not yet sampled
        prev_t = prev_i = None
        prev_thumb: np.ndarray | None = None
        prev_mad = 0.0
        last_sample_t = -math.inf
        last_sample_thumb: np.ndarray | None = None
        prev_sampled = False
        last_time = None
        stopped = False

        def make(frame, t: float, index: int, reason: str) -> VideoFrame:
            nonlocal last_sample_t
            tw, th = _target_size(frame.width, frame.height, sar, max_side)
            try:
                img = frame.to_image(width=tw, height=th, interpolation="AREA")
            except Exception as exc:  # noqa: BLE001 - odd formats swscale cannot convert
                raise MediaError(f"frame {index} at {timecode(t)} cannot be converted to RGB: {exc}") from None
            if img.mode != "RGB":
                img = img.convert("RGB")
            img = _frame_orientation(frame, stream_orient).apply(img)
            if max(img.size) > max_side:  # arbitrary-angle rotation expands the canvas
                img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            rep.sampled += 1
            if rep.sampled > 1:
                rep.max_gap = max(rep.max_gap, t - last_sample_t)
            last_sample_t = t
            return VideoFrame(img, t, index, timecode(t), reason)

        for frame, t in _decoded(av, container, stream, start, fps, rep):
            index = rep.decoded
            rep.decoded += 1
            if t > max_seconds + 1.0:
                raise MediaError(f"video runs past the {max_seconds / 60:g} min limit (at {timecode(t)}); "
                                 "the header understated its length")
            rep.last_time = t
            last_time = t
            budget.advance(t)
            thumb = _thumb(frame)
            reason = ""
            if index == 0:
                reason = "first"
            else:
                mad = float(np.mean(np.abs(thumb - prev_thumb)))
                score = min(mad, mad - prev_mad)
                prev_mad = mad
                if score > scene_threshold:
                    rep.cuts += 1
                    reason = "cut"
                elif last_sample_thumb is not None and float(np.mean(np.abs(thumb - last_sample_thumb))) > drift:
                    rep.drifts += 1
                    reason = "drift"
                if reason and not budget.allow_scene():
                    rep.dropped_scene_frames += 1
                    reason = ""
            if not reason and prev_frame is not None and not prev_sampled and (
                t - last_sample_t > budget.periodic_interval() + _EPS
            ):
                # The interval would be overshot by this frame: sample the one before it.
                if budget.remaining <= 0:
                    stopped = True
                    break
                yield make(prev_frame, prev_t, prev_i, "interval")
                last_sample_thumb = prev_thumb
                if t - last_sample_t > budget.periodic_interval() + _EPS:
                    reason = "interval"  # a gap in the video itself: sample this frame too
            if reason:
                if budget.remaining <= 0:
                    stopped = True
                    break
                yield make(frame, t, index, reason)
                last_sample_thumb = thumb
                prev_sampled = True
            else:
                prev_sampled = False
            prev_frame, prev_t, prev_i = frame, t, index
            prev_thumb = thumb
        if stopped:
            rep.capped = True
            rep.note(f"frame cap {max_frames} reached at {timecode(last_time or 0.0)}; "
                     "the rest of the video was not sampled")
        if rep.decoded == 0:
            raise MediaError("the video stream holds no decodable frames (empty, corrupt or truncated)"
                             + (f"; {rep.skipped_packets} packets were undecodable" if rep.skipped_packets else ""))
        if rep.skipped_packets:
            rep.note(f"{rep.skipped_packets} undecodable video packets were skipped")
        if rep.corrupt_frames:
            rep.note(f"{rep.corrupt_frames} video frames were damaged (decoded with concealment)")
        if keyframes_only and rep.max_gap > budget.interval + _EPS:
            rep.note(f"key frames only: samples are up to {rep.max_gap:.1f} s apart (key-frame spacing), "
                     f"more than the {budget.interval:g} s interval")
        if rep.dropped_scene_frames:
            rep.note(f"{rep.dropped_scene_frames} cuts/drifts were not sampled (frame budget)")
        if (not stopped and declared is not None and last_time is not None
                and last_time < declared - max(TRUNCATION_SLACK_S + _frame_dur(fps), 0.02 * declared)
                and not keyframes_only):
            rep.truncated = True
            rep.note(f"video is truncated or damaged: the header declares {declared:.1f} s but frames "
                     f"stop at {last_time:.1f} s")


@dataclass
class VideoSource:
    """A video asset ready to scan: header facts now, sampled frames on demand.

    ``frames()`` decodes afresh on each call and fills ``report`` (a new one per call).
    """

    source: Source
    info: VideoInfo
    options: dict = field(default_factory=dict)
    report: SamplingReport = field(default_factory=SamplingReport)

    def frames(self) -> Iterator[VideoFrame]:
        self.report = SamplingReport()
        return iter_frames(self.source, report=self.report, **self.options)

    def batches(self, size: int) -> Iterator[list[VideoFrame]]:
        """Frames in lists of at most ``size`` (what detectors embed at once)."""
        batch: list[VideoFrame] = []
        for frame in self.frames():
            batch.append(frame)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


def open_video(source: Source, **options: Any) -> VideoSource:
    """Probe ``source`` and return a ``VideoSource``; ``options`` go to ``iter_frames``.

    Raises ``MediaError`` when the container cannot be opened, has no video stream (the
    message starts with "no video stream"; ``probe_video`` tells whether it has audio),
    declares frames over ``max_pixels`` or a duration over ``max_seconds``.
    """
    info = probe_video(source)
    if not info.has_video:
        what = "an audio-only file" if info.has_audio else "no streams a scanner can read"
        raise MediaError(f"no video stream ({what}; treat it as audio if it has an audio track)")
    max_pixels = options.get("max_pixels", DEFAULT_MAX_PIXELS)
    if info.width * info.height > max_pixels:
        raise MediaError(f"video frames are {info.width}x{info.height} = {info.width * info.height / 1e6:.0f} MP, "
                         f"over the {max_pixels / 1e6:.0f} MP limit")
    max_seconds = options.get("max_seconds", DEFAULT_MAX_SECONDS)
    if info.duration is not None and info.duration > max_seconds + 1.0:
        raise MediaError(f"video is {info.duration / 60:.1f} min long, over the {max_seconds / 60:g} min limit "
                         "(raise the limit if it is genuine)")
    return VideoSource(source, info, dict(options))


def _frame_dur(fps: float | None) -> float:
    return 1.0 / fps if fps else 0.0


def _decoded(av, container, stream, start: float | None, fps: float | None, rep: SamplingReport):
    """(frame, seconds from start) in output order; undecodable packets are skipped and counted.

    Times come from each frame's pts (its best-effort timestamp when pts is missing); a
    frame without any timestamp gets the previous time plus one frame at the average rate.
    """
    tb = stream.time_base or Fraction(1, 1000)
    step = 1.0 / fps if fps else 1.0 / 25.0
    origin = start
    last_t: float | None = None
    packets = 0

    def emit(frame):
        nonlocal origin, last_t
        pts = frame.pts
        if pts is None:
            t_abs = None
        else:
            t_abs = float(pts * (frame.time_base or tb))
        if t_abs is None:
            t = (last_t + step) if last_t is not None else 0.0
        else:
            if origin is None:
                origin = t_abs
            t = max(0.0, t_abs - origin)
        if getattr(frame, "is_corrupt", False):
            rep.corrupt_frames += 1
        last_t = t
        return frame, t

    try:
        for packet in container.demux(stream):
            packets += 1
            try:
                frames = packet.decode()
            except av.error.EOFError:
                break
            except (av.error.InvalidDataError, av.error.FFmpegError, ValueError) as exc:
                rep.skipped_packets += 1
                log.debug("skipping undecodable video packet %d: %s", packets, _reason(exc))
                continue
            for frame in frames:
                yield emit(frame)
    except (av.error.FFmpegError, OSError, ValueError, RuntimeError, OverflowError) as exc:
        # demux() ends with an empty packet per stream that flushes the decoder; an error
        # here means the container itself broke off.
        rep.truncated = True
        rep.note(f"the container is damaged or truncated after {rep.decoded} frames: {_reason(exc)}")
