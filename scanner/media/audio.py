"""Audio decoding to mono float32 at a fixed rate, with duration limits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AudioClip:
    """Decoded audio: mono float32 samples in [-1, 1] at ``sr`` Hz."""

    samples: np.ndarray
    sr: int
    source_sr: int = 0
    channels: int = 1

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / float(self.sr)
