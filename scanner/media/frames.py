"""Every frame of an animated image (GIF, APNG, WebP) and every page of a multi-page TIFF.

Decoding only the first frame let a copy in frame 4 of a GIF, or on page 2 of a TIFF, pass
without a word. ``iter_image_frames`` walks all frames/pages and samples them the way video
frames are sampled: the first frame, then every frame that differs from the last sampled one
(mean absolute difference of 32x32 grey thumbnails over ``scene_threshold``, so a still run of
frames costs one check), within ``max_frames``; when more frames change than that, they are
spread evenly over the animation. Frames come out as ``VideoFrame`` (upright RGB, long side at
most ``max_side``) and fill a ``SamplingReport``, so the scan treats them like video frames.

Bounded: at most ``max_decoded`` frames are decoded, each against ``max_pixels`` and the memory
budget. A frame that fails to decode, or frames past ``max_decoded``, leave ``report.truncated``
set: the rest was not seen, and the scan turns that into an error unless something already blocks.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image

from scanner.errors import MediaError
from scanner.media.budget import DECODES, memory_budget
from scanner.media.image import check_memory, check_size, open_image, upright_rgb
from scanner.media.video import SamplingReport, VideoFrame

DEFAULT_MAX_FRAMES = 64  # frames checked per image at most
DEFAULT_MAX_DECODED = 2000  # frames or pages decoded at most; more is incomplete
DEFAULT_SCENE_THRESHOLD = 6.0  # grey levels (0-255) of 32x32 thumbnail MAD between sampled frames
THUMB = 32


@dataclass(frozen=True)
class FrameSequenceInfo:
    """Header facts of an image with more than one frame or page (stands where video has ``VideoInfo``)."""

    frames: int  # frames/pages declared (counted up to ``DEFAULT_MAX_DECODED + 1``)
    format: str  # Pillow's name: GIF, PNG, WEBP, TIFF, ...
    paged: bool  # pages (TIFF) rather than frames in time
    has_video: bool = True
    has_audio: bool = False

    @property
    def unit(self) -> str:
        return "pages" if self.paged else "frames"


def frame_count(data: bytes, limit: int = DEFAULT_MAX_DECODED + 1) -> int:
    """How many frames/pages an image holds (1 for a still image or anything unreadable; counted
    from headers, no pixels decoded, up to ``limit``)."""
    try:
        img = Image.open(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - decode_image reports unreadable files
        return 1
    try:
        n = getattr(img, "n_frames", 1)
    except Exception:  # noqa: BLE001 - a damaged later frame: at least two, the walk finds the damage
        return 2
    return max(1, min(int(n or 1), limit))


def sequence_info(data: bytes) -> FrameSequenceInfo | None:
    """``FrameSequenceInfo`` of a multi-frame/page image, None for a still one."""
    n = frame_count(data)
    if n < 2:
        return None
    fmt = Image.open(io.BytesIO(data)).format or "image"
    return FrameSequenceInfo(n, fmt, paged=fmt in ("TIFF", "MPO") or fmt.endswith("TIFF"))


def _grey_thumb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L").resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.float32)


def iter_image_frames(
    data: bytes, max_pixels: int, report: SamplingReport | None = None, max_frames: int = DEFAULT_MAX_FRAMES,
    max_decoded: int = DEFAULT_MAX_DECODED, max_side: int = 2048, scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
) -> Iterator[VideoFrame]:
    """Sampled frames/pages of a multi-frame image (see the module docstring), in order.

    ``VideoFrame.time`` is the frame's start in seconds (from frame durations; page number for
    TIFF pages), ``timecode`` reads ``frame N``/``page N`` (1-based), ``index`` is 0-based.
    """
    if max_frames < 1 or max_decoded < 1:
        raise ValueError("max_frames and max_decoded must be at least 1")
    rep = report if report is not None else SamplingReport()
    img = open_image(data, max_pixels)
    paged = (img.format or "").upper() in ("TIFF", "MPO")
    declared = frame_count(data)
    unit = "page" if paged else "frame"
    budget = memory_budget(max_pixels)
    # changed frames are sampled at once while the budget lasts; once it would run out, only
    # every ``stride``-th changed frame, so the samples reach the end of the animation
    stride = max(1, math.ceil(declared / max_frames))
    last_thumb: np.ndarray | None = None
    t = 0.0
    since_last = 0  # frames decoded since the last sampled one
    for index in range(min(declared, max_decoded)):
        try:
            if index:
                img.seek(index)
            check_size(img.size, max_pixels, f"{unit} {index + 1}")
            need = check_memory(img, max_pixels, f"{unit} {index + 1}")
            duration = float(img.info.get("duration") or 0) / 1000.0
            # upright_rgb may hand back (or resize in place) the frame Pillow decodes into, which the
            # next seek overwrites: a frame not shrunk by ``reduce`` is decoded from a copy
            small = max(img.size) < 4 * max_side
            with DECODES.reserve(need * (2 if small else 1), budget):
                if small:
                    img.load()
                frame = upright_rgb(img.copy() if small else img, max_side)
        except EOFError:
            break  # fewer frames than the header said: all there are were seen
        except MediaError:
            raise
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types on damaged frames
            rep.truncated = True
            rep.note(f"{unit} {index + 1} is damaged ({exc}); the rest could not be checked")
            break
        rep.decoded += 1
        rep.last_time = t
        since_last += 1
        thumb = _grey_thumb(frame)
        changed = last_thumb is None or float(np.abs(thumb - last_thumb).mean()) > scene_threshold
        room = max_frames - rep.sampled
        take = last_thumb is None or (changed and room > 0 and (room >= declared - index or since_last >= stride))
        if take:
            rep.sampled += 1
            if last_thumb is not None:
                rep.cuts += 1
            since_last = 0
            last_thumb = thumb
            yield VideoFrame(frame, float(index) if paged else t, index, f"{unit} {index + 1}",
                             "first" if index == 0 else "change")
        elif changed:
            rep.dropped_scene_frames += 1
        t += duration
    if declared > max_decoded and rep.decoded >= max_decoded:
        rep.truncated = True
        rep.capped = True
        rep.note(f"only the first {max_decoded} of {declared if declared <= max_decoded else 'more'} "
                 f"{unit}s were decoded; the rest could not be checked")
    if rep.dropped_scene_frames:
        rep.capped = True
        rep.note(f"{rep.dropped_scene_frames} changed {unit}s were not checked (at most {max_frames} per image); "
                 f"the checked ones are spread over the whole image")


def describe(report: SamplingReport, info: FrameSequenceInfo) -> str:
    """The note a result carries: what of the image was checked."""
    unit = info.unit
    return (f"{info.format.lower()}: {report.sampled} of {report.decoded} {unit} checked "
            f"(every {unit[:-1]} that differs from the last checked one)")


def incomplete(report: SamplingReport, info: FrameSequenceInfo) -> str | None:
    """Why part of the image was not checked (the scan makes that an error unless it blocks), or None."""
    if not report.truncated:
        return None
    return (f"{info.format.lower()} is truncated, damaged or too long after {info.unit[:-1]} {report.decoded}: "
            "the rest could not be checked")
