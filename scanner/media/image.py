"""Safe image decoding: pixel limits checked from the header before any decode."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from scanner.errors import MediaError

# We enforce our own limit (from settings) before decoding; Pillow's check stays as a backstop.
Image.MAX_IMAGE_PIXELS = None

# Where ``decode_image`` keeps the alpha channel of an image that has transparent pixels: an
# "L" image in ``img.info`` (the pixels themselves are composited on white, as before). Detectors
# that treat the opaque region as the work (character art, logos) read it with ``alpha_mask``.
ALPHA_INFO = "scanner.alpha"


def decode_image(data: bytes, max_pixels: int, max_side: int | None = 2048) -> Image.Image:
    """Decode bytes to an RGB image, upright per EXIF, first frame of animations.

    ``max_side`` bounds the decoded size (JPEG decodes at reduced scale for free);
    every detector here works on at most that resolution.
    """
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise MediaError("not a decodable image (content is not a supported image format)") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on corrupt headers
        raise MediaError(f"corrupt image header: {exc}") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise MediaError(f"image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise MediaError(
            f"image declares {w}x{h} = {w * h / 1e6:.0f} MP, over the {max_pixels / 1e6:.0f} MP limit "
            "(possible decompression bomb; raise max_pixels if it is genuine)"
        )
    try:
        if max_side and img.format == "JPEG":
            img.draft("RGB", (max_side, max_side))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
        img = ImageOps.exif_transpose(img)
        alpha = _alpha_channel(img)
        img = to_rgb(img)
        if max_side and max(img.size) > max_side:
            img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        if alpha is not None:
            img.info[ALPHA_INFO] = alpha.resize(img.size, Image.Resampling.BILINEAR) if alpha.size != img.size else alpha
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise MediaError(f"image data is corrupt or truncated: {exc}") from None
    return img


def _alpha_channel(img: Image.Image) -> Image.Image | None:
    """The alpha channel as an "L" image when some pixel is not fully opaque, else None."""
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode not in ("RGBA", "LA", "PA", "RGBa", "La"):
        return None
    alpha = img.getchannel("A")
    lo, _ = alpha.getextrema()
    return alpha if lo < 255 else None


def alpha_mask(img: Image.Image) -> np.ndarray | None:
    """Opacity in [0, 255] (uint8, image-sized) of an image with transparent pixels, else None.

    Read from the image's own alpha channel, or from the one ``decode_image`` kept in
    ``img.info[ALPHA_INFO]`` (resized when the image was resized after decoding)."""
    alpha = _alpha_channel(img)
    if alpha is None:
        alpha = img.info.get(ALPHA_INFO)
        if not isinstance(alpha, Image.Image):
            return None
        if alpha.size != img.size:
            alpha = alpha.resize(img.size, Image.Resampling.BILINEAR)
    return np.asarray(alpha.convert("L"), dtype=np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode (P, LA, CMYK, I;16, F...) to 8-bit RGB; alpha composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) * (255.0 / (hi - lo))
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")


def thumbnail_jpeg(img: Image.Image, side: int = 256, quality: int = 80) -> bytes:
    """Small JPEG for reports and the catalog."""
    t = img.copy()
    t.thumbnail((side, side))
    buf = io.BytesIO()
    t.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
