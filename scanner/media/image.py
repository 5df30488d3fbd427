"""Safe image decoding: pixel limits checked from the header before any decode."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from scanner.errors import MediaError
from scanner.media.budget import BYTES_PER_PIXEL, DECODES, decode_bytes, memory_budget, reducible_mode

# Our own limits (max_pixels, the memory budget) are checked from the header before decoding;
# Pillow's check stays as a backstop for any path that skips them: it refuses more than twice this.
BACKSTOP_PIXELS = 1_000_000_000
Image.MAX_IMAGE_PIXELS = BACKSTOP_PIXELS

# Where ``decode_image`` keeps the alpha channel of an image that has transparent pixels: an
# "L" image in ``img.info`` (the pixels themselves are composited on white, as before). Detectors
# that treat the opaque region as the work (character art, logos) read it with ``alpha_mask``.
ALPHA_INFO = "scanner.alpha"

# EXIF orientation -> the transpose that makes the picture upright (as ImageOps.exif_transpose)
_ORIENT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open (header only) and check the declared size against ``max_pixels``; ``MediaError`` if not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise MediaError("not a decodable image (content is not a supported image format)") from None
    except Image.DecompressionBombError:
        img = _open_past_backstop(data)  # our limits below decide (and name the declared size)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on corrupt headers
        raise MediaError(f"corrupt image header: {exc}") from None
    check_size(img.size, max_pixels)
    return img


def _open_past_backstop(data: bytes) -> Image.Image:
    """The header of an image Pillow's backstop refused, opened as ``Image.open`` does but without
    that check, so that ``max_pixels`` and the memory budget judge it with a precise message."""
    Image.init()
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        if accept is not None and not accept(data[:16]):
            continue
        try:
            return factory(io.BytesIO(data), "")
        except Exception:  # noqa: BLE001 - not this format; try the next, as Image.open does
            continue
    raise MediaError("not a decodable image (content is not a supported image format)")


def check_size(size: tuple[int, int], max_pixels: int, what: str = "image") -> None:
    """``MediaError`` for an empty picture or one over ``max_pixels``."""
    w, h = size
    if w <= 0 or h <= 0:
        raise MediaError(f"{what} has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise MediaError(
            f"{what} declares {w}x{h} = {w * h / 1e6:.0f} MP, over the {max_pixels / 1e6:.0f} MP limit "
            "(possible decompression bomb; raise max_pixels if it is genuine)"
        )


def check_memory(img: Image.Image, max_pixels: int, what: str = "image") -> int:
    """Bytes decoding ``img`` (as opened, after any draft) will take; ``MediaError`` when over the
    memory budget that ``max_pixels`` implies (see ``scanner.media.budget``)."""
    need, budget = decode_bytes(img.size[0], img.size[1], img.mode), memory_budget(max_pixels)
    if need > budget:
        w, h = img.size
        raise MediaError(f"{what} is {w}x{h} in mode {img.mode}: decoding it needs {need / 1e6:.0f} MB, over the "
                         f"{budget / 1e6:.0f} MB decode budget ({max_pixels / 1e6:.0f} MP x {BYTES_PER_PIXEL} bytes; "
                         "raise max_pixels if it is genuine)")
    return need


def decode_image(data: bytes, max_pixels: int, max_side: int | None = 2048) -> Image.Image:
    """Decode bytes to an RGB image, upright per EXIF, first frame of animations.

    ``max_side`` bounds the decoded size (JPEG decodes at reduced scale for free);
    every detector here works on at most that resolution. Memory: the decode is refused when it
    would need more than the budget ``max_pixels`` implies, waits for other decodes while they
    hold that budget, and shrinks the picture in its own mode before any full-size copy.
    """
    img = open_image(data, max_pixels)
    try:
        if max_side and img.format == "JPEG":
            img.draft("RGB", (max_side, max_side))
        need = check_memory(img, max_pixels)
        with DECODES.reserve(need, memory_budget(max_pixels)):
            img = upright_rgb(img, max_side)
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise MediaError(f"image data is corrupt or truncated: {exc}") from None
    return img


def upright_rgb(img: Image.Image, max_side: int | None) -> Image.Image:
    """Load ``img`` (the current frame), shrink it to ``max_side`` in its own mode, turn it upright
    per EXIF, then make it RGB (keeping a transparency mask in ``info``). No full-size copy is made
    beyond one conversion to a reducible mode (``budget.decode_bytes`` counts it)."""
    orientation = _orientation(img)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img.load()
    img = _shrink(img, max_side)
    if orientation in _ORIENT:
        img = img.transpose(_ORIENT[orientation])
    alpha = _alpha_channel(img)
    img = to_rgb(img)
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if alpha is not None:
        img.info[ALPHA_INFO] = alpha.resize(img.size, Image.Resampling.BILINEAR) if alpha.size != img.size else alpha
    return img


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block must not fail the decode
        return 1


def _shrink(img: Image.Image, max_side: int | None) -> Image.Image:
    """Integer box reduction to about ``2 * max_side`` (the final LANCZOS thumbnail does the rest),
    in a mode ``reduce`` accepts; the image as it is when it is small enough already."""
    if not max_side:
        return img
    factor = max(img.size) // (2 * max_side)
    if factor < 2:
        return img
    if reducible_mode(img.mode) != img.mode:
        if img.mode == "P" and "transparency" not in img.info:
            img = img.convert("RGB")
        else:
            img = img.convert(reducible_mode(img.mode))
    return img.reduce(factor)


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


def straight_rgba(img: Image.Image) -> Image.Image | None:
    """The work with its own colours and opacity (RGBA, straight alpha), or None without transparency.

    ``decode_image`` composites transparent pixels on white and keeps the alpha beside them; putting that
    alpha back on the composited pixels would blend a half-transparent pixel (glass, a glow, an
    anti-aliased edge) with white twice. Its colour is recovered instead: ``c = a*f + (1-a)*255`` gives
    ``f = (c - (1-a)*255) / a``, so that compositing the result anywhere is the work composited there."""
    own = _alpha_channel(img)
    if own is not None:
        return img.convert("RGBA")
    mask = alpha_mask(img)
    if mask is None:
        return None
    a = mask.astype(np.float32)[..., None] / 255.0
    c = np.asarray(img.convert("RGB"), dtype=np.float32)
    f = (c - (1.0 - a) * 255.0) / np.maximum(a, 1.0 / 255.0)
    rgba = np.dstack([np.clip(np.rint(f), 0, 255).astype(np.uint8), mask])
    return Image.fromarray(rgba, "RGBA")


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
