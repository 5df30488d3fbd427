"""Report thumbnails of decoded media: the picture, or a waveform strip for audio."""

from __future__ import annotations

from typing import Any

from PIL import Image

from scanner.media.image import thumbnail_jpeg
from scanner.media.waveform import waveform_jpeg


def thumbnail(media: Any) -> bytes:
    """JPEG thumbnail of a decoded image, or of an audio clip's waveform."""
    return thumbnail_jpeg(media) if isinstance(media, Image.Image) else waveform_jpeg(media)
