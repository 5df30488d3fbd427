"""A waveform strip of an audio clip: the audio's 'thumbnail' in catalogs and reports.

The x axis spans the whole clip, so a time span ``[a, b]`` maps to ``[a, b] / duration``
of the width; the HTML report overlays matched spans that way.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from scanner.media.audio import AudioClip


def waveform_jpeg(clip: AudioClip, width: int = 512, height: int = 96) -> bytes:
    """JPEG of the clip's min/max envelope."""
    img = Image.new("RGB", (width, height), (245, 245, 245))
    draw = ImageDraw.Draw(img)
    x = clip.samples
    if x.size:
        cols = np.array_split(x, width) if x.size >= width else [x]
        peak = max(float(np.max(np.abs(x))), 1e-6)
        mid = height / 2
        for i, col in enumerate(cols):
            if col.size:
                lo, hi = float(col.min()) / peak, float(col.max()) / peak
                draw.line([(i, mid - hi * (mid - 2)), (i, mid - lo * (mid - 2))], fill=(60, 90, 160))
    draw.line([(0, height / 2), (width, height / 2)], fill=(200, 200, 200))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()
