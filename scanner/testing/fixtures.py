"""Deterministic synthetic images: procedural 'artworks' with no third-party content."""

from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFilter, ImageFont


def artwork(seed: int, size=(768, 512)) -> Image.Image:
    """A deterministic 'artwork': gradient sky, layered shapes, texture and a title band."""
    rng = random.Random(seed)
    w, h = size
    img = Image.new("RGB", size)
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    draw = ImageDraw.Draw(img)
    for y in range(h):
        t = y / h
        draw.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    for _ in range(rng.randint(12, 22)):
        colour = tuple(rng.randrange(256) for _ in range(3))
        kind = rng.choice(["ellipse", "rect", "poly"])
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randint(30, w // 2), y0 + rng.randint(30, h // 2)
        if kind == "ellipse":
            draw.ellipse([x0, y0, x1, y1], fill=colour, outline=(0, 0, 0), width=3)
        elif kind == "rect":
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            draw.polygon([(rng.randrange(w), rng.randrange(h)) for _ in range(rng.randint(3, 6))], fill=colour)
    for _ in range(400):
        x, y = rng.randrange(w), rng.randrange(h)
        draw.point((x, y), fill=tuple(rng.randrange(256) for _ in range(3)))
    font = ImageFont.load_default(size=40)
    draw.rectangle([0, h - 70, w, h], fill=(20, 20, 20))
    draw.text((20, h - 60), f"OPUS {seed:03d}", fill=(240, 240, 240), font=font)
    return img.filter(ImageFilter.SMOOTH)
