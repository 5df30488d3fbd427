"""``image.clip``: open_clip image embeddings compared by cosine similarity.

The model comes from the registry in ``models/``. A real model needs its weights
installed (``scanner models pull|import``); the explicitly named test model
``clip-test-tiny`` is built from its config with a fixed seed and random weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from scanner.config import Settings
from scanner.detectors.base import DetectorOptions, Embedding, VectorDetector, floors_for, options_for, register
from scanner.models import ResolvedModel, resolve
from scanner.errors import ConfigError
from scanner.types import Metric, Modality


def pick_device(wanted: str) -> str:
    """``auto`` picks CUDA when torch sees a GPU, else the CPU."""
    import torch

    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {wanted!r} requested but torch sees no GPU")
    return wanted


def _build(model: ResolvedModel):
    import open_clip
    import torch

    spec = model.spec
    if model.weights is None:  # a test model: random weights from its config
        torch.manual_seed(spec.seed)
        model = open_clip.CLIP(**spec.config)
        size = spec.config["vision_cfg"]["image_size"]
        preprocess = open_clip.image_transform(size, is_train=False)
        return model, preprocess, f"random-seed-{spec.seed}"
    net, _, preprocess = open_clip.create_model_and_transforms(spec.architecture, pretrained=str(model.weights))
    return net, preprocess, model.sha256


@register("image.clip")
class ClipDetector(VectorDetector):
    """Semantically similar images (open_clip embedding; needs imported weights)."""

    modality = Modality.IMAGE
    metric = Metric.COSINE

    @dataclass(frozen=True)
    class Options(DetectorOptions):
        model: str = "clip-vit-b-32-laion2b"

    def __init__(self, settings: Settings):
        import torch

        self.options = options_for(self, settings)
        resolved = resolve(settings, self)
        spec = resolved.spec
        self.spec = spec
        self.device = pick_device(settings.device)
        model, self._preprocess, self.weights_sha256 = _build(resolved)
        self._model = model.eval().to(self.device)
        if self.device.startswith("cuda"):
            self._model = self._model.half()
        self._torch = torch
        self.model_id = spec.name
        self.dim = spec.dim
        self.test_only = spec.test_only
        self.floors = floors_for(self, settings, self.model_id)

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
