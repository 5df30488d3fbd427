"""The sampling policy for video frames: what is kept, how the frame budget is spent, and what
the scan is told about it.

Which frames of a video are sampled (``scanner.media.video.iter_frames``)
========================================================================
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
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from PIL import Image

log = logging.getLogger("scanner.media.video")

DEFAULT_MAX_INTERVAL = 2.0
DEFAULT_SCENE_THRESHOLD = 18.0  # grey levels (0-255) of 32x32 thumbnail MAD; see module doc
DEFAULT_MAX_FRAMES = 500
TRUNCATION_SLACK_S = 1.0
EPS = 1e-6


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


class FrameBudget:
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
            if self.interval > max_interval + EPS:
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
