"""Image-copy benchmark: recall at a false-positive rate for a design catalog size, and threshold calibration.

    .venv/bin/python benchmarks/image_copy.py [--images DIR] [--clip-model NAME]
        [--design-refs N] [--write-calibration [PATH]] [--seed N] [--quick]

Data. Every image in ``--images`` (default ``../shared/data/images``) is a "work".
Works that are near-duplicates of each other (same artwork at another aspect
ratio, a recolour) are grouped first, so a group is never split between the
catalog and the held-out side: 16x16 grey thumbnails (plain resize and centre
crop) with a Pearson correlation of at least ``SAME_WORK_CORRELATION`` are one
group. The groups are shuffled with ``--seed`` and filled into the catalog until
it holds half of the works; the rest are held out. ``faces/`` next to the images
folder, when present, adds unrelated negatives.

Queries. Every work and face goes through the same list of AugLy transforms
(``TRANSFORMS``; the untransformed image counts as one of them). A transformed
registered work is a *positive* whose answer is its own group; a transformed
held-out work or face is a *negative*.

Scores. For each method (baseline pHash, ``image.pdq``, ``image.clip`` per model)
a query's score against one reference is its best row-to-row score (for PDQ:
every dihedral query row against every reference row), and its overall score is
the best over the catalog (brute force). A query or reference that the detector
declares not comparable (empty embedding, e.g. PDQ quality < 50) never matches.

Design catalog size. A studio catalog holds thousands to millions of works, far
more than the benchmark's catalog (half the works, 24 on the shared data), and
every extra reference is one more chance for a clean asset to match. So the
operating points are defined for ``--design-refs N`` references (default
``DESIGN_REFS`` = 10,000): a per-query false-positive rate ``FPR`` (1 % -> review,
0.1 % -> block) at N references means a per-pair false-match rate

    p = 1 - (1 - FPR) ** (1 / N)        (about FPR / N)

assuming a clean query's N pair scores are independent draws.

Per-pair rate. Every (negative query, reference) pair is one sample of the
negative pair-score distribution (about 36,000 pairs on the shared data). Pairs
with a not-comparable side never match; they are left out of the rate (it is
per comparable pair), which is the stricter choice for a catalog of comparable
works. At a threshold ``t``, with ``k`` of the ``n`` comparable pairs passing:

* ``k >= MIN_EMPIRICAL_PAIRS`` (20): the empirical rate ``k / n``;
* otherwise ``max(fitted tail rate, k / n)``: a normal distribution fitted to the
  closest ``TAIL_SHARE`` (10 %) of the pairs, never below what was observed.

The tail model: probit regression. For every distinct score ``v`` among the
closest 10 % of pairs, ``z = Phi^-1(F(v))`` (``F`` the empirical share of pairs at
least as close as ``v``) is regressed on ``v`` by weighted least squares with the
delta-method inverse variances ``n phi(z)^2 / (F (1 - F))``; slope and intercept
give the normal's mean and spread. Hamming distances are fitted as they are;
cosine similarities on the Fisher scale ``atanh(s)``. An integer Hamming
threshold between two observed distances (PDQ and pHash distances here are all
even) gets the interpolated, slightly higher, fitted rate. Why a normal, and why
fitted to the tail only: a Hamming distance between unrelated hashes is a sum of
many nearly independent bit disagreements (binomial, hence normal-like), and the
Fisher transform is the standard normalising transform for correlation-like
scores bounded by 1. Image structure (flat backgrounds, similar layouts) and the
min over PDQ's 8 dihedral rows make the real lower tail heavier than a normal
fitted to all pairs (PDQ: 7e-5 of pairs at distance <= 92 against about 1e-6
from an all-pairs normal), which is why only the closest 10 % are used. The
alternatives: an exponential tail (a generalised Pareto with shape 0), fitted the
same way, over-predicts the deepest observable rates by 1.4-2.7x on the shared
data (the log-rate curves bend down, as a normal-type tail does) and would push
PDQ to <= 76 / <= 70 and CLIP to 1.0; a free generalised-Pareto shape is poorly
determined from the 8-9 distinct Hamming values of the tail. The report prints
the goodness check (fitted vs empirical rate, normal and exponential, at every
threshold inside the fitted tail where at least 20 pairs pass) and the
thresholds that a 5 % normal tail and an exponential tail would give.

This is a statistical extrapolation: the design targets (about 1e-6 and 1e-7
per pair at N = 10,000) lie 1.5 to 2.5 orders of magnitude below ``1 / n``, the
smallest non-zero rate the benchmark can observe, and about three below the
20-pair level where it is measured with any precision. Pairs are also correlated (the
negatives come from under a hundred images). Treat the estimated per-query FPR at
N as a model output, not a measurement; the report prints it next to the
empirical per-query FPR measured on this benchmark's own catalog.

Thresholds (from the estimated per-pair rate ``r(t)``):

* Hamming (lower is closer): the largest integer ``t`` with ``r(t') <= p`` for
  every ``t' <= t``;
* Cosine (higher is closer): the smallest 4-decimal ``s`` with ``r(s') <= p`` for
  every 4-decimal ``s' >= s``.

A positive is *found* at a threshold when its best catalog row belongs to its own
group and its score passes. All figures are measured with the stored (rounded)
thresholds. The combined policy flags a query when PDQ or CLIP (``--clip-model``)
passes its own threshold; its estimated FPR at N is bounded by the sum of the
two (union bound). PDQ at Meta's suggested distance 31 is printed for comparison.

Calibration. ``--write-calibration`` merges into the calibration file (other
detectors' and models' entries are kept) for ``image.pdq`` and each measured
``image.clip`` model::

    final    = {"block": threshold at 0.1 % FPR @ N, "review": threshold at 1 % FPR @ N}
    ideation = {"block": threshold at 0.1 % FPR @ N, "review": same as block}

The ideation stage flags confident copies only, so its review band collapses onto
block. ``measured`` records recall, the design catalog size, the estimation
method and fitted tail, the estimated per-query FPR at N, the empirical per-query
FPR on the benchmark catalog and the pair counts. ``version`` is ``<UTC
date>-image_copy-<8 hex of sha256 of all stored thresholds>``, so it changes
whenever any threshold changes.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageOps

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import augly.image as imaugs  # noqa: E402
import imagehash  # noqa: E402
from augly.utils import EMOJI_DIR, FONTS_DIR, SCREENSHOT_TEMPLATES_DIR  # noqa: E402

from scanner.config import Settings  # noqa: E402
from scanner.detectors.base import Detector, create  # noqa: E402
from scanner.errors import ConfigError, MediaError, ModelMissingError  # noqa: E402
from scanner.policy.calibration import merge_calibration  # noqa: E402
from scanner.media.image import decode_image, to_rgb  # noqa: E402
from scanner.types import Metric  # noqa: E402

DEFAULT_IMAGES = REPO_ROOT.parent / "shared" / "data" / "images"
DEFAULT_CLIP_MODEL = "clip-test-tiny"
REAL_CLIP_MODEL = "clip-vit-b-32-laion2b"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
SAME_WORK_CORRELATION = 0.94
FPR_LEVELS = (0.01, 0.001)
LEVEL_NAMES = ("review", "block")  # the stage level each FPR_LEVELS entry calibrates
DESIGN_REFS = 10_000  # default design catalog size: FPR targets hold at this many references
TAIL_SHARE = 0.10  # closest share of negative pairs the normal tail is fitted to
SENSITIVITY_TAIL_SHARE = 0.05  # the tail share of the sensitivity check
MIN_EMPIRICAL_PAIRS = 20  # below this many passing pairs the rate comes from the fitted tail
PDQ_REFERENCE_DISTANCE = 31  # Meta's suggested PDQ match distance, printed for comparison only
FONT = Path(FONTS_DIR) / "Montserrat-Bold.ttf"
EMOJIS = sorted(Path(EMOJI_DIR).rglob("*.png"))
SCREENSHOT_TEMPLATES = [Path(SCREENSHOT_TEMPLATES_DIR) / n for n in ("web.png", "mobile.png")]

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


# ---------------------------------------------------------------- transforms


def _crop_fraction(img: Image.Image, rng: np.random.Generator, lo: float, hi: float) -> Image.Image:
    """Crop away a random ``lo``..``hi`` share of the area, at a random position."""
    keep = 1.0 - rng.uniform(lo, hi)
    aspect = rng.uniform(0.9, 1.1)
    sx, sy = min(1.0, math.sqrt(keep) * aspect), min(1.0, math.sqrt(keep) / aspect)
    x1, y1 = rng.uniform(0, 1 - sx), rng.uniform(0, 1 - sy)
    return imaugs.crop(img, x1=x1, y1=y1, x2=min(1.0, x1 + sx), y2=min(1.0, y1 + sy))


def _scale(img: Image.Image, factor: float) -> Image.Image:
    return imaugs.resize(img, width=max(1, round(img.width * factor)), height=max(1, round(img.height * factor)))


def _jitter(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return imaugs.color_jitter(
        img, brightness_factor=rng.uniform(0.6, 1.4), contrast_factor=rng.uniform(0.6, 1.4),
        saturation_factor=rng.uniform(0.4, 1.6),
    )


def _text(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One or two lines of random printable Latin characters in a random colour."""
    lines = [[int(c) for c in rng.integers(1, 95, size=rng.integers(6, 15))] for _ in range(rng.integers(1, 3))]
    return imaugs.overlay_text(
        img, text=lines, font_file=str(FONT), font_size=rng.uniform(0.08, 0.15),
        color=tuple(int(c) for c in rng.integers(0, 256, 3)), x_pos=rng.uniform(0, 0.3), y_pos=rng.uniform(0.05, 0.7),
    )


def _emoji(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return imaugs.overlay_emoji(
        img, emoji_path=str(EMOJIS[rng.integers(len(EMOJIS))]), emoji_size=rng.uniform(0.15, 0.3),
        x_pos=rng.uniform(0, 0.7), y_pos=rng.uniform(0, 0.7),
    )


def _pad(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return imaugs.pad(
        img, w_factor=rng.uniform(0.1, 0.3), h_factor=rng.uniform(0.1, 0.3),
        color=tuple(int(c) for c in rng.integers(0, 256, 3)),
    )


def _screenshot(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    template = SCREENSHOT_TEMPLATES[rng.integers(len(SCREENSHOT_TEMPLATES))]
    return imaugs.overlay_onto_screenshot(img, template_filepath=str(template))


def _rotate(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """AugLy rotates and crops to the largest upright rectangle (no black corners)."""
    return imaugs.rotate(img, degrees=float(rng.choice([-1, 1]) * rng.uniform(5, 15)))


TRANSFORMS: dict[str, Transform] = {
    "original": lambda img, rng: img,
    "resize_0.3x": lambda img, rng: _scale(img, 0.3),
    "resize_2x": lambda img, rng: _scale(img, 2.0),
    "crop_10-25%": lambda img, rng: _crop_fraction(img, rng, 0.10, 0.25),
    "crop_25-50%": lambda img, rng: _crop_fraction(img, rng, 0.25, 0.50),
    "jpeg_q20-70": lambda img, rng: imaugs.encoding_quality(img, quality=int(rng.integers(20, 71))),
    "color_jitter": _jitter,
    "grayscale": lambda img, rng: imaugs.grayscale(img),
    "blur_r2-5": lambda img, rng: imaugs.blur(img, radius=float(rng.uniform(2, 5))),
    "hflip": lambda img, rng: imaugs.hflip(img),
    "rotate_5-15deg": _rotate,
    "overlay_text": _text,
    "overlay_emoji": _emoji,
    "pad_10-30%": _pad,
    "screenshot": _screenshot,
    "combo_crop+text+jpeg40": lambda img, rng: imaugs.encoding_quality(
        _text(_crop_fraction(img, rng, 0.10, 0.20), rng), quality=40),
    "combo_flip+jitter+0.5x": lambda img, rng: _scale(_jitter(imaugs.hflip(img), rng), 0.5),
}
QUICK_TRANSFORMS = ("original", "resize_0.3x", "crop_25-50%", "jpeg_q20-70", "hflip", "overlay_text", "screenshot")


def apply_transform(name: str, img: Image.Image, source: str, seed: int) -> Image.Image:
    """``TRANSFORMS[name]`` with parameters drawn from a generator keyed by (seed, source, name)."""
    rng = np.random.default_rng([seed, zlib.crc32(f"{source}/{name}".encode())])
    return to_rgb(TRANSFORMS[name](img, rng))


# ---------------------------------------------------------------- data and split


@dataclass(frozen=True)
class Source:
    """One untransformed image: a work (with its near-duplicate group) or a face."""

    name: str
    image: Image.Image
    group: int


def load_images(folder: Path, settings: Settings) -> list[tuple[str, Image.Image]]:
    """Decode every image file in ``folder`` (sorted by name) the way the scanner does."""
    out = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            out.append((path.stem, decode_image(path.read_bytes(), settings.max_pixels)))
        except MediaError as exc:
            sys.exit(f"cannot decode {path}: {exc}")
    return out


def _thumbnail_vectors(img: Image.Image) -> list[np.ndarray]:
    grey = img.convert("L")
    thumbs = (grey.resize((16, 16), Image.Resampling.BOX), ImageOps.fit(grey, (16, 16), Image.Resampling.BOX))
    out = []
    for t in thumbs:
        v = np.asarray(t, dtype=np.float64).ravel()
        v -= v.mean()
        out.append(v / (np.linalg.norm(v) or 1.0))
    return out


def near_duplicate_groups(images: Sequence[Image.Image]) -> list[int]:
    """Group id per image; images whose thumbnails correlate >= ``SAME_WORK_CORRELATION`` share one."""
    vecs = [_thumbnail_vectors(img) for img in images]
    parent = list(range(len(images)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            if max(float(a @ b) for a, b in zip(vecs[i], vecs[j])) >= SAME_WORK_CORRELATION:
                parent[root(j)] = root(i)
    return [root(i) for i in range(len(images))]


def split_works(works: Sequence[Source], seed: int) -> tuple[list[Source], list[Source]]:
    """(catalog, held out): whole groups, shuffled by ``seed``, until the catalog holds half the works."""
    groups: dict[int, list[Source]] = {}
    for w in works:
        groups.setdefault(w.group, []).append(w)
    order = list(groups.values())
    np.random.default_rng(seed).shuffle(order)
    refs: list[Source] = []
    held: list[Source] = []
    for members in order:
        (refs if len(refs) + len(members) <= len(works) // 2 else held).extend(members)
    return refs, held


# ---------------------------------------------------------------- methods


@dataclass
class Method:
    """Something that turns images into rows and compares rows with one metric."""

    label: str
    description: str
    metric: Metric
    embed_references: Callable[[Sequence[Image.Image]], list[np.ndarray]]
    embed_queries: Callable[[Sequence[Image.Image]], list[np.ndarray]]
    calibration_key: tuple[str, str] | None = None  # (detector, model id); None for the baseline


def _phash_rows(images: Sequence[Image.Image]) -> list[np.ndarray]:
    return [np.packbits(imagehash.phash(img).hash.ravel())[None, :] for img in images]


def phash_baseline() -> Method:
    """imagehash pHash, 64 bits, computed on the image as-is (no flip/rotation variants)."""
    return Method("pHash", "baseline imagehash.phash, 64-bit, Hamming", Metric.HAMMING, _phash_rows, _phash_rows)


def detector_method(label: str, det: Detector) -> Method:
    """Wrap a scanner detector; empty embeddings become zero-row arrays."""

    def rows(embed: Callable[[Sequence[Image.Image]], list]) -> Callable[[Sequence[Image.Image]], list[np.ndarray]]:
        return lambda images: [e.vectors for e in embed(images)]

    return Method(label, det.describe(), det.metric, rows(det.embed_references), rows(det.embed_queries),
                  (det.name, det.model_id))


def load_methods(clip_models: Sequence[str]) -> tuple[list[Method], list[str]]:
    """Baseline, PDQ and every CLIP model that loads; plus a line per model that could not be measured."""
    methods = [phash_baseline(), detector_method("PDQ", create("image.pdq", Settings()))]
    skipped = []
    for model in clip_models:
        try:
            det = create("image.clip", Settings(clip_model=model))
        except ModelMissingError:
            skipped.append(f"image.clip [{model}]: not measured: weights not installed")
            continue
        label = "CLIP" if model == clip_models[0] else f"CLIP[{model}]"
        methods.append(detector_method(label, det))
    return methods, skipped


class Catalog:
    """Reference rows of one method, searched by brute force."""

    def __init__(self, metric: Metric, per_reference: Sequence[np.ndarray]):
        self.metric = metric
        self.size = len(per_reference)
        kept = [(i, r) for i, r in enumerate(per_reference) if len(r)]
        self.not_comparable = [i for i, r in enumerate(per_reference) if not len(r)]
        self.rows = np.concatenate([r for _, r in kept]) if kept else np.zeros((0, 1))
        self.owner = np.concatenate([np.full(len(r), i) for i, r in kept]) if kept else np.zeros(0, int)
        self.worst = math.inf if metric is Metric.HAMMING else -math.inf

    def per_reference(self, query_rows: np.ndarray) -> np.ndarray:
        """Best score of any query row against each reference (worst possible where not comparable)."""
        out = np.full(self.size, self.worst)
        if len(query_rows) == 0 or len(self.rows) == 0:
            return out
        if self.metric is Metric.HAMMING:
            row_best = np.bitwise_count(query_rows[:, None, :] ^ self.rows[None, :, :]).sum(-1).min(0)
            np.minimum.at(out, self.owner, row_best)
        else:
            row_best = (query_rows.astype(np.float64) @ self.rows.astype(np.float64).T).max(0)
            np.maximum.at(out, self.owner, row_best)
        return out

    def best(self, per_reference: np.ndarray) -> tuple[float, int]:
        """(best score, reference index) from ``per_reference`` output; (worst, -1) when nothing compares."""
        i = int(np.argmin(per_reference) if self.metric is Metric.HAMMING else np.argmax(per_reference))
        return (float(per_reference[i]), i) if np.isfinite(per_reference[i]) else (self.worst, -1)


# ---------------------------------------------------------------- running the queries


@dataclass
class Queries:
    """Every query's labels, and per method its best score, best reference and embedding time."""

    source: list[str] = field(default_factory=list)
    transform: list[str] = field(default_factory=list)
    group: list[int] = field(default_factory=list)
    positive: list[bool] = field(default_factory=list)
    ref_scores: dict[str, list[np.ndarray]] = field(default_factory=dict)  # per query: score per reference
    score: dict[str, list[float]] = field(default_factory=dict)
    best_ref: dict[str, list[int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    transform_seconds: float = 0.0


def run_queries(sources: Sequence[Source], positive: bool, transforms: Sequence[str], seed: int,
                methods: Sequence[Method], catalogs: dict[str, Catalog], out: Queries) -> None:
    """Transform each source, embed the variants with every method and keep the best catalog match."""
    for src in sources:
        start = time.perf_counter()
        variants = [apply_transform(t, src.image, src.name, seed) for t in transforms]
        out.transform_seconds += time.perf_counter() - start
        for m in methods:
            start = time.perf_counter()
            rows = m.embed_queries(variants)
            out.seconds[m.label] = out.seconds.get(m.label, 0.0) + time.perf_counter() - start
            for r in rows:
                per_ref = catalogs[m.label].per_reference(r)
                score, ref = catalogs[m.label].best(per_ref)
                out.ref_scores.setdefault(m.label, []).append(per_ref)
                out.score.setdefault(m.label, []).append(score)
                out.best_ref.setdefault(m.label, []).append(ref)
        out.source.extend([src.name] * len(transforms))
        out.transform.extend(transforms)
        out.group.extend([src.group] * len(transforms))
        out.positive.extend([positive] * len(transforms))


# ---------------------------------------------------------------- per-pair rate and thresholds

_NORMAL = NormalDist()


def _normal_cdf(z: float) -> float:
    """Standard normal CDF, accurate deep in the lower tail (``NormalDist.cdf`` underflows near -8.3)."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def pair_rate_target(fpr: float, refs: int) -> float:
    """Per-pair false-match rate giving per-query FPR ``fpr`` against ``refs`` independent references."""
    return -math.expm1(math.log1p(-fpr) / refs)


def query_fpr(pair_rate: float, refs: int) -> float:
    """Per-query FPR against ``refs`` independent references that each match with probability ``pair_rate``."""
    return 1.0 if pair_rate >= 1 else -math.expm1(refs * math.log1p(-pair_rate))


@dataclass(frozen=True)
class TailFit:
    """A model of the closest ``share`` of negative pair scores on the fit scale (lower is closer).

    ``normal``: Phi^-1(rate) = slope x + intercept; ``exponential``: log(rate) = slope x + intercept."""

    family: str
    share: float
    slope: float
    intercept: float
    points: int  # distinct score values the regression used
    pairs: int  # pairs among them

    def rate(self, x: np.ndarray) -> np.ndarray:
        """Fitted share of pairs at fit-scale value ``x`` or closer."""
        lin = self.slope * np.asarray(x, dtype=np.float64) + self.intercept
        if self.family == "normal":
            return np.vectorize(_normal_cdf, otypes=[float])(lin)
        return np.minimum(1.0, np.exp(lin))

    def describe(self, scale: str) -> str:
        """The fitted model in words."""
        if self.family == "normal":
            return f"normal on {scale}, mean {-self.intercept / self.slope:.4g}, sd {1 / self.slope:.4g}"
        return f"exponential on {scale}, scale {1 / self.slope:.4g}"


def fit_tail(x: np.ndarray, share: float, family: str) -> TailFit | None:
    """Weighted least squares of Phi^-1(F) (normal) or log F (exponential) on the score, over every distinct
    score among the closest ``share`` of pairs; weights are delta-method inverse variances of the transformed
    empirical share F. None when fewer than 3 distinct values are available or the fit is not increasing."""
    n = len(x)
    vals, counts = np.unique(x, return_counts=True)
    cdf = np.cumsum(counts) / n
    keep = cdf <= share
    if keep.sum() < 3:
        return None
    v, f = vals[keep], cdf[keep]
    if family == "normal":
        y = np.array([_NORMAL.inv_cdf(float(c)) for c in f])
        w = n * np.array([_NORMAL.pdf(float(z)) for z in y]) ** 2 / (f * (1 - f))
    else:
        y = np.log(f)
        w = n * f / (1 - f)
    sw = np.sqrt(w)
    slope, intercept = np.linalg.lstsq(np.column_stack([v, np.ones_like(v)]) * sw[:, None], y * sw, rcond=None)[0]
    if not slope > 0:
        return None
    return TailFit(family, share, float(slope), float(intercept), int(keep.sum()), int(counts[keep].sum()))


class PairModel:
    """Estimated per-pair false-match rate of one method at any threshold (see the module docstring).

    Built from the scores of every (negative query, reference) pair; pairs with a not-comparable side
    (infinite score) are counted in ``total`` but not in the rate."""

    def __init__(self, metric: Metric, pair_scores: np.ndarray, share: float = TAIL_SHARE, family: str = "normal"):
        flat = np.asarray(pair_scores, dtype=np.float64).ravel()
        finite = flat[np.isfinite(flat)]
        self.metric = metric
        self.total = int(flat.size)
        self.n = int(finite.size)
        self.sorted = np.sort(finite)
        self.fit = fit_tail(self.fit_scale(np.clip(finite, -1 + 1e-9, 1 - 1e-9)) if metric is Metric.COSINE
                            else finite, share, family) if self.n else None

    @property
    def scale(self) -> str:
        """The scale the tail is fitted on."""
        return "Hamming distance" if self.metric is Metric.HAMMING else "-atanh(cosine)"

    def fit_scale(self, scores: np.ndarray) -> np.ndarray:
        """Scores on the fit scale, lower is closer: Hamming as is, cosine s -> -atanh(s) (Fisher)."""
        s = np.asarray(scores, dtype=np.float64)
        if self.metric is Metric.HAMMING:
            return s
        with np.errstate(divide="ignore"):
            return -np.arctanh(np.clip(s, -1.0, 1.0))

    def passing(self, thresholds: np.ndarray) -> np.ndarray:
        """Number of comparable negative pairs that pass each threshold."""
        thr = np.asarray(thresholds, dtype=np.float64)
        if self.metric is Metric.HAMMING:
            return np.searchsorted(self.sorted, thr, side="right")
        return self.n - np.searchsorted(self.sorted, thr, side="left")

    def fitted(self, thresholds: np.ndarray) -> np.ndarray:
        """Tail-model rate at each threshold (NaN without a fit)."""
        if self.fit is None:
            return np.full(np.shape(thresholds), np.nan)
        return self.fit.rate(self.fit_scale(thresholds))

    def rate(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(estimated per-pair rate, True where that is the empirical rate) at each threshold: empirical where
        at least ``MIN_EMPIRICAL_PAIRS`` pairs pass, else the fitted tail but never below the empirical rate."""
        k = self.passing(thresholds)
        emp = k / max(self.n, 1)
        empirical = (k >= MIN_EMPIRICAL_PAIRS) | (self.fit is None)
        return np.where(empirical, emp, np.fmax(self.fitted(thresholds), emp)), empirical

    def threshold(self, target: float) -> float:
        """Loosest stored threshold whose estimated rate, and that of every stricter one, is at most ``target``.

        Hamming: an integer, -1 when even distance 0 is over target. Cosine: 4 decimals, 1.0 at the least."""
        if self.metric is Metric.HAMMING:
            grid = np.arange(0, max(257, int(self.sorted[-1]) + 2 if self.n else 0))
            over = np.flatnonzero(self.rate(grid)[0] > target)
            return int(grid[over[0]]) - 1 if over.size else int(grid[-1])
        grid = np.arange(10_000, -10_001, -1) / 1e4
        over = np.flatnonzero(self.rate(grid)[0] > target)
        return round(float(grid[over[0] - 1]), 4) if over.size and over[0] > 0 else (1.0 if over.size else -1.0)

    def describe(self) -> str:
        """The estimation method in words (for the calibration file)."""
        fit = (f"{self.fit.describe(self.scale)}, fitted by weighted probit regression to the closest "
               f"{pct(self.fit.share)} of pairs ({self.fit.pairs} pairs, {self.fit.points} distinct scores)"
               if self.fit else "no tail fit (too few distinct scores): empirical only")
        return (f"per-pair false-match rate over {self.n} comparable negative (query, reference) pairs: empirical "
                f"where >= {MIN_EMPIRICAL_PAIRS} pairs pass, else max(fitted tail, empirical); tail: {fit}. "
                f"Per-query FPR at N references = 1 - (1 - rate)^N, assuming independent references. "
                f"Statistical extrapolation below the observable rate 1/{self.n}.")


def passes(metric: Metric, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of scores at least as close as ``threshold`` (the scanner's rule)."""
    return scores <= threshold if metric is Metric.HAMMING else scores >= threshold


@dataclass
class Operating:
    """One method at one threshold (an FPR target at the design catalog size, or a fixed comparison value)."""

    label: str  # the FPR target, or what fixed the threshold
    threshold: float
    fpr: float  # empirical per-query FPR against the benchmark's own catalog
    recall: float
    pairs_passing: int  # comparable negative pairs that pass
    pair_rate: float  # estimated per-pair false-match rate
    empirical: bool  # pair_rate is the empirical rate (else from the fitted tail)
    fpr_at_design: float  # estimated per-query FPR against the design catalog size
    found: np.ndarray  # per positive query
    flagged: np.ndarray  # per negative query


def operating_point(m: Method, q: Queries, ref_groups: np.ndarray, model: PairModel, target: float,
                    design_refs: int) -> Operating:
    """Threshold for per-query FPR ``target`` at ``design_refs`` references, measured with the stored value."""
    thr = model.threshold(pair_rate_target(target, design_refs))
    return measure(m, q, ref_groups, model, design_refs, thr,
                   f"{pct(target)} ({LEVEL_NAMES[FPR_LEVELS.index(target)]})")


def measure(m: Method, q: Queries, ref_groups: np.ndarray, model: PairModel, design_refs: int, thr: float,
            label: str) -> Operating:
    """Empirical FPR and recall of method ``m`` at threshold ``thr``, and its estimated FPR at the design size."""
    scores = np.asarray(q.score[m.label], dtype=np.float64)
    best = np.asarray(q.best_ref[m.label])
    pos = np.asarray(q.positive)
    ok = passes(m.metric, scores, thr)
    right = (best >= 0) & (ref_groups[np.maximum(best, 0)] == np.asarray(q.group))
    found = (ok & right)[pos]
    flagged = ok[~pos]
    rate, empirical = model.rate(np.asarray([thr]))
    return Operating(label, thr, float(flagged.mean()), float(found.mean()), int(model.passing(np.asarray([thr]))[0]),
                     float(rate[0]), bool(empirical[0]), query_fpr(float(rate[0]), design_refs), found, flagged)


def goodness_points(model: PairModel) -> list[float]:
    """Thresholds inside the fitted tail where at least ``MIN_EMPIRICAL_PAIRS`` pairs pass (at most 8)."""
    if model.fit is None:
        return []
    if model.metric is Metric.HAMMING:
        vals = np.unique(model.sorted)
        k = model.passing(vals)
        sel = vals[(k >= MIN_EMPIRICAL_PAIRS) & (k <= model.fit.share * model.n)]
        return [int(v) for v in sel[:8]]
    desc = model.sorted[::-1]
    ranks = [r for r in (20, 50, 100, 200, 500, 1000, 2000, 5000) if r <= model.fit.share * model.n]
    return sorted({math.floor(desc[r - 1] * 1e4) / 1e4 for r in ranks}, reverse=True)


# ---------------------------------------------------------------- calibration file


def _sig(x: float) -> float:
    """``x`` to 3 significant digits."""
    return float(f"{x:.3g}")


def calibration_entry(m: Method, ops: Sequence[Operating], model: PairModel, run: "Run") -> dict:
    """The calibration record for one detector/model (``ops`` ordered as ``FPR_LEVELS``: review, block)."""
    review, block = ops
    fit = model.fit
    return {
        "metric": m.metric.value,
        "final": {"block": block.threshold, "review": review.threshold},
        "ideation": {"block": block.threshold, "review": block.threshold},
        "measured": {
            "design_refs": run.design_refs,
            "target_fpr_at_design_refs": dict(zip(LEVEL_NAMES, FPR_LEVELS)),
            "est_fpr_at_design_refs": {"review": _sig(review.fpr_at_design), "block": _sig(block.fpr_at_design)},
            "est_pair_rate": {"review": _sig(review.pair_rate), "block": _sig(block.pair_rate)},
            "estimation": model.describe(),
            "tail_fit": None if fit is None else {
                "family": fit.family, "scale": model.scale, "share": fit.share, "pairs": fit.pairs,
                "mean": float(f"{-fit.intercept / fit.slope:.5g}"), "sd": float(f"{1 / fit.slope:.5g}")},
            "benchmark_refs": len(run.refs),
            "empirical_fpr_at_benchmark_refs": {"review": round(review.fpr, 4), "block": round(block.fpr, 4)},
            "recall_at_1pct_fpr": round(review.recall, 4), "recall_at_0_1pct_fpr": round(block.recall, 4),
            "negative_pairs": model.n, "negative_pairs_total": model.total,
            "negatives": run.n_neg, "positives": run.n_pos,
        },
    }


# ---------------------------------------------------------------- report


@dataclass
class Run:
    """Everything one benchmark run produced, for the report and the calibration file."""

    images: Path
    seed: int
    clip_model: str
    works: list[Source]
    faces: list[Source]
    refs: list[Source]
    held: list[Source]
    transforms: list[str]
    methods: list[Method]
    skipped: list[str]
    catalogs: dict[str, Catalog]
    queries: Queries
    ref_groups: np.ndarray
    design_refs: int
    models: dict[str, PairModel]  # per method: per-pair rate estimator
    ops: dict[str, list[Operating]]  # per method: one per FPR_LEVELS entry

    @property
    def n_pos(self) -> int:
        """Number of positive queries."""
        return sum(self.queries.positive)

    @property
    def n_neg(self) -> int:
        """Number of negative queries."""
        return len(self.queries.positive) - self.n_pos

    def combined(self) -> list[tuple[float, float, float]] | None:
        """(recall, empirical FPR, estimated FPR at the design size, union bound) per FPR level of flagging
        when PDQ or CLIP passes its own threshold."""
        if "CLIP" not in self.ops:
            return None
        return [(float((a.found | b.found).mean()), float((a.flagged | b.flagged).mean()),
                 min(1.0, a.fpr_at_design + b.fpr_at_design))
                for a, b in zip(self.ops["PDQ"], self.ops["CLIP"])]

    def negative_pair_scores(self, label: str) -> np.ndarray:
        """Score of every (negative query, reference) pair of method ``label``."""
        return np.asarray(self.queries.ref_scores[label])[~np.asarray(self.queries.positive)]

    def per_transform(self, found: np.ndarray, transform: str) -> float:
        """Share of ``found`` (one flag per positive query) among the positives made with ``transform``."""
        sel = np.asarray(self.queries.transform)[np.asarray(self.queries.positive)] == transform
        return float(found[sel].mean())

    def method(self, label: str) -> Method:
        """The measured method with ``label``."""
        return next(m for m in self.methods if m.label == label)

    def images_per_second(self, label: str) -> float:
        """``embed_queries`` throughput of method ``label``."""
        return len(self.queries.positive) / self.queries.seconds[label]


def pct(x: float) -> str:
    """A share as a percentage with one decimal."""
    return f"{100 * x:.1f}%"


def fmt_rate(x: float) -> str:
    """A small share as a percentage: two decimals down to 0.01 %, scientific below."""
    if x == 0:
        return "0%"
    return f"{100 * x:.2f}%" if 100 * x >= 0.01 else f"{100 * x:.1e}%"


def fmt_threshold(m: Method, thr: float) -> str:
    """A threshold with the direction in which scores pass it."""
    return f"<= {thr}" if m.metric is Metric.HAMMING else f">= {thr:.4f}"


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Plain-text table, first column left-aligned, the rest right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        print("  " + "  ".join(cells))


def hardest_negatives(run: Run, m: Method, k: int = 3) -> str:
    """The ``k`` negatives closest to the catalog, as 'source/transform->reference (score)'."""
    q = run.queries
    scores = np.asarray(q.score[m.label], dtype=np.float64)
    neg = np.flatnonzero(~np.asarray(q.positive))
    order = neg[np.argsort(scores[neg] if m.metric is Metric.HAMMING else -scores[neg], kind="stable")][:k]
    fmt = "{:.0f}" if m.metric is Metric.HAMMING else "{:.4f}"
    out = []
    for i in order:
        ref = q.best_ref[m.label][i]
        out.append(f"{q.source[i]}/{q.transform[i]}->{run.refs[ref].name if ref >= 0 else '-'} "
                   f"({fmt.format(scores[i])})")
    return ", ".join(out)


def print_setup(run: Run) -> None:
    """Data, split, transforms and methods."""
    groups = [sorted(w.name for w in run.works if w.group == g) for g in sorted({w.group for w in run.works})]
    dups = ", ".join("+".join(g) for g in groups if len(g) > 1) or "none"
    n_neg_images = len(run.held) + len(run.faces)
    print(f"image_copy benchmark: {len(run.works)} works in {run.images}, {len(run.faces)} faces, seed {run.seed}")
    print(f"  near-duplicate works kept on one side of the split: {dups}")
    print(f"  split: {len(run.refs)} registered references, {len(run.held)} held-out works")
    print(f"  transforms ({len(run.transforms)}, all AugLy): {', '.join(run.transforms)}")
    print(f"  queries: {run.n_pos} positives ({len(run.refs)} refs x {len(run.transforms)}), {run.n_neg} negatives "
          f"({n_neg_images} images x {len(run.transforms)}); {run.n_neg * len(run.refs)} negative "
          "(query, reference) pairs")
    print(f"  note: the negatives come from only {n_neg_images} distinct images and are correlated; rates are rough")
    print("\nMethods")
    for m in run.methods:
        missing = [run.refs[i].name for i in run.catalogs[m.label].not_comparable]
        model = run.models[m.label]
        print(f"  {m.label:<6} {m.description}: {len(run.refs) - len(missing)}/{len(run.refs)} references comparable"
              + (f" (not: {', '.join(missing)})" if missing else "")
              + f"; {model.n}/{model.total} negative pairs comparable")
    for line in run.skipped:
        print(f"  {line}")


def print_operating_points(run: Run) -> None:
    """Threshold, estimated and empirical FPR and recall per method and target, with PDQ at Meta's distance."""
    n = run.design_refs
    targets = ", ".join(f"{pct(f)} -> {name} (pair rate <= {pair_rate_target(f, n):.1e})"
                        for f, name in zip(FPR_LEVELS, LEVEL_NAMES))
    print(f"\nOperating points for a design catalog of N={n} references: per-query FPR {targets}")
    pdq = run.method("PDQ")
    rows = [(m, o) for m in run.methods for o in run.ops[m.label]]
    rows.append((pdq, measure(pdq, run.queries, run.ref_groups, run.models["PDQ"], n, PDQ_REFERENCE_DISTANCE,
                              "Meta's 31")))
    print_table(["method", "target", "threshold", "pairs passing", "est. pair rate", "from", f"est. FPR@{n}",
                 f"FPR@{len(run.refs)} (measured)", "recall"],
                [[m.label, o.label, fmt_threshold(m, o.threshold), f"{o.pairs_passing}/{run.models[m.label].n}",
                  f"{o.pair_rate:.1e}", "empirical" if o.empirical else "tail fit", fmt_rate(o.fpr_at_design),
                  pct(o.fpr), pct(o.recall)] for m, o in rows])
    print(f"  EXTRAPOLATION: est. FPR@{n} = 1 - (1 - est. pair rate)^{n}, assuming independent references. Where "
          f"fewer than {MIN_EMPIRICAL_PAIRS} negative pairs pass, the pair rate comes from a normal fitted to the "
          f"closest {pct(TAIL_SHARE)} of pairs (see the goodness check below), far below the rate these "
          f"~{run.models['PDQ'].n} pairs can observe; it is a model estimate, not a measurement.")
    print(f"  FPR@{len(run.refs)} (measured): per-query FPR of the {run.n_neg} negatives against this benchmark's "
          f"{len(run.refs)}-reference catalog.")
    print(f"  Meta's 31: PDQ at Meta's suggested match distance {PDQ_REFERENCE_DISTANCE}, for comparison.")
    for m in run.methods:
        for o, f in zip(run.ops[m.label], FPR_LEVELS):
            if o.pair_rate > pair_rate_target(f, n):
                print(f"  WARNING: {m.label} cannot reach {pct(f)} FPR@{n} at any threshold; "
                      f"{fmt_threshold(m, o.threshold)} is the strictest")
            elif o.threshold < 0 or (m.metric is Metric.COSINE and o.threshold >= 1.0):
                print(f"  WARNING: {m.label} at {pct(f)} FPR@{n} needs {fmt_threshold(m, o.threshold)}: "
                      + ("nothing passes" if o.threshold < 0 else "only identical embeddings pass"))
    combined = run.combined()
    if combined:
        print(f"\nCombined policy: flagged if PDQ or CLIP [{run.clip_model}] passes its own threshold")
        print_table(["target", f"est. FPR@{n} (<= sum)", f"FPR@{len(run.refs)} (measured)", "recall"],
                    [[f"{pct(t)} ({name})", fmt_rate(est), pct(fpr), pct(rec)]
                     for t, name, (rec, fpr, est) in zip(FPR_LEVELS, LEVEL_NAMES, combined)])


def print_tail_fit(run: Run) -> None:
    """The fitted tails, fitted vs empirical rates where both exist, and threshold sensitivity to the tail model."""
    print(f"\nTail fit: normal fitted to the closest {pct(TAIL_SHARE)} of comparable negative pairs "
          "(weighted probit regression)")
    for m in run.methods:
        model = run.models[m.label]
        fit = model.fit
        print(f"  {m.label:<6} " + (f"{fit.describe(model.scale)}; {fit.pairs} pairs, {fit.points} distinct scores"
                                    if fit else "no fit (too few distinct scores): empirical rates only"))
    alt = {m.label: PairModel(m.metric, run.negative_pair_scores(m.label), TAIL_SHARE, "exponential")
           for m in run.methods}
    print(f"Goodness check: fitted vs empirical pair rate where >= {MIN_EMPIRICAL_PAIRS} pairs pass inside the "
          "fitted tail (an exponential tail fitted the same way, for comparison)")
    rows = []
    for m in run.methods:
        model = run.models[m.label]
        for t in goodness_points(model):
            k = int(model.passing(np.asarray([t]))[0])
            emp = k / model.n
            normal, expo = float(model.fitted(np.asarray([t]))[0]), float(alt[m.label].fitted(np.asarray([t]))[0])
            rows.append([m.label, fmt_threshold(m, t), str(k), f"{emp:.2e}", f"{normal:.2e}", f"{normal / emp:.2f}",
                         f"{expo:.2e}" if alt[m.label].fit else "-",
                         f"{expo / emp:.2f}" if alt[m.label].fit else "-"])
    print_table(["method", "threshold", "pairs passing", "empirical", "normal fit", "ratio", "exponential fit",
                 "ratio"], rows)
    print(f"Sensitivity: review / block thresholds for N={run.design_refs} under other tail models")
    variants = [("normal, closest 10% (used)", run.models), ("normal, closest 5%", {
        m.label: PairModel(m.metric, run.negative_pair_scores(m.label), SENSITIVITY_TAIL_SHARE) for m in run.methods}),
        ("exponential, closest 10%", alt)]
    targets = [pair_rate_target(f, run.design_refs) for f in FPR_LEVELS]
    print_table(["method", *(v for v, _ in variants)],
                [[m.label, *(" / ".join(fmt_threshold(m, models[m.label].threshold(t)) for t in targets)
                             for _, models in variants)] for m in run.methods])


def print_per_transform(run: Run) -> None:
    """Recall per transform at the review (1 %) thresholds."""
    print(f"\nRecall per transform at the review thresholds ({pct(FPR_LEVELS[0])} FPR @ N={run.design_refs})")
    columns = {m.label: run.ops[m.label][0].found for m in run.methods}
    if run.combined():
        columns["PDQ|CLIP"] = run.ops["PDQ"][0].found | run.ops["CLIP"][0].found
    q = run.queries
    n = {t: sum(p and qt == t for qt, p in zip(q.transform, q.positive)) for t in run.transforms}
    print_table(["transform", "n", *columns],
                [[t, str(n[t]), *(pct(run.per_transform(f, t)) for f in columns.values())] for t in run.transforms])


def print_costs(run: Run) -> None:
    """Closest negatives, throughput and memory."""
    print("\nClosest negatives: source/transform->reference (score)")
    for m in run.methods:
        print(f"  {m.label:<6} {hardest_negatives(run, m)}")
    n = len(run.queries.positive)
    print(f"\nThroughput over {n} queries (embed_queries in batches of {len(run.transforms)}, "
          f"{os.cpu_count()} CPU cores)")
    print_table(["method", "images/s", "ms/image"],
                [[m.label, f"{run.images_per_second(m.label):.0f}", f"{1000 / run.images_per_second(m.label):.1f}"]
                 for m in run.methods])
    print(f"  AugLy transforms: {n / run.queries.transform_seconds:.0f} images/s; peak RSS {peak_rss_mib():.0f} MiB")


def peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_figures(run: Run) -> None:
    """A compact block for pasting into a closing note."""
    n = run.design_refs
    print("\n== Figures ==")
    print(f"Data: {len(run.works)} works ({len(run.refs)} refs / {len(run.held)} held out, seed {run.seed}) + "
          f"{len(run.faces)} faces; {len(run.transforms)} AugLy transforms; {run.n_pos} positives, "
          f"{run.n_neg} negatives, {run.n_neg * len(run.refs)} negative pairs")
    print(f"Operating points for N={n} references: review = {pct(FPR_LEVELS[0])}, block = {pct(FPR_LEVELS[1])} "
          f"per-query FPR (extrapolated from a normal tail fit to the closest {pct(TAIL_SHARE)} of negative pairs)")
    for m in run.methods:
        a, b = run.ops[m.label]
        print(f"{m.description}: recall {pct(a.recall)} at review {fmt_threshold(m, a.threshold)} "
              f"(est. FPR@{n} {fmt_rate(a.fpr_at_design)}, measured FPR@{len(run.refs)} {pct(a.fpr)}), "
              f"{pct(b.recall)} at block {fmt_threshold(m, b.threshold)} "
              f"(est. {fmt_rate(b.fpr_at_design)}, measured {pct(b.fpr)})")
    for line in run.skipped:
        print(line)
    combined = run.combined()
    if combined:
        (r1, f1, e1), (r2, f2, e2) = combined
        print(f"PDQ|CLIP [{run.clip_model}]: recall {pct(r1)} at review (est. FPR@{n} <= {fmt_rate(e1)}, measured "
              f"{pct(f1)}), {pct(r2)} at block (est. <= {fmt_rate(e2)}, measured {pct(f2)})")
    meta = measure(run.method("PDQ"), run.queries, run.ref_groups, run.models["PDQ"], n, PDQ_REFERENCE_DISTANCE, "")
    print(f"PDQ at Meta's {PDQ_REFERENCE_DISTANCE}: recall {pct(meta.recall)} (est. FPR@{n} "
          f"{fmt_rate(meta.fpr_at_design)}, measured {pct(meta.fpr)})")
    found = run.ops["PDQ"][0].found
    weakest = sorted(run.transforms, key=lambda t: run.per_transform(found, t))[:4]
    print("PDQ weakest transforms at review: "
          + ", ".join(f"{t} {pct(run.per_transform(found, t))}" for t in weakest))
    print(f"Throughput (images/s, {os.cpu_count()} CPU cores): "
          + ", ".join(f"{m.label} {run.images_per_second(m.label):.0f}" for m in run.methods)
          + f"; peak RSS {peak_rss_mib():.0f} MiB")


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; ``--quick`` and ``--write-calibration`` exclude each other."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of reference works")
    p.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL, help="image.clip model for the combined policy")
    p.add_argument("--write-calibration", type=Path, nargs="?", const=Settings().calibration, default=None,
                   metavar="PATH", help=f"merge thresholds into PATH (default {Settings().calibration})")
    p.add_argument("--design-refs", type=int, default=DESIGN_REFS, metavar="N",
                   help=f"catalog size the FPR targets hold at (default {DESIGN_REFS})")
    p.add_argument("--seed", type=int, default=0, help="split and transform-parameter seed")
    p.add_argument("--quick", action="store_true", help=f"smoke run with {len(QUICK_TRANSFORMS)} transforms")
    args = p.parse_args(argv)
    if args.quick and args.write_calibration:
        p.error("--quick is a smoke run; its thresholds are not good enough to write to a calibration file")
    if args.design_refs < 1:
        p.error("--design-refs must be at least 1")
    return args


def run_benchmark(args: argparse.Namespace) -> Run:
    """Load data and methods, run every query, and derive the operating points."""
    if not args.images.is_dir():
        sys.exit(f"images folder not found: {args.images} (pass --images DIR)")
    settings = Settings()
    works_raw = load_images(args.images, settings)
    if len(works_raw) < 4:
        sys.exit(f"need at least 4 images in {args.images}, found {len(works_raw)}")
    faces_dir = args.images.parent / "faces"
    faces_raw = load_images(faces_dir, settings) if faces_dir.is_dir() else []
    groups = near_duplicate_groups([img for _, img in works_raw])
    works = [Source(n, img, g) for (n, img), g in zip(works_raw, groups)]
    faces = [Source(f"faces/{n}", img, -1 - i) for i, (n, img) in enumerate(faces_raw)]
    refs, held = split_works(works, args.seed)
    transforms = list(QUICK_TRANSFORMS if args.quick else TRANSFORMS)

    clip_models = [args.clip_model] + ([REAL_CLIP_MODEL] if args.clip_model != REAL_CLIP_MODEL else [])
    try:
        methods, skipped = load_methods(clip_models)
    except ConfigError as exc:
        sys.exit(str(exc))
    catalogs = {m.label: Catalog(m.metric, m.embed_references([r.image for r in refs])) for m in methods}

    q = Queries()
    run_queries(refs, True, transforms, args.seed, methods, catalogs, q)
    run_queries(held + faces, False, transforms, args.seed, methods, catalogs, q)
    ref_groups = np.asarray([r.group for r in refs])
    pos = np.asarray(q.positive)
    models = {m.label: PairModel(m.metric, np.asarray(q.ref_scores[m.label])[~pos]) for m in methods}
    ops = {m.label: [operating_point(m, q, ref_groups, models[m.label], t, args.design_refs) for t in FPR_LEVELS]
           for m in methods}
    return Run(args.images, args.seed, args.clip_model, works, faces, refs, held, transforms, methods, skipped,
               catalogs, q, ref_groups, args.design_refs, models, ops)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark, print the report and optionally write the calibration file."""
    args = parse_args(argv)
    run = run_benchmark(args)
    print_setup(run)
    print_operating_points(run)
    print_tail_fit(run)
    print_per_transform(run)
    print_costs(run)
    print_figures(run)
    if args.write_calibration:
        entries = {m.calibration_key: calibration_entry(m, run.ops[m.label], run.models[m.label], run)
                   for m in run.methods if m.calibration_key}
        source = (f"benchmarks/image_copy.py on {run.images.name} ({len(run.refs)} refs, {run.n_pos} positives, "
                  f"{run.n_neg} negatives, {run.n_neg * len(run.refs)} negative pairs, seed {run.seed}), "
                  f"calibrated for N={run.design_refs} references")
        version = merge_calibration(args.write_calibration, entries, "image_copy", source)
        print(f"Calibration: {args.write_calibration} version {version} "
              f"({'; '.join(f'{d} [{model}]' for d, model in entries)})")


if __name__ == "__main__":
    main()
