"""``image.clip``: open_clip image embeddings compared by cosine similarity.

The model comes from the registry in ``models/``. A real model needs its weights
installed (``scanner models pull|import``); the explicitly named test model
``clip-test-tiny`` is built from its config with a fixed seed and random weights.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from scanner.config import Settings
from scanner.detectors.base import Embedding, VectorDetector, register
from scanner.detectors.weights import ModelSpec, get_spec, require_weights
from scanner.errors import ConfigError
from scanner.types import Metric


def pick_device(wanted: str) -> str:
    """``auto`` picks CUDA when torch sees a GPU, else the CPU."""
    import torch

    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {wanted!r} requested but torch sees no GPU")
    return wanted


def _build(spec: ModelSpec, settings: Settings):
    import open_clip
    import torch

    if spec.test_only:
        torch.manual_seed(spec.seed)
        model = open_clip.CLIP(**spec.config)
        size = spec.config["vision_cfg"]["image_size"]
        preprocess = open_clip.image_transform(size, is_train=False)
        return model, preprocess, f"random-seed-{spec.seed}"
    weights, digest = require_weights(spec, settings)
    model, _, preprocess = open_clip.create_model_and_transforms(spec.architecture, pretrained=str(weights))
    return model, preprocess, digest


@register("image.clip")
class ClipDetector(VectorDetector):
    """Semantically similar images (open_clip embedding; needs imported weights)."""

    modality = "image"
    metric = Metric.COSINE

    def __init__(self, settings: Settings):
        import torch

        spec = get_spec(settings, settings.clip_model)
        if spec.detector != "image.clip":
            raise ConfigError(f"model {spec.name!r} is for {spec.detector}, not image.clip")
        self.spec = spec
        self.device = pick_device(settings.device)
        model, self._preprocess, self.weights_sha256 = _build(spec, settings)
        self._model = model.eval().to(self.device)
        if self.device.startswith("cuda"):
            self._model = self._model.half()
        self._torch = torch
        self.model_id = spec.name
        self.dim = spec.dim
        self.test_only = spec.test_only

    @property
    def model_label(self) -> str:
        return f"{self.model_id} (TEST MODEL, random weights)" if self.test_only else self.model_id

    def embed_references(self, images: Sequence[Image.Image]) -> list[Embedding]:
        if not images:
            return []
        torch = self._torch
        batch = torch.stack([self._preprocess(img) for img in images]).to(self.device)
        if self.device.startswith("cuda"):
            batch = batch.half()
        with torch.inference_mode():
            feats = self._model.encode_image(batch).float()
        feats = torch.nn.functional.normalize(feats, dim=-1).cpu().numpy().astype(np.float32)
        return [Embedding(row[None, :]) for row in feats]
