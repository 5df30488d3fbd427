"""Memory for decoding images: what one decode may take, and how many may run at once.

A small file can declare a huge picture (a 1.4 MB all-zero PNG is 22000 x 22000): the pixel
limit (``max_pixels``) bounds the picture, this module bounds the memory. Pillow keeps 8-bit
pixels of more than one band in 4 bytes (RGB included), 16-bit grey in 2, one-band 8-bit in 1;
``decode_bytes`` is that times the pixel count, plus a full-size conversion where one cannot be
avoided. The budget follows from the settings: ``max_pixels`` pixels of 4 bytes, i.e. one
image at the pixel limit. A decode over it is refused before any pixel is decoded; decodes
that fit wait for each other (``DECODES``) so that the decodes in flight together never hold
more than that budget, whatever the number of cores or worker threads.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

BYTES_PER_PIXEL = 4  # what the budget assumes per pixel at the max_pixels limit (8-bit RGB/RGBA in Pillow)
_PIXEL_SIZE = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
REDUCIBLE = {"L", "LA", "La", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "I", "F"}


def pixel_size(mode: str) -> int:
    """Bytes Pillow uses per pixel in ``mode`` (4 for every multi-band 8-bit mode and for I/F)."""
    return _PIXEL_SIZE.get(mode, 4)


def reducible_mode(mode: str) -> str:
    """The mode an image must be in for ``Image.reduce`` (it refuses 1, P and 16-bit grey)."""
    if mode in REDUCIBLE:
        return mode
    if mode.startswith("I;16"):
        return "I"
    if mode == "P":
        return "RGBA"  # the palette may carry transparency
    return "L" if mode == "1" else "RGB"


def decode_bytes(width: int, height: int, mode: str) -> int:
    """Peak bytes to decode a ``width`` x ``height`` image of ``mode`` and bring it to a reducible
    mode at full size (the shrinking to detector size happens after that, on less memory)."""
    pixels = width * height
    cost = pixels * pixel_size(mode)
    if reducible_mode(mode) != mode:
        cost += pixels * pixel_size(reducible_mode(mode))
    return cost


def memory_budget(max_pixels: int) -> int:
    """Bytes one decode (and all decodes in flight together) may hold, from the ``max_pixels`` setting."""
    return max(1, int(max_pixels)) * BYTES_PER_PIXEL


class DecodeGate:
    """Admits decodes while their reserved bytes fit the budget; a decode that would not fit
    waits. A decode is always admitted when nothing else is running (it was already checked
    against the budget), so the gate cannot deadlock."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.in_use = 0
        self.running = 0
        self.peak = 0  # most bytes reserved at once (for tests and benchmarks)

    @contextmanager
    def reserve(self, nbytes: int, budget: int) -> Iterator[None]:
        nbytes = max(0, int(nbytes))
        with self._cond:
            while self.running and self.in_use + nbytes > budget:
                self._cond.wait()
            self.in_use += nbytes
            self.running += 1
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= nbytes
                self.running -= 1
                self._cond.notify_all()


DECODES = DecodeGate()  # one per process: every Scanner and worker thread shares the memory
