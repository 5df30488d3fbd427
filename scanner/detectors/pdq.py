"""``image.pdq``: Meta's PDQ perceptual hash (256 bits, Hamming distance).

References are hashed as they are; queries are hashed in all 8 dihedral orientations
(``pdqhash.compute_dihedral``) so mirrored and 90°-rotated copies match too.
Hashes with PDQ quality below the ``min_quality`` floor (Meta's recommended 50, in the calibration
entry; flat, featureless images) are not compared: their bits are noise and would match other flat images.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pdqhash
from PIL import Image

from scanner.config import Settings
from scanner.detectors.base import Embedding, VectorDetector, floors_for, register
from scanner.types import Metric, Modality

WORK_SIDE = 512  # PDQ downsamples to 64x64 internally; larger input only costs time


def _pixels(img: Image.Image) -> np.ndarray:
    if max(img.size) > WORK_SIDE:
        img = img.copy()
        img.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def _pack(bits: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(bits, dtype=np.uint8).reshape(-1, 256), axis=1)


@register("image.pdq")
class PdqDetector(VectorDetector):
    """Near-exact copies of a registered work: resized, recompressed, mirrored, rotated by 90 degrees."""

    modality = Modality.IMAGE
    metric = Metric.HAMMING
    hash_bits = 256  # reports say "30 of 256 bits"
    FLOORS = ("search_k", "min_quality")

    def __init__(self, settings: Settings | None = None):
        self.model_id = "pdq"
        self.weights_sha256 = "none"
        self.dim = 256
        self.floors = floors_for(self, settings or Settings(), self.model_id)
        self.min_quality = int(self.floors["min_quality"])

    def _low_quality(self, quality: int) -> Embedding:
        return Embedding(
            np.zeros((0, 32), np.uint8),
            f"image.pdq: too little detail for a reliable hash (quality {quality} < {self.min_quality}); not compared",
        )

    def embed_references(self, images: Sequence[Image.Image]) -> list[Embedding]:
        out = []
        for img in images:
            bits, quality = pdqhash.compute(_pixels(img))
            out.append(self._low_quality(quality) if quality < self.min_quality else Embedding(_pack(bits)))
        return out

    def embed_queries(self, images: Sequence[Image.Image]) -> list[Embedding]:
        out = []
        for img in images:
            hashes, qualities = pdqhash.compute_dihedral(_pixels(img))
            quality = int(np.atleast_1d(qualities)[0])
            out.append(self._low_quality(quality) if quality < self.min_quality else Embedding(_pack(np.array(hashes))))
        return out
