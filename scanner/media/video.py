"""Video decoding: a bounded stream of sampled, upright RGB frames with their times.

Video is not a detector. A video asset is decoded into sampled frames (sent to the
image detectors, each with its time and timecode) and its audio track (decoded by
``scanner.media.audio.decode_audio``, which reads the audio stream of any container).

Which frames are sampled and how the frame budget is spent is ``scanner.media.sampling``; opening
and probing containers and orientation is ``scanner.media.video_probe``. This module decodes.

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

import logging
import math
from fractions import Fraction
from typing import Iterator

import numpy as np
from PIL import Image

from scanner.errors import MediaError
from scanner.media.sampling import (DEFAULT_MAX_FRAMES, DEFAULT_MAX_INTERVAL, DEFAULT_SCENE_THRESHOLD,
                                    TRUNCATION_SLACK_S, EPS, FrameBudget, SamplingReport, VideoFrame, timecode)
from scanner.media.video_probe import (DEFAULT_MAX_PIXELS, Orientation, Source, VideoInfo, avg_fps,
                                       declared_duration, error_reason, frame_orientation, load_av,
                                       open_container, orientation_from_matrix, orientation_from_tag, probe_video,
                                       sample_aspect, start_time, stream_orientation, target_size, video_stream)

__all__ = ["iter_frames", "probe_video", "timecode", "SamplingReport", "VideoFrame", "VideoInfo", "Orientation",
           "orientation_from_matrix", "orientation_from_tag", "DEFAULT_MAX_INTERVAL", "DEFAULT_SCENE_THRESHOLD",
           "DEFAULT_MAX_FRAMES", "DEFAULT_MAX_SIDE", "DEFAULT_MAX_SECONDS", "DEFAULT_MAX_PIXELS"]

log = logging.getLogger(__name__)

DEFAULT_MAX_SIDE = 1024
DEFAULT_MAX_SECONDS = 3 * 3600.0  # same default as decode_audio
THUMB = 32


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
    av = load_av()
    container = open_container(source)
    with container:
        stream = video_stream(container)
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
        declared = declared_duration(container, stream)
        rep.duration = declared
        if declared is not None and declared > max_seconds + 1.0:
            raise MediaError(f"video is {declared / 60:.1f} min long, over the {max_seconds / 60:g} min limit "
                             "(raise the limit if it is genuine)")
        start = start_time(container, stream)
        fps = avg_fps(stream)
        sar = sample_aspect(stream)
        stream_orient = stream_orientation(stream)
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
        budget = FrameBudget(max_frames, max_interval, declared, rep)

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
            tw, th = target_size(frame.width, frame.height, sar, max_side)
            try:
                img = frame.to_image(width=tw, height=th, interpolation="AREA")
            except Exception as exc:  # noqa: BLE001 - odd formats swscale cannot convert
                raise MediaError(f"frame {index} at {timecode(t)} cannot be converted to RGB: {exc}") from None
            if img.mode != "RGB":
                img = img.convert("RGB")
            img = frame_orientation(frame, stream_orient).apply(img)
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
                t - last_sample_t > budget.periodic_interval() + EPS
            ):
                # The interval would be overshot by this frame: sample the one before it.
                if budget.remaining <= 0:
                    stopped = True
                    break
                yield make(prev_frame, prev_t, prev_i, "interval")
                last_sample_thumb = prev_thumb
                if t - last_sample_t > budget.periodic_interval() + EPS:
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
        if keyframes_only and rep.max_gap > budget.interval + EPS:
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
                log.debug("skipping undecodable video packet %d: %s", packets, error_reason(exc))
                continue
            for frame in frames:
                yield emit(frame)
    except (av.error.FFmpegError, OSError, ValueError, RuntimeError, OverflowError) as exc:
        # demux() ends with an empty packet per stream that flushes the decoder; an error
        # here means the container itself broke off.
        rep.truncated = True
        rep.note(f"the container is damaged or truncated after {rep.decoded} frames: {error_reason(exc)}")
