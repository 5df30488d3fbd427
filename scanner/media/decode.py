"""Bytes of an asset to the decoded form detectors read, by sniffed media type."""

from __future__ import annotations

from typing import Any

from scanner.config import Settings
from scanner.errors import MediaError
from scanner.media.files import LoadedFile
from scanner.media.audio import decode_audio
from scanner.media.image import decode_image
from scanner.media.sniff import AUDIO, IMAGE


def decode(loaded: LoadedFile, settings: Settings) -> Any:
    """A PIL image for images, an ``AudioClip`` (mono, 16 kHz) for audio."""
    if loaded.media_type == IMAGE:
        return decode_image(loaded.data, settings.max_pixels)
    if loaded.media_type == AUDIO:
        return decode_audio(loaded.data, max_seconds=settings.max_audio_seconds)
    raise MediaError(f"{loaded.media_type} assets cannot be checked yet: no {loaded.media_type} detector is enabled")
