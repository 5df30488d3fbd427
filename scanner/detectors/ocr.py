"""Text boxes in an image: PP-OCRv4 text *detection* (no recognition), as ``image.local`` needs it.

Unrelated works that carry the same title in the same typeface share many keypoints on the
lettering, and those keypoints verify a homography as well as a copied picture would. So
``image.local`` finds the text in references and assets and keeps such keypoints from
verifying a match on their own. Only the boxes are needed: where text is, not what it says.

The model is PaddleOCR's PP-OCRv4 mobile detector (a DB segmentation network, Apache-2.0) as
shipped inside the ``rapidocr-onnxruntime`` wheel; its registry entry is
``models/ocr-ppocrv4-det.json`` (sha256 pinned). The file is read where the package installed it
(``scanner models import`` may put a checked copy in the model cache instead); it is never copied
by this project. The pre- and post-processing are RapidOCR's own (``TextDetector``: resize to a
multiple of 32, DB thresholding, box unclipping), so boxes are what that library would give.

Install: ``pip install --no-deps rapidocr-onnxruntime==1.4.4`` (``install.sh`` does it): the
package declares ``opencv-python``, which would install a second ``cv2`` beside the project's
``opencv-python-headless``; its other dependencies are in ``pyproject.toml``.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np
from PIL import Image

from scanner.config import Settings
from scanner.errors import ModelMissingError
from scanner.models import resolve

MODEL = "ocr-ppocrv4-det"  # registered for image.local, whose ``Options.model`` picks it
MAX_SIDE = 960  # the detector sees the image with its long side at most this (text >= ~8 px high at that size)
PIP = "--no-deps rapidocr-onnxruntime==1.4.4"
# A box whose long side is under this many times its short side is dropped: on pictures the
# detector also fires on compact shapes (a ring logo, a trident, an ellipse), while a line of two
# or more characters is elongated. Measured on ../shared/data (see benchmarks/partial_copy.py).
MIN_ASPECT = 1.6


def _session(path) -> Any:
    """RapidOCR's session settings (no memory arena, full graph optimisation, CPU) with the project's
    thread options (``onnx_session``: idle workers sleep instead of spinning beside the other detectors).
    RapidOCR 1.4.4 has no option for that, so its ``TextDetector`` gets this session in place of its own."""
    import onnxruntime as ort

    from scanner.detectors.onnx_session import session_options

    opts = session_options()
    opts.log_severity_level = 4
    opts.enable_cpu_mem_arena = False
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts,
                                providers=[("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})])


class TextDetectionError(RuntimeError):
    """The text detector failed on one image (the caller goes on without text boxes, with a note)."""


class TextFinder:
    """Quadrilaterals around text, in the pixels of the image given."""

    def __init__(self, settings: Settings | None = None, max_side: int = MAX_SIDE, model: str = MODEL):
        settings = settings or Settings()
        resolved = resolve(settings, "image.local", model)
        spec, path, digest = resolved.spec, resolved.weights, resolved.sha256
        self.model_name = spec.name
        self.sha256 = digest
        self.max_side = int(max_side)
        cfg: dict[str, Any] = dict(spec.config.get("postprocess", {}))
        cfg.update(model_path=str(path), limit_type="max", limit_side_len=self.max_side,
                   use_cuda=False, use_dml=False)
        try:
            from rapidocr_onnxruntime.ch_ppocr_det import TextDetector
        except ImportError as exc:
            raise ModelMissingError(
                f"text detection for image.local needs the rapidocr-onnxruntime package ({exc}); "
                f"install it with `pip install {PIP}`"
            ) from None
        self._det = TextDetector(cfg)
        self._det.infer.session = _session(path)
        self._lock = threading.Lock()  # one ONNX session shared by a scan's threads

    @property
    def label(self) -> str:
        return f"{self.model_name}:{self.sha256[:12]}"

    def boxes(self, img: Image.Image | np.ndarray) -> np.ndarray:
        """(k, 4, 2) float32 corners of each text box found, in the pixels of ``img`` (RGB or grey).

        Raises ``TextDetectionError`` when the model cannot run on this image."""
        arr = _bgr(img)
        if min(arr.shape[:2]) < 8:
            return np.zeros((0, 4, 2), np.float32)  # nothing legible fits
        try:
            with self._lock:
                found, _ = self._det(arr)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime and the post-processing raise anything
            raise TextDetectionError(f"text detection failed: {type(exc).__name__}: {exc}"[:300]) from None
        if found is None or len(found) == 0:
            return np.zeros((0, 4, 2), np.float32)
        quads = np.asarray(found, np.float32).reshape(-1, 4, 2)
        a = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1)
        b = np.linalg.norm(quads[:, 2] - quads[:, 1], axis=1)
        keep = np.maximum(a, b) >= MIN_ASPECT * np.maximum(np.minimum(a, b), 1e-6)
        return quads[keep]


def _bgr(img: Image.Image | np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 BGR, the layout the PaddleOCR models were trained on."""
    if isinstance(img, Image.Image):
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        arr = np.asarray(img, dtype=np.uint8)
    else:
        arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(arr[:, :, 2::-1])


def text_mask(boxes: np.ndarray, shape: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """Boolean (h, w) mask of the boxes drawn on a grid whose pixel is ``scale`` image pixels."""
    mask = np.zeros(shape, np.uint8)
    if len(boxes):
        pts = np.round(np.asarray(boxes, np.float64).reshape(-1, 4, 2) / scale).astype(np.int32)
        cv2.fillPoly(mask, list(pts), 1)
    return mask.astype(bool)
