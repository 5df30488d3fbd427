"""Character composites and "re-drawn" renderings for the re-drawn-art benchmark (``benchmarks/redrawn.py``).

A generator that re-draws a registered character does not copy its pixels: it renders it small and
upscales it, re-paints it (edge-preserving stylisation, a cartoon look), posterises, warps it a
little and recolours it. These are OpenCV stand-ins for that, applied after the character is
composited into a scene (a generator re-draws the whole picture, character edges included), except
the warp and the recolour, which change the character only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

CANVAS = (512, 288)  # query size (w, h): 16:9 like a generated scene, small enough for 2 CPU cores


@dataclass(frozen=True)
class Cutout:
    """A character's opaque part: RGB and alpha (float 0-1), cropped to the alpha's box."""

    name: str
    rgb: np.ndarray
    alpha: np.ndarray


def load_cutout(path: str) -> Cutout:
    """The character at ``path`` (RGBA), cropped to its opaque box."""
    bgra = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if bgra is None or bgra.ndim != 3 or bgra.shape[2] != 4:
        raise ValueError(f"{path}: expected an RGBA image")
    a = bgra[:, :, 3]
    ys, xs = np.nonzero(a >= 128)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    rgb = cv2.cvtColor(bgra[y0:y1, x0:x1, :3], cv2.COLOR_BGR2RGB)
    return Cutout(path.rsplit("/", 1)[-1].rsplit(".", 1)[0], np.ascontiguousarray(rgb),
                  bgra[y0:y1, x0:x1, 3].astype(np.float32) / 255.0)


def cover(img: np.ndarray, size: tuple[int, int] = CANVAS) -> np.ndarray:
    """``img`` scaled to cover ``size`` (w, h) and centre-cropped to it."""
    w, h = size
    s = max(w / img.shape[1], h / img.shape[0])
    r = cv2.resize(img, (max(w, round(img.shape[1] * s)), max(h, round(img.shape[0] * s))),
                   interpolation=cv2.INTER_AREA)
    y, x = (r.shape[0] - h) // 2, (r.shape[1] - w) // 2
    return np.ascontiguousarray(r[y:y + h, x:x + w])


def on_background(cut: Cutout, bg: np.ndarray | tuple[int, int, int], mirror: bool = False) -> np.ndarray:
    """The cut-out composited on a flat colour or on an image of its size (RGB uint8)."""
    rgb, a = (cut.rgb[:, ::-1], cut.alpha[:, ::-1]) if mirror else (cut.rgb, cut.alpha)
    base = np.empty_like(rgb)
    base[:] = bg if isinstance(bg, tuple) else cv2.resize(bg, (rgb.shape[1], rgb.shape[0]))
    out = rgb.astype(np.float32) * a[..., None] + base.astype(np.float32) * (1 - a[..., None])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def warp(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator, amount: float = 0.06
         ) -> tuple[np.ndarray, np.ndarray]:
    """A small perspective jitter plus a smooth sine displacement (a re-drawn pose is never exact)."""
    h, w = alpha.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-amount, amount, (4, 2)).astype(np.float32) * np.float32([w, h])
    H = cv2.getPerspectiveTransform(src, dst)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ph = rng.uniform(0, 2 * np.pi, 2)
    mx = xx + 0.02 * w * np.sin(2 * np.pi * yy / h + ph[0])
    my = yy + 0.02 * h * np.sin(2 * np.pi * xx / w + ph[1])
    mx, my = mx.astype(np.float32), my.astype(np.float32)
    rgb2 = cv2.remap(cv2.warpPerspective(rgb, H, (w, h)), mx, my, cv2.INTER_LINEAR)
    a2 = cv2.remap(cv2.warpPerspective(alpha, H, (w, h)), mx, my, cv2.INTER_LINEAR)
    return rgb2, a2


def recolour(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hue rotated by 25-60 degrees either way and saturation scaled (a generator's palette)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + int(rng.choice([-1, 1]) * rng.uniform(12, 30))) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.7, 1.3), 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def composite(cut: Cutout, scene: np.ndarray, rng: np.random.Generator, mirror: bool,
              pre: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
              height: tuple[float, float] = (0.25, 0.6)) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """``cut`` pasted by its alpha into ``scene`` (CANVAS-sized RGB) at 25-60 % of the frame's height;
    ``pre`` changes the character (RGB, alpha) first. Returns the image and the box (x0, y0, x1, y1)."""
    H, W = scene.shape[:2]
    rgb, a = (cut.rgb[:, ::-1], cut.alpha[:, ::-1]) if mirror else (cut.rgb, cut.alpha)
    h = int(rng.uniform(*height) * H)
    w = max(8, round(rgb.shape[1] * h / rgb.shape[0]))
    if w > 0.9 * W:
        w = int(0.9 * W)
        h = max(8, round(rgb.shape[0] * w / rgb.shape[1]))
    rgb = cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=cv2.INTER_AREA)
    a = cv2.resize(np.ascontiguousarray(a), (w, h), interpolation=cv2.INTER_AREA)
    if pre is not None:
        rgb, a = pre(rgb, a)
    x, y = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
    out = scene.astype(np.float32).copy()
    roi = out[y:y + h, x:x + w]
    roi[:] = rgb.astype(np.float32) * a[..., None] + roi * (1 - a[..., None])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), (x, y, x + w, y + h)


def cartoon(rgb: np.ndarray) -> np.ndarray:
    """Bilateral smoothing, colours quantised to 8 levels per channel, dark outlines from an adaptive
    threshold: the classic OpenCV cartoon filter."""
    sm = rgb
    for _ in range(3):
        sm = cv2.bilateralFilter(sm, 7, 40, 7)
    sm = (sm // 32) * 32 + 16
    grey = cv2.medianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 5)
    edges = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 4)
    return np.where(edges[..., None] > 0, sm, (sm * 0.25).astype(np.uint8))


def posterise(rgb: np.ndarray, levels: int = 5) -> np.ndarray:
    """Each channel reduced to ``levels`` values."""
    step = 256 / levels
    return (np.floor(rgb / step) * step + step / 2).clip(0, 255).astype(np.uint8)


def low_res(rgb: np.ndarray, factor: int = 4) -> np.ndarray:
    """Rendered at 1/``factor`` size and upscaled back (bicubic)."""
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def jpeg(rgb: np.ndarray, quality: int = 85) -> np.ndarray:
    """Round trip through JPEG (every query is a delivered file)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _warped(rng):
    return lambda rgb, a: warp(rgb, a, rng)


def _warped_recoloured(rng):
    def pre(rgb, a):
        rgb, a = warp(rgb, a, rng)
        return recolour(rgb, rng), a
    return pre


# kind -> (change to the character before compositing, change to the whole composite)
KINDS: dict[str, tuple[str | None, Callable[[np.ndarray, np.random.Generator], np.ndarray] | None]] = {
    "paste": (None, None),
    "stylise": (None, lambda im, rng: cv2.stylization(im, sigma_s=float(rng.uniform(40, 80)),
                                                      sigma_r=float(rng.uniform(0.35, 0.55)))),
    "cartoon": (None, lambda im, rng: cartoon(im)),
    "epf_poster": (None, lambda im, rng: posterise(cv2.edgePreservingFilter(im, flags=1, sigma_s=60, sigma_r=0.4),
                                                   int(rng.integers(4, 7)))),
    "lowres_warp": ("warp", lambda im, rng: low_res(im, 4)),
    "recolour_warp_stylise": ("warp_recolour", lambda im, rng: cv2.stylization(im, sigma_s=50, sigma_r=0.4)),
}
REDRAWN = tuple(k for k in KINDS if k != "paste")


def make_query(cut: Cutout, scene: np.ndarray, kind: str, rng: np.random.Generator
               ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One query of ``kind`` (a key of ``KINDS``) for ``cut`` in ``scene``; mirrored half the time."""
    pre_name, post = KINDS[kind]
    pre = {"warp": _warped(rng), "warp_recolour": _warped_recoloured(rng), None: None}[pre_name]
    img, box = composite(cut, scene, rng, mirror=bool(rng.integers(0, 2)), pre=pre)
    if post is not None:
        img = post(img, rng)
    return jpeg(img, 85), box


# --------------------------------------------------------------------------- trained descriptor head


def head_forward(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The re-drawn-art head (``models/train_redraw_head.py``) on descriptors ``x`` (n, 1280):
    ``x @ w1 + b1``, then, when ``w2`` is present, ReLU and ``@ w2 + b2``; rows L2-normalised."""
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[1] != params["w1"].shape[0]:
        raise ValueError(f"head expects (n, {params['w1'].shape[0]}) descriptors, got {x.shape}")
    z = x @ params["w1"] + params["b1"]
    if "w2" in params:
        z = np.maximum(z, 0.0) @ params["w2"] + params["b2"]
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def load_head(path: str, sha256: str | None = None) -> dict[str, np.ndarray]:
    """The head's parameters from its ``.npz``; ``sha256`` (from its JSON) is checked when given."""
    import hashlib

    data = open(path, "rb").read()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path}: sha256 does not match the one recorded for it")
    with np.load(path) as z:
        return {k: z[k].astype(np.float32) for k in z.files}
