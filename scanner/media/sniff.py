"""Media type from the first bytes of a file, never from its extension."""

from __future__ import annotations

IMAGE, AUDIO, VIDEO = "image", "audio", "video"

# Extensions that claim to be media: such a file whose content is not media is an error,
# any other non-media file (sidecars, notes) is skipped.
MEDIA_EXTENSIONS = {
    IMAGE: {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".avif", ".exr", ".dpx"},
    AUDIO: {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff"},
    VIDEO: {".mp4", ".mov", ".mkv", ".webm", ".avi", ".mxf", ".m4v"},
}


def claimed_type(name: str) -> str | None:
    """Media type the file name's extension claims, if any."""
    lower = name.lower()
    for kind, exts in MEDIA_EXTENSIONS.items():
        if any(lower.endswith(e) for e in exts):
            return kind
    return None


def sniff(head: bytes) -> tuple[str, str] | None:
    """(media type, format) from the first 64 bytes, or None when not a known media format."""
    if head.startswith(b"\xff\xd8\xff"):
        return IMAGE, "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return IMAGE, "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return IMAGE, "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return IMAGE, "webp"
    if head[:2] == b"BM" and len(head) >= 26 and head[6:10] == b"\0\0\0\0":
        return IMAGE, "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return IMAGE, "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return AUDIO, "wav"
    if head[:4] == b"fLaC":
        return AUDIO, "flac"
    if head[:4] == b"OggS":
        return AUDIO, "ogg"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0):
        return AUDIO, "mp3"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return AUDIO, "aiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return AUDIO, "m4a"
        if brand in (b"heic", b"heix", b"mif1", b"avif"):
            return IMAGE, brand.decode().strip()
        return VIDEO, "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return VIDEO, "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return VIDEO, "avi"
    return None
