"""``image.local``: partial copies found by local keypoints verified with a homography.

A registered work that fills only part of an asset (a poster on a wall, a logo on a
shirt, a tight crop), warped, mirrored, recoloured or partly hidden, still shares many
distinctive local patches with it. This detector

1. finds SIFT keypoints on a greyscale copy whose long side is at most ``work_side`` px
   (larger images are downscaled first, so the cost per image is bounded), keeps at most
   ``ref_keypoints`` (references) / ``query_keypoints`` (assets) of them, strongest first
   within each cell of a ``GRID`` x ``GRID`` grid so they cover the whole image (a reference
   also keeps up to ``coarse_keypoints`` found on each of its half- and quarter-size copies), and
   describes them with RootSIFT (L1-normalised SIFT, element-wise square root: Euclidean
   distance then behaves like the Hellinger kernel, which suits histograms);
2. for an asset, adds the descriptors its mirror image would give: SIFT is mirror
   equivariant, so they are the same keypoints' descriptors with a fixed permutation
   (``MIRROR_PERMUTATION``; checked against SIFT run on the mirror in the tests: median
   distance 0 against 0.27 unpermuted), at half the cost of running SIFT twice;
3. retrieves, for every asset row, its nearest reference keypoints in a ``LocalIndex``
   (FAISS: exact 8-bit codes while small, IVF-PQ when large), keeping a match when it
   passes Lowe's ratio test against the next keypoint of the same reference that lies
   elsewhere in it (or the k-th neighbour overall, when that one is not among the k);
4. verifies the references with the most matches (``MAX_CANDIDATES`` per orientation,
   so the work per asset does not grow with the catalog) by fitting a homography with
   MAGSAC (OpenCV ``USAC_MAGSAC``), direct and mirrored matches separately, and rejects
   implausible fits (folded, tiny or horizon-crossing quads, wrong handedness, inliers
   on a line, extreme scale or skew);
5. reports a hit only from verified matches: ``score`` = one-to-one inliers off the text
   (at least ``min_inliers``, spanning at least ``min_cover`` of the reference's keypoints
   off its text), with the matched region (see ``_support``) as polygons in both images.

Text. Unrelated works that carry the same title in the same typeface share many keypoints
on the lettering, and those verify a homography as well as a copied picture would. Text
boxes are found in references and assets (``scanner/detectors/ocr.py``: PP-OCRv4 detection,
sha256-pinned in ``models/ocr-ppocrv4-det.json``) and a keypoint within ``TEXT_MARGIN`` of its
size from a box is "on text"; a match is on text when either of its keypoints is. The
homography is fitted on the other matches and only they score, so lettering can neither
verify a copy nor pull the fit off the artwork; a copy that kept its title is then refitted
on every match when that explains at least as much of the artwork, and its evidence says
when the lettering dominates ("mostly text"). When only the lettering agrees, the hit is
returned with its score below ``min_inliers`` and the evidence "shares the title lettering
only". An asset whose text detection fails is still checked, and its hits say so. An asset's text is
looked for only when a candidate is verified, and only for a candidate whose fit on every
match explains ``min_inliers`` (most assets have none): see ``_QueryText`` and ``_may_verify``.

Alpha. For an image with transparent pixels (``scanner.media.image.alpha_mask``: the
decoder keeps the mask beside the RGB pixels) the opaque region is the work: keypoints come
from inside it, at least ``ALPHA_MARGIN`` keypoint sizes from its edge (so no descriptor
describes what is behind a cut-out, which a composite replaces), the mirror's rows come from
the same keypoints, and the reported polygons follow the opaque region's convex hull
(stored in the index as the reference's outline) instead of the image rectangle.

Choices, measured with ``benchmarks/partial_copy.py --suite works`` on scenes built from
``../shared/data/images`` (24 registered works, 312 copies, 388 negatives):

* RootSIFT over ORB (the binary option; AKAZE is not in the OpenCV 5 main package):
  at the same inlier floor and negatives, RootSIFT found 71.8 % of the copies, ORB
  (brute force, same ratio test and MAGSAC) 55.1 %, weakest on occlusion, JPEG q30,
  blur and scale; unrelated scenes reached 7 inliers with RootSIFT, 9 with ORB. ORB is
  ~4x cheaper to compute; recall and margin matter more here.
* ``contrast_threshold`` 0.01 instead of OpenCV's 0.04: wallpaper-like works with soft
  gradients get enough keypoints to be indexed (22 of 24 works instead of 13) and
  recall rose from 48.7 % to 71.8 % with no negative reaching the floor.
* ``ALPHA_MARGIN`` 0.5 instead of 1.0 (``--suite scenes`` cases, 16 characters and stamps):
  pasted stamps 88 % instead of 75 % found, characters 100 % either way, unregistered ones
  at most 7 inliers either way.
* Coarse reference keypoints (``COARSE_SCALES`` 0.5 and 0.25, up to ``COARSE_KEYPOINTS`` 256 each, on
  top of the ``ref_keypoints`` found at the work size): a sharp work's strongest keypoints are fine
  ones, which a blurred, heavily compressed or much smaller copy no longer shows. Same run of
  ``benchmarks/image_copy.py --local`` (2,900 copies, 1.65 M negative pairs), at fixed levels 19 / 25
  inliers: copies found 84.9 / 81.7 % -> 86.9 / 84.5 % (blur 30 -> 47 %, 0.3x 66 -> 78 %, screenshot
  78 -> 85 %), and fewer negative pairs verified (155 instead of 299 at >= 5 inliers); the levels
  fitted for 10,000 references rose to 22 / 30, where 85.8 / 82.9 % are found (20 / 27 since 2026-12-04: a
  tail fitted only where fits were recorded, at image.local's 70 % share of each level of the default scan;
  see ``benchmarks/image_copy.py``). Scenes suite, same
  code otherwise: 86.2 / 86.2 % against 85.5 / 84.1 % at its own levels, no negative above 6 inliers
  either way. A work is indexed only when its work-size keypoints reach ``MIN_REF_KEYPOINTS``.
* ``MIN_ASPECT`` of text boxes (``ocr.py``): the detector also fires on compact shapes of
  pictures (ring logos, ellipses), which would hide art keypoints; lines of lettering are
  elongated.
* Candidates whose fit on every match explains fewer than ``min_inliers`` are dropped before the
  asset's text is looked for (``skip_unverifiable``). ``--suite scenes`` cases, 8 per kind, 160
  queries at the shipped floor, same run: 71 instead of 156 text detections (20.6 instead of 46.2
  Mpx), search 132 instead of 172 ms per query, no query's hits different. Measured and not kept:
  looking for the text only around the candidates' matches (a crop at the whole frame's detection
  scale, grown by a share of its size and a margin of context): 9.3-15.5 Mpx, but the detector
  reads text differently without the frame around it, and 2-6 of the 160 queries' hits changed,
  one from "shares the title lettering only" to a verified match.

Coordinates. Everything a hit carries is in the pixels of the PIL images this
detector was given (the asset as decoded, the reference as indexed); ``asset_size``
and ``ref_size`` say what those were so a report can scale to another resolution.
Mirrored rows keep the asset's own positions, so a mirrored copy's homography includes
the reflection and its polygon is where the copy really is.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np
from PIL import Image

from scanner.config import Settings
from scanner.errors import ConfigError
from scanner.detectors.base import Detector, DetectorOptions, Embedding, Hit, floors_for, options_for, register
from scanner.index.base import VectorIndex, expect_family
from scanner.detectors.ocr import MODEL as TEXT_MODEL, TextDetectionError, TextFinder, text_mask
from scanner.index.local_index import MAX_OUTLINE, LocalIndex
from scanner.media.image import alpha_mask, to_rgb
from scanner.types import ImageSize, Keypoints, Metric, Modality, Polygon

DIM = 128
WORK_SIDE = 1024  # long side of the greyscale copy keypoints are found on
REF_KEYPOINTS = 512
# References also keep keypoints found on copies at these scales (at most COARSE_KEYPOINTS each): the
# strongest keypoints of a sharp work are fine-scale ones, which a blurred, heavily compressed or much
# smaller copy no longer shows (see "Choices" in the module docstring).
COARSE_SCALES = (0.5, 0.25)
COARSE_KEYPOINTS = 256
QUERY_KEYPOINTS = 1024  # per orientation
MIN_REF_KEYPOINTS = 40  # fewer: the reference is not indexed here (PDQ and SSCD still cover it)
CONTRAST_THRESHOLD = 0.01  # SIFT DoG contrast floor (OpenCV default 0.04; lower measured better, see the benchmark)
MIN_SIDE = 16  # smaller images have no usable keypoints
GRID = 8  # spatial spread: keypoints are picked round-robin over a GRID x GRID grid
RATIO = 0.85  # Lowe's ratio on RootSIFT distances
MAX_DISTANCE = 0.75  # absolute cap on a match's RootSIFT L2 distance
# Gating floors (calibration entry "floors"): search_k neighbours per keypoint; min_tentative matches a
# reference needs before a homography is tried; min_inliers off the text, below which a fit is never
# reported as a copy; min_cover, the least share of the reference's keypoints off its text they span.
MAX_CANDIDATES = 12  # references verified per query orientation
TEXT_MARGIN = 0.5  # a keypoint is on text when a text box lies within this many keypoint sizes of it
ALPHA_MARGIN = 0.5  # with alpha: keypoints nearer a transparent pixel than this many sizes are dropped (see below)
OPAQUE = 128  # alpha at or above this is the work
QUERY_TEXT_SIDE = 640  # assets: text boxes found at this long side (0.22 s instead of 0.60 s CPU at 960; a
#                        title on a work pasted at 15 % of a 1024 x 768 frame is still found); references: 960
REPROJ_PX = 4.0  # MAGSAC inlier threshold in working pixels
RANSAC_ITERS = 2000
SUPPORT_STEPS = 32  # the matched region grows by 1/32 of the reference per step...
ABSENT_EXPECTED = 4.0  # ...until a band where this many inliers were expected shows none
NOTE_COVERED_BY = "image.pdq, image.sscd"  # default detectors that still compare a featureless work

# ---------------------------------------------------------------- keypoints


def _grey(img: Image.Image, side: int) -> tuple[np.ndarray, float]:
    """Greyscale uint8 array with long side <= ``side`` and the factor (image px per work px)."""
    w, h = img.size
    if max(w, h) > side:
        size = (max(1, round(w * side / max(w, h))), max(1, round(h * side / max(w, h))))
        try:  # resize before any conversion so a huge image is never copied at full size
            img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        except (ValueError, OSError):  # a mode Pillow cannot resample (16-bit, float...)
            img = to_rgb(img).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if img.mode not in ("RGB", "L"):
        img = to_rgb(img)  # palette, alpha, CMYK, 16-bit: same rules as the media layer
    grey = np.ascontiguousarray(np.asarray(img.convert("L"), dtype=np.uint8))
    return grey, w / grey.shape[1]


def _shrunk_rgb(img: Image.Image, side: int) -> tuple[Image.Image, float]:
    """RGB copy with long side <= ``side`` (resized before converting, as in ``_grey``) and image px per its px."""
    w, h = img.size
    if max(w, h) > side:
        size = (max(1, round(w * side / max(w, h))), max(1, round(h * side / max(w, h))))
        try:
            img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        except (ValueError, OSError):
            img = to_rgb(img).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if img.mode != "RGB":
        img = to_rgb(img)
    return img, w / img.width


def _find_text(finder: TextFinder, img: Image.Image, side: int, shape: tuple[int, int], scale: float
              ) -> tuple[np.ndarray | None, str]:
    """(work-sized text mask or None, note): text boxes found with the image's long side at ``side``
    (at most the finder's own); when detection fails, no mask and a note saying what that means."""
    try:
        small, factor = _shrunk_rgb(img, min(side, finder.max_side))
        boxes = finder.boxes(small) * np.float32(factor)  # in image pixels
    except TextDetectionError as exc:
        return None, (f"image.local: {exc}; checked without text boxes, so lettering shared with a "
                      "reference counts as matching content")
    return (text_mask(boxes, shape, scale) if len(boxes) else None), ""


class _QueryText:
    """Which of an asset's keypoints lie on text, found the first time a search asks (``Embedding.deferred``).

    Only verifying a candidate needs them, and most assets have none that could verify. Found once, under
    a lock; the image is let go afterwards. Pickling finds them first, so a stored embedding needs no model.
    """

    def __init__(self, finder: TextFinder, img: Image.Image, side: int, shape: tuple[int, int], scale: float,
                 at: np.ndarray, sizes: np.ndarray):
        self._finder, self._img, self._side, self._shape, self._scale = finder, img, side, shape, scale
        self._at, self._sizes = at, sizes
        self._lock = threading.Lock()
        self._found: tuple[np.ndarray, str] | None = None

    def get(self) -> tuple[np.ndarray, str]:
        """(flag per keypoint, note: "" or why there are no text boxes)."""
        with self._lock:
            if self._found is None:
                mask, note = _find_text(self._finder, self._img, self._side, self._shape, self._scale)
                self._found = (_text_flags(mask, self._at, self._sizes), note)
                self._finder = self._img = None
            return self._found

    def __getstate__(self) -> dict[str, Any]:
        self.get()
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _query_text(q: Embedding) -> tuple[np.ndarray | None, str]:
    """The query rows' text flags (direct rows, then the same for the mirrored ones) and any note."""
    if isinstance(q.deferred, _QueryText):
        flags, note = q.deferred.get()
        return np.concatenate([flags, flags]), note
    return q.extra.get("text"), ""


def _spread(kps: Sequence[cv2.KeyPoint], n: int, w: int, h: int) -> list[int]:
    """Indices of at most ``n`` keypoints: strongest first within each grid cell, cells taken in turn."""
    if len(kps) <= n:
        return list(range(len(kps)))
    pts = np.array([k.pt for k in kps], np.float64)
    resp = np.array([k.response for k in kps], np.float64)
    cx = np.minimum((pts[:, 0] * GRID / max(w, 1)).astype(int), GRID - 1)
    cy = np.minimum((pts[:, 1] * GRID / max(h, 1)).astype(int), GRID - 1)
    cell = cy * GRID + cx
    order = np.lexsort((-resp, cell))  # by cell, strongest first
    rank = np.empty(len(kps), np.int64)
    first = np.r_[0, np.flatnonzero(np.diff(cell[order])) + 1]
    counts = np.diff(np.r_[first, len(order)])
    rank[order] = np.arange(len(order)) - np.repeat(first, counts)
    pick = np.lexsort((-resp, rank))[:n]
    return sorted(pick.tolist())


def rootsift(desc: np.ndarray) -> np.ndarray:
    """SIFT rows to RootSIFT (L1 normalise, square root; the result has unit L2 norm)."""
    d = np.asarray(desc, dtype=np.float32)
    d = d / np.maximum(d.sum(axis=1, keepdims=True), 1e-7)
    return np.sqrt(d).astype(np.float32)


def _mirror_permutation() -> np.ndarray:
    """Column order that turns a SIFT descriptor into the descriptor of the same keypoint in the mirror image.

    OpenCV lays a descriptor out as 4 x 4 spatial cells (rows, columns of the keypoint's
    rotated frame) x 8 orientation bins. Mirroring the image reverses the keypoint's
    orientation (angle a -> 180 - a), which in the keypoint's own frame is a reflection
    across its orientation axis: cell rows swap (r -> 3 - r) and gradient bins reverse
    (o -> -o mod 8). Checked against descriptors computed on mirrored images in
    ``tests/test_local.py``.
    """
    cells = np.arange(DIM).reshape(4, 4, 8)
    return np.ascontiguousarray(cells[::-1][:, :, (-np.arange(8)) % 8].reshape(-1))


MIRROR_PERMUTATION = _mirror_permutation()


def mirror_descriptors(desc: np.ndarray) -> np.ndarray:
    """Descriptors of the same keypoints as seen in the mirrored image."""
    return np.ascontiguousarray(np.asarray(desc)[:, MIRROR_PERMUTATION])


class _Features:
    """Keypoints of one orientation in image pixels, RootSIFT rows, the work scale and which lie on text."""

    def __init__(self, xy: np.ndarray, desc: np.ndarray, scale: float, text: np.ndarray | None = None,
                 at: np.ndarray | None = None, sizes: np.ndarray | None = None):
        self.xy, self.desc, self.scale = xy, desc, scale
        self.text = np.zeros(len(xy), bool) if text is None else text
        self.fine = len(xy)  # keypoints found at the work size (the rest: ``_coarse``)
        # work-size pixel (column, row) and size of each keypoint: what ``_text_flags`` reads
        self.at = np.zeros((len(xy), 2), np.int64) if at is None else at
        self.sizes = np.zeros(len(xy), np.float32) if sizes is None else sizes


def _text_flags(text: np.ndarray | None, at: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Which keypoints (work pixel ``at``, size ``sizes``) lie within ``TEXT_MARGIN`` sizes of the
    work-sized ``text`` mask."""
    if text is None or not text.any() or not len(at):
        return np.zeros(len(at), bool)
    to_text = cv2.distanceTransform((~text).astype(np.uint8), cv2.DIST_L2, 3)  # 0 on text
    return to_text[at[:, 1], at[:, 0]] <= TEXT_MARGIN * sizes


def _features(sift: cv2.SIFT, grey: np.ndarray, scale: float, n: int, opaque: np.ndarray | None = None,
              text: np.ndarray | None = None) -> _Features:
    """Keypoints spread over the image (``_spread``), RootSIFT rows, and their text flags.

    ``opaque`` (work-sized bool): keypoints come only from inside it, at least ``ALPHA_MARGIN``
    keypoint sizes from its edge, so no descriptor sees what lies behind a cut-out (the white
    it was decoded on here, a painted scene in a copy). ``text`` (work-sized bool): keypoints
    within ``TEXT_MARGIN`` sizes of it are flagged as on text.
    """
    h, w = grey.shape
    kps, desc = sift.detectAndCompute(grey, None if opaque is None else opaque.astype(np.uint8) * 255)
    if desc is None or not kps:
        return _Features(np.zeros((0, 2), np.float32), np.zeros((0, DIM), np.float32), scale)
    pts = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)
    sizes = np.array([k.size for k in kps], np.float32)
    ix = np.clip(np.rint(pts[:, 0]).astype(int), 0, w - 1)
    iy = np.clip(np.rint(pts[:, 1]).astype(int), 0, h - 1)
    ok = np.arange(len(kps))
    if opaque is not None:
        inside = cv2.distanceTransform(opaque.astype(np.uint8), cv2.DIST_L2, 3)  # px to the nearest transparent one
        ok = ok[inside[iy, ix] >= ALPHA_MARGIN * sizes]
    chosen = ok[_spread([kps[i] for i in ok], n, w, h)] if len(ok) else ok
    at = np.stack([ix[chosen], iy[chosen]], axis=1).reshape(-1, 2)
    # OpenCV puts pixel centres on integers; we use continuous coordinates (pixel i spans [i, i + 1])
    # in the image's own pixels, so the image's outline is the rectangle [0, w] x [0, h].
    xy = (pts[chosen] + 0.5) * np.float32(scale)
    return _Features(xy.reshape(-1, 2), rootsift(desc[chosen]).reshape(-1, DIM), scale,
                     _text_flags(text, at, sizes[chosen]), at, sizes[chosen])


def _coarse(sift: cv2.SIFT, grey: np.ndarray, scale: float, n: int, opaque: np.ndarray | None,
            text: np.ndarray | None, fine: _Features) -> _Features:
    """``fine`` plus at most ``n`` keypoints found on each ``COARSE_SCALES`` copy of the work-sized ``grey``
    (with its opaque and text masks scaled alike), positions in the same image pixels. Its text flags
    are final (references find their text first), so it keeps no work-pixel ``at``."""
    parts = [fine]
    h, w = grey.shape
    for s in COARSE_SCALES:
        size = (round(w * s), round(h * s))
        if min(size) < MIN_SIDE:
            break
        g = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        op = None if opaque is None else cv2.resize(opaque.astype(np.uint8) * 255, size,
                                                    interpolation=cv2.INTER_AREA) >= 128
        tx = None if text is None else cv2.resize(text.astype(np.uint8), size, interpolation=cv2.INTER_AREA) > 0
        parts.append(_features(sift, g, scale * w / size[0], n, op, tx))
    out = _Features(np.concatenate([p.xy for p in parts]), np.concatenate([p.desc for p in parts]), fine.scale,
                    np.concatenate([p.text for p in parts]))
    out.fine = fine.fine
    return out


def _outline(opaque: np.ndarray | None, scale: float, size: tuple[int, int], limit: int) -> np.ndarray:
    """Convex outline of the work in image pixels: the opaque region's hull, or the image rectangle."""
    w, h = size
    if opaque is None:
        return _quad(w, h)
    found, _ = cv2.findContours(opaque.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not found:
        return _quad(w, h)
    hull = cv2.convexHull(np.concatenate(found).reshape(-1, 2).astype(np.float32))
    eps = 0.002 * cv2.arcLength(hull, True)
    poly = hull
    while len(poly) > limit:  # few enough vertices to store, tolerance doubling until they fit
        eps *= 2
        poly = cv2.approxPolyDP(hull, eps, True)
    # contour pixels are cells: the outline runs along their outer edges (continuous coordinates)
    pts = poly.reshape(-1, 2).astype(np.float64)
    centre = pts.mean(axis=0)
    pts = pts + 0.5 + 0.5 * np.sign(pts - centre)
    return np.clip(pts * scale, 0, [w, h])


# ---------------------------------------------------------------- geometry


def _quad(w: float, h: float) -> np.ndarray:
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)


def _project(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ H.T
    return p[:, :2] / p[:, 2:3]


def _area(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(x @ np.roll(y, -1) - y @ np.roll(x, -1))


def clip_convex(poly: np.ndarray, w: float, h: float) -> np.ndarray:
    """Convex polygon clipped to the rectangle [0, w] x [0, h] (Sutherland-Hodgman)."""
    out = [tuple(p) for p in np.asarray(poly, np.float64)]
    for axis, bound, keep_less in ((0, 0.0, False), (0, w, True), (1, 0.0, False), (1, h, True)):
        if not out:
            break
        src, out = out, []
        for i, cur in enumerate(src):
            prev = src[i - 1]
            cin = cur[axis] <= bound if keep_less else cur[axis] >= bound
            pin = prev[axis] <= bound if keep_less else prev[axis] >= bound
            if cin != pin:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cin:
                out.append(cur)
    return np.array(out, np.float64).reshape(-1, 2)


def polygon_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two convex polygons."""
    a = np.asarray(a, np.float32).reshape(-1, 2)
    b = np.asarray(b, np.float32).reshape(-1, 2)
    if len(a) < 3 or len(b) < 3:
        return 0.0
    a = cv2.convexHull(a).reshape(-1, 2)
    b = cv2.convexHull(b).reshape(-1, 2)
    inter, _ = cv2.intersectConvexConvex(a, b)
    union = abs(_area(a.astype(np.float64))) + abs(_area(b.astype(np.float64))) - inter
    return float(inter / union) if union > 0 else 0.0


def _support(ref_kps: np.ndarray, inlier: np.ndarray, H: np.ndarray, ref_size: tuple[int, int],
             asset_size: tuple[int, int]) -> np.ndarray:
    """The part of the reference the match vouches for, as a rectangle in reference pixels.

    Starts from the inliers' bounding box and grows it, one ``1/SUPPORT_STEPS`` of the
    reference at a time on each side, until the band ahead (two steps deep) is evidence
    that this part of the work is not in the asset: its reference keypoints that should
    be visible (they project inside the asset's frame) would, at the inlier rate seen
    inside the box, give at least ``ABSENT_EXPECTED`` inliers, and give none (a chance
    of about e^-4 = 2 % if the part were there). Cut-off, covered or never-pasted parts
    stop the growth; flat parts (no keypoints) and parts outside the asset's frame do
    not (the frame trims those afterwards).

    ``ref_kps``: all of the reference's keypoints; ``inlier``: a mask over them.
    """
    w, h = ref_size
    aw, ah = asset_size
    proj = _project(H, ref_kps.astype(np.float64))
    seen = (proj[:, 0] >= 0) & (proj[:, 0] <= aw) & (proj[:, 1] >= 0) & (proj[:, 1] <= ah)
    kx, ky = ref_kps[:, 0], ref_kps[:, 1]
    box = [float(kx[inlier].min()), float(ky[inlier].min()), float(kx[inlier].max()), float(ky[inlier].max())]
    sx, sy = w / SUPPORT_STEPS, h / SUPPORT_STEPS

    def inside(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        return seen & (kx >= x0) & (kx <= x1) & (ky >= y0) & (ky <= y1)

    def absent(band: np.ndarray, rate: float) -> bool:
        return int(band.sum()) * rate >= ABSENT_EXPECTED and not bool(inlier[band].any())

    grown = True
    while grown:
        grown = False
        x0, y0, x1, y1 = box
        core = inside(x0, y0, x1, y1)
        rate = float(inlier[core].sum()) / max(1, int(core.sum()))
        if x0 > 0 and not absent(inside(x0 - 2 * sx, y0, x0, y1), rate):
            box[0], grown = max(0.0, x0 - sx), True
        if x1 < w and not absent(inside(x1, y0, x1 + 2 * sx, y1), rate):
            box[2], grown = min(float(w), x1 + sx), True
        if y0 > 0 and not absent(inside(x0, y0 - 2 * sy, x1, y0), rate):
            box[1], grown = max(0.0, y0 - sy), True
        if y1 < h and not absent(inside(x0, y1, x1, y1 + 2 * sy), rate):
            box[3], grown = min(float(h), y1 + sy), True
    x0, y0, x1, y1 = box
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def _is_convex(quad: np.ndarray) -> bool:
    signs = []
    for i in range(len(quad)):
        a, b, c = quad[i], quad[(i + 1) % len(quad)], quad[(i + 2) % len(quad)]
        signs.append(np.sign((b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0])))
    return all(s > 0 for s in signs) or all(s < 0 for s in signs)


def _plausible(H: np.ndarray, ref_size: tuple[int, int], mirrored: bool) -> bool:
    """A homography a real copy could have: right handedness, no fold, sane scale and skew."""
    w, h = ref_size
    quad = _project(H, _quad(w, h))
    if not np.all(np.isfinite(quad)):
        return False
    corners = np.c_[_quad(w, h), np.ones(4)] @ H.T
    if np.any(corners[:, 2] <= 0) and not np.all(corners[:, 2] < 0):
        return False  # the reference crosses the horizon: not a view of a flat picture
    if not _is_convex(quad):
        return False
    area = _area(quad)  # signed: positive for a direct view of the reference, negative when mirrored
    if (area < 0) != mirrored:
        return False
    scale = math.sqrt(abs(area) / (w * h))
    if not 0.02 <= scale <= 50:
        return False
    sides = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)
    ref_sides = np.array([w, h, w, h], np.float64)
    ratios = sides / ref_sides
    return bool(ratios.max() / max(ratios.min(), 1e-9) <= 8.0)


# ---------------------------------------------------------------- detector


class _Pair:
    """A candidate reference's tentative matches with an asset, in the coordinates the homographies use."""

    def __init__(self, index: LocalIndex, ref_id: int, q: Embedding, qrows: np.ndarray, kps: np.ndarray,
                 mirrored: bool):
        self.ref_id, self.qrows, self.kps, self.mirrored = ref_id, qrows, kps, mirrored
        self.ref_all = index.keypoints(ref_id)
        self.ref_xy = self.ref_all[kps].astype(np.float64)
        self.asset_xy = q.extra["xy"][qrows].astype(np.float64)
        w, h = (int(v) for v in q.extra["size"][0])
        self.size = (w, h)
        self.tol = REPROJ_PX * float(q.extra["scale"][qrows[0]])
        # USAC rejects orientation-reversing samples, so a mirrored copy is fitted in the
        # mirror image's coordinates and the flip is composed back afterwards.
        self.flip = np.array([[-1.0, 0.0, w], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if mirrored else np.eye(3)
        self.fit_xy = _project(self.flip, self.asset_xy)  # the flip is its own inverse
        self.every: np.ndarray | None | bool = False  # the fit on every match; False: not fitted yet

    def explained(self, H: np.ndarray) -> np.ndarray:
        """Which matches ``H`` (reference to fitting coordinates) maps within the tolerance."""
        with np.errstate(all="ignore"):
            err = np.linalg.norm(_project(H, self.ref_xy) - self.fit_xy, axis=1)
        return np.isfinite(err) & (err <= self.tol)


@register("image.local")
class LocalDetector(Detector):
    """RootSIFT keypoints + FAISS retrieval + MAGSAC homography verification, text-aware, alpha-masked."""

    modality = Modality.IMAGE
    metric = Metric.COUNT  # the score is an inlier count
    score_unit = "matching keypoints (geometrically verified)"  # what the count counts, in reports
    FLOORS = ("search_k", "min_tentative", "min_inliers", "min_cover")

    @dataclass(frozen=True)
    class Options(DetectorOptions):
        model: str = TEXT_MODEL  # the text detector (the descriptor itself is not learned)
        work_side: int = WORK_SIDE
        ref_keypoints: int = REF_KEYPOINTS
        query_keypoints: int = QUERY_KEYPOINTS
        contrast_threshold: float = CONTRAST_THRESHOLD
        coarse_keypoints: int = COARSE_KEYPOINTS  # per coarse scale of a reference; 0: none

    def __init__(self, settings: Settings | None = None, *, work_side: int | None = None,
                 ref_keypoints: int | None = None, query_keypoints: int | None = None,
                 contrast_threshold: float | None = None, coarse_keypoints: int | None = None,
                 text: bool = True):
        # Keyword arguments (benchmarks, tests) win over the settings' options.
        settings = settings or Settings()
        opts = self.options = options_for(self, settings)
        work_side = opts.work_side if work_side is None else work_side
        ref_keypoints = opts.ref_keypoints if ref_keypoints is None else ref_keypoints
        query_keypoints = opts.query_keypoints if query_keypoints is None else query_keypoints
        contrast_threshold = opts.contrast_threshold if contrast_threshold is None else contrast_threshold
        coarse_keypoints = opts.coarse_keypoints if coarse_keypoints is None else coarse_keypoints
        if coarse_keypoints < 0:
            raise ConfigError(f"image.local: coarse_keypoints must be 0 or more, not {coarse_keypoints}")
        self.model_id = "rootsift-v1"
        self.weights_sha256 = "none"  # no learned descriptor; an ivfpq index carries its own codebook
        self.dim = DIM
        self.floors = floors_for(self, settings, self.model_id)
        self.search_k = int(self.floors["search_k"])
        self.min_tentative = int(self.floors["min_tentative"])
        self.min_inliers = int(self.floors["min_inliers"])
        self.min_cover = float(self.floors["min_cover"])
        self.work_side = work_side
        self.ref_keypoints = ref_keypoints
        self.query_keypoints = query_keypoints
        self.contrast_threshold = contrast_threshold
        self.coarse_keypoints = coarse_keypoints
        self._sift = cv2.SIFT_create(nfeatures=0, contrastThreshold=contrast_threshold)
        # text=False is for experiments and the benchmark's baseline only: lettering then verifies matches
        self._text: TextFinder | None = TextFinder(settings, model=opts.model) if text else None
        # candidates no homography could verify are dropped before the asset's text is looked for (False:
        # every candidate is verified with it, as before; benchmarks/check_latency.py measures both)
        self.skip_unverifiable = True

    @property
    def model_label(self) -> str:
        return self.model_id if self._text is None else f"{self.model_id} + {self._text.model_name}"

    @property
    def params(self) -> dict[str, Any]:
        return {
            "descriptor": "rootsift", "detector": "sift", "opencv": cv2.__version__.split(".")[0],
            "work_side": self.work_side, "ref_keypoints": self.ref_keypoints, "grid": GRID,
            "contrast_threshold": self.contrast_threshold,
            "coarse": (f"{self.coarse_keypoints} at x{' x'.join(f'{c:g}' for c in COARSE_SCALES)}"
                       if self.coarse_keypoints else "none"),
            "codebook": "per-index",  # learned inside an ivfpq index; its checksum is in index_type
            "text": "off" if self._text is None else f"{self._text.label} margin {TEXT_MARGIN}",
            "alpha": f"opaque >= {OPAQUE}, margin {ALPHA_MARGIN}",
        }

    # ----- signals ------------------------------------------------------------------
    def _keypoints(self, img: Image.Image, n: int, text_side: int, coarse: int = 0, text_later: bool = False
                   ) -> tuple[_Features | None, tuple[int, int], np.ndarray | None, str, "_QueryText | None"]:
        """(features, image size, opaque mask at work size or None, note about text detection, deferred
        text flags); with ``coarse``, up to that many more keypoints from each of the ``COARSE_SCALES``
        (``_coarse``). With ``text_later`` the text boxes are not looked for now: the last item finds
        them when asked (``_QueryText``) and the features' text flags are all False until then."""
        size = img.size
        if min(size) < MIN_SIDE:
            return None, size, None, "", None
        grey, scale = _grey(img, self.work_side)
        opaque = None
        alpha = alpha_mask(img)
        if alpha is not None:
            opaque = cv2.resize(alpha, (grey.shape[1], grey.shape[0]), interpolation=cv2.INTER_AREA) >= OPAQUE
        text, note = None, ""
        if self._text is not None and not text_later:
            text, note = _find_text(self._text, img, text_side, grey.shape, scale)
        f = _features(self._sift, grey, scale, n, opaque, text)
        if coarse:
            f = _coarse(self._sift, grey, scale, coarse, opaque, text, f)
        later = None
        if self._text is not None and text_later:
            later = _QueryText(self._text, img, text_side, grey.shape, scale, f.at, f.sizes)
        return f, size, opaque, note, later

    def embed_references(self, images: Sequence[Image.Image]) -> list[Embedding]:
        """Keypoints of each reference (from inside its opaque region when it has alpha), with their
        text flags and the reference's outline (``extra["outline"]``: vertices in the first rows, NaN after)."""
        out = []
        for img in images:
            f, size, opaque, note, _ = self._keypoints(img, self.ref_keypoints,
                                                       self._text.max_side if self._text else 0, self.coarse_keypoints)
            n = 0 if f is None else len(f.xy)
            if f is None or f.fine < MIN_REF_KEYPOINTS:  # coarse keypoints alone do not make a work indexable
                n = 0 if f is None else f.fine
                where = " inside its opaque region" if opaque is not None else ""
                out.append(Embedding(
                    np.zeros((0, DIM), np.float32),
                    f"image.local: only {n} keypoints{where} (< {MIN_REF_KEYPOINTS}); too little texture for "
                    f"partial-copy matching; left to the whole-image detectors ({NOTE_COVERED_BY})",
                ))
                continue
            outline = np.full((n, 2), np.nan)
            poly = _outline(opaque, f.scale, size, min(n, MAX_OUTLINE))
            outline[:len(poly)] = poly
            if f.text.all():
                note = " ".join(x for x in (note, "image.local: every keypoint lies on text; this reference "
                                            "cannot verify a match here") if x)
            out.append(Embedding(f.desc, note, extra={
                "xy": f.xy, "size": np.tile(np.array(size, np.int32), (n, 1)), "text": f.text, "outline": outline,
            }))
        return out

    def embed_queries(self, images: Sequence[Image.Image]) -> list[Embedding]:
        """Keypoints of each asset, twice: as found, then (rows ``n..2n``) as the mirror image sees them.

        The mirror's descriptors are the same keypoints' descriptors with ``MIRROR_PERMUTATION``
        applied (SIFT is mirror-equivariant: see ``mirror_descriptors``); their positions stay
        in the asset's own pixels and ``extra["mirrored"]`` marks them. Which keypoints lie on text is
        found only when a search first verifies a candidate that could verify (``deferred``: most assets
        match nothing, and text detection is ~45 ms of a 1280 x 720 query); when it fails the asset is still
        checked and the hits say so. Without a text finder ``extra["text"]`` flags no keypoint.
        """
        out = []
        for img in images:
            f, size, _, note, later = self._keypoints(img, self.query_keypoints, QUERY_TEXT_SIDE, text_later=True)
            n = 0 if f is None else len(f.xy)
            if n < self.min_tentative:
                out.append(Embedding(
                    np.zeros((0, DIM), np.float32),
                    f"image.local: {n} keypoints; a flat or tiny image has nothing to match locally",
                ))
                continue
            extra = {
                "xy": np.concatenate([f.xy, f.xy]),
                "mirrored": np.r_[np.zeros(n, bool), np.ones(n, bool)],
                "size": np.tile(np.array(size, np.int32), (2 * n, 1)),
                "scale": np.full(2 * n, f.scale, np.float32),
            }
            if later is None:
                extra["text"] = np.concatenate([f.text, f.text])
            out.append(Embedding(np.concatenate([f.desc, mirror_descriptors(f.desc)]), note, extra=extra,
                                 deferred=later))
        return out

    # ----- index ----------------------------------------------------------------------
    def new_index(self, expected_rows: int = 0, memory_bytes: int | None = None) -> LocalIndex:
        """An empty index; ``expected_rows`` is taken as the number of references (what the API passes),
        each of up to ``ref_keypoints`` rows, and sizes the lists when the index trains itself."""
        return LocalIndex(DIM, expected_rows=max(0, int(expected_rows)) * self.ref_keypoints)

    def load_index(self, data: bytes) -> LocalIndex:
        return LocalIndex.from_bytes(data, DIM)  # IndexCorruptError / IndexMismatchError name the fix

    # ----- search ---------------------------------------------------------------------
    def search(self, index: VectorIndex, queries: Sequence[Embedding]) -> list[list[Hit]]:
        """Verified hits per query, best first. A hit whose ``extra["text_only"]`` is set shares only
        lettering with the reference: its score (inliers off the text) is below ``min_inliers``, so no
        calibrated threshold passes it; its ``evidence`` says so."""
        expect_family(index, LocalIndex.family, self.name)
        out: list[list[Hit]] = []
        for q in queries:
            out.append([] if q.empty or len(index) == 0 else self._search_one(index, q))
        return out

    def _search_one(self, index: LocalIndex, q: Embedding) -> list[Hit]:
        nb = index.search(q.vectors, self.search_k, groups=q.extra["mirrored"],  # shortlists per orientation
                          positions=q.extra["xy"] / q.extra["size"])
        matches = _tentative(index, nb, q.extra["mirrored"])
        pairs = []
        for mirrored in (False, True):
            cands = matches.get(mirrored, {})
            ranked = sorted(cands.items(), key=lambda kv: -len(kv[1][0]))[:MAX_CANDIDATES]
            pairs += [_Pair(index, ref_id, q, np.array(qrows), np.array(kps), mirrored)
                      for ref_id, (qrows, kps) in ranked if len(qrows) >= self.min_tentative]
        if self.skip_unverifiable:  # the asset's text is looked for only when a candidate is left
            pairs = [p for p in pairs if self._may_verify(p)]
        hits: dict[int, Hit] = {}
        for p in pairs:
            hit = self._verify(index, p, q)
            if hit is not None and (p.ref_id not in hits or _better(hit, hits[p.ref_id])):
                hits[p.ref_id] = hit
        return sorted(hits.values(), key=lambda h: (-h.score, -h.extra.get("text_inliers", 0)))

    def _every(self, p: _Pair) -> np.ndarray | None:
        """The homography fitted on every tentative match of ``p``, text or not (fitted once)."""
        if p.every is False:
            p.every = self._fit(p.ref_xy, p.fit_xy, p.tol)
        return p.every

    def _may_verify(self, p: _Pair) -> bool:
        """Whether the fit on every match explains ``min_inliers``: when it does not, no subset of the
        matches (those off the text) has a homography that does either (up to what MAGSAC finds), so the
        asset's text need not be known to reject the candidate."""
        H = self._every(p)
        return H is not None and _one_to_one(p.qrows, p.kps, p.explained(H)) >= self.min_inliers

    def _fit(self, ref_xy: np.ndarray, fit_xy: np.ndarray, tol: float) -> np.ndarray | None:
        if len(ref_xy) < self.min_tentative:
            return None
        H, mask = cv2.findHomography(ref_xy, fit_xy, cv2.USAC_MAGSAC, tol, maxIters=RANSAC_ITERS, confidence=0.999)
        if H is None or mask is None or not np.all(np.isfinite(H)) or abs(H[2, 2]) < 1e-12:
            return None
        return H

    def _verify(self, index: LocalIndex, p: _Pair, q: Embedding) -> Hit | None:
        """Fit a homography on the matches off the text; count what it explains on and off the text.

        A match is "on text" when its reference keypoint or its asset keypoint lies on text. The
        homography is fitted on the other matches, so lettering can neither verify a copy nor pull
        the fit away from the artwork. Only when those do not verify is a fit on every match tried:
        if lettering alone agrees, the hit says "shares the title lettering only" with its score
        (inliers off the text) below ``min_inliers``.
        """
        ref_id, qrows, kps, mirrored = p.ref_id, p.qrows, p.kps, p.mirrored
        ref_all, ref_xy, asset_xy, fit_xy, flip, tol = p.ref_all, p.ref_xy, p.asset_xy, p.fit_xy, p.flip, p.tol
        q_text, text_note = _query_text(q)
        on_text = index.on_text(ref_id)[kps] | (np.zeros(len(qrows), bool) if q_text is None else q_text[qrows])
        w, h = p.size
        ref_size = index.size(ref_id)
        art = ~on_text

        def explained(H: np.ndarray) -> tuple[np.ndarray, int, int]:
            inl = p.explained(H)
            return inl, _one_to_one(qrows, kps, inl & art), _one_to_one(qrows, kps, inl & on_text)

        H = self._fit(ref_xy[art], fit_xy[art], tol)
        verdict = None
        if H is not None:
            inl, n_art, n_text = explained(H)
            if n_art >= self.min_inliers and _plausible(flip @ H, ref_size, mirrored):
                verdict = "art"
        if verdict == "art" and on_text.any():
            # a copy that keeps its title: one fit on every match is better conditioned (the lettering
            # lies where the art does not); kept only if it explains at least as much of the art
            H_all = self._every(p)
            if H_all is not None and _plausible(flip @ H_all, ref_size, mirrored):
                joint = explained(H_all)
                if joint[1] >= n_art:
                    H, (inl, n_art, n_text) = H_all, joint
        if verdict is None and int(on_text.sum()) >= self.min_tentative:
            H = self._every(p)
            if H is not None:
                inl, n_art, n_text = explained(H)
                if n_text >= self.min_inliers and _plausible(flip @ H, ref_size, mirrored):
                    verdict = "text"
        if verdict is None:
            return None
        H = flip @ H
        use = inl & art if verdict == "art" else inl
        rin = ref_xy[use]
        # inliers must span an area, not a line or a single blob
        hull_ref = cv2.convexHull(rin.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        if abs(_area(hull_ref)) < 0.001 * ref_size[0] * ref_size[1]:
            return None
        # the share of the reference's keypoints off its text that the inliers off the text span
        off_text = ~index.on_text(ref_id)
        cover = 0.0
        if verdict == "art" and off_text.any():
            cover = float(_inside_convex(hull_ref, ref_all[off_text].astype(np.float64)).mean())
        if verdict == "art" and cover < self.min_cover:
            if n_text < self.min_inliers:
                return None
            verdict = "text"  # a patch of art beside the shared lettering: still only the lettering
        inlier_kp = np.zeros(len(ref_all), bool)
        inlier_kp[kps[inl]] = True
        outline = index.outline(ref_id)
        box = _support(ref_all, inlier_kp, H, ref_size, (w, h))
        region = _clip_box(outline, box[0, 0], box[0, 1], box[2, 0], box[2, 1])
        asset_poly = clip_convex(_project(H, region), w, h) if len(region) >= 3 else region
        if len(asset_poly) < 3 or abs(_area(asset_poly)) < 1.0:
            return None
        ref_poly = _clip_to(clip_convex(_project(np.linalg.inv(H), asset_poly), *ref_size), outline)
        visible = abs(_area(ref_poly)) / max(1e-9, abs(_area(outline)))
        work_outline = clip_convex(_project(H, outline), w, h)
        hull = cv2.convexHull(asset_xy[use].astype(np.float32)).reshape(-1, 2)
        score = n_art if verdict == "art" else min(n_art, self.min_inliers - 1)
        def poly(points: np.ndarray, image: str = "asset", role: str = "region") -> Polygon:
            return Polygon(tuple(tuple(p) for p in _round(points)), image, role)

        return Hit(int(ref_id), float(score), evidence=(
            poly(asset_poly), poly(ref_poly, "ref"),
            Keypoints(int(score), text_inliers=int(n_text), coverage=round(cover, 4), tentative=int(len(qrows)),
                      ref_visible=round(float(min(1.0, visible)), 4), mirrored=bool(mirrored),
                      homography=tuple(tuple(float(f"{v:.6g}") for v in row) for row in (H / H[2, 2]).tolist()),
                      text_only=verdict == "text", mostly_text=verdict != "text" and n_text > n_art,
                      summary=_evidence(verdict, int(n_art), int(n_text), cover, text_note)),
            poly(hull, role="inlier_hull"), poly(work_outline, role="work_outline"),
            ImageSize(w, h), ImageSize(int(ref_size[0]), int(ref_size[1]), "ref"),
        ))


def _evidence(verdict: str, n_art: int, n_text: int, cover: float, text_note: str = "") -> str:
    """One line a reviewer reads: what the match rests on (and, after ``text_note``, why the asset's
    lettering could not be told apart)."""
    tail = f" ({text_note})" if text_note else ""
    if verdict == "text":
        return (f"shares the title lettering only: {n_text} verified keypoints on text, {n_art} on the artwork "
                "(lettering alone does not verify a copy)") + tail
    base = f"{n_art} keypoints on the artwork verified by one homography, spanning {cover:.0%} of its keypoints"
    if n_text > n_art:
        return f"mostly text: {n_text} of {n_art + n_text} verified keypoints lie on lettering; {base}" + tail
    return base + (f"; {n_text} more on its lettering" if n_text else "") + tail


def _better(a: Hit, b: Hit) -> bool:
    return (a.score, a.extra.get("text_inliers", 0)) > (b.score, b.extra.get("text_inliers", 0))


def _one_to_one(qrows: np.ndarray, kps: np.ndarray, sel: np.ndarray) -> int:
    """Matches counted so that a keypoint on either side counts once."""
    return min(len(np.unique(qrows[sel])), len(np.unique(kps[sel]))) if sel.any() else 0


def _inside_convex(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Which ``pts`` lie inside (or on) the convex polygon ``poly``."""
    if len(poly) < 3 or len(pts) == 0:
        return np.zeros(len(pts), bool)
    a = poly
    b = np.roll(poly, -1, axis=0)
    cross = ((b[:, 0] - a[:, 0])[None, :] * (pts[:, 1:2] - a[:, 1][None, :])
             - (b[:, 1] - a[:, 1])[None, :] * (pts[:, 0:1] - a[:, 0][None, :]))
    return np.all(cross >= -1e-9, axis=1) | np.all(cross <= 1e-9, axis=1)


def _clip_box(poly: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Convex polygon clipped to the box [x0, x1] x [y0, y1]."""
    off = np.array([x0, y0], np.float64)
    return clip_convex(np.asarray(poly, np.float64) - off, x1 - x0, y1 - y0) + off


def _clip_to(poly: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """Convex ``poly`` intersected with the convex ``outline`` (a rectangle outline changes nothing)."""
    if len(poly) < 3 or len(outline) < 3:
        return poly
    inter, found = cv2.intersectConvexConvex(np.asarray(poly, np.float32), np.asarray(outline, np.float32))
    if found is None or inter <= 0:
        return np.zeros((0, 2), np.float64)
    return found.reshape(-1, 2).astype(np.float64)


def _round(poly: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 1), round(float(y), 1)] for x, y in np.asarray(poly).reshape(-1, 2)]


def _tentative(index: LocalIndex, nb, mirrored_rows: np.ndarray) -> dict[bool, dict[int, tuple[list, list]]]:
    """Ratio-tested matches grouped as {mirrored: {ref_id: (query rows, ref keypoints)}}.

    For each (query row, reference) pair the nearest keypoint of that reference is kept
    when it is closer than ``RATIO`` times both the next keypoint of the same reference
    that lies elsewhere in the image (> 8 px away) and, when that is absent from the k
    results, the k-th neighbour overall. References appear in the order of their first
    match, query rows in order (tests check it against a plain loop over the neighbours).
    """
    out: dict[bool, dict[int, tuple[list, list]]] = {False: {}, True: {}}
    if len(nb.query_row) == 0:
        return out
    order = np.lexsort((nb.rank, nb.ref_id, nb.query_row))
    qr, rid, kp, dist = nb.query_row[order], nb.ref_id[order], nb.keypoint[order], nb.distance[order]
    head = np.r_[True, (qr[1:] != qr[:-1]) | (rid[1:] != rid[:-1])]
    starts = np.flatnonzero(head)
    group = np.cumsum(head) - 1
    d1 = dist[starts].astype(np.float64)
    second = nb.kth_distance[qr[starts]].astype(np.float64)
    live = d1 <= MAX_DISTANCE
    # entries of live pairs with more than one keypoint of their reference among the neighbours
    sizes = np.diff(np.r_[starts, len(qr)])
    e = np.flatnonzero((sizes > 1)[group] & live[group])
    if len(e):
        xy = np.empty((len(e), 2), np.float32)
        for ref, pos in _by_value(rid[e]):
            xy[pos] = index.keypoints(ref)[kp[e[pos]]]
        at = np.full(len(qr), -1, np.int64)
        at[e] = np.arange(len(e))
        p0 = xy[at[starts[group[e]]]]
        delta = xy - p0
        far = np.hypot(delta[:, 0], delta[:, 1]) > 8.0  # a group's first entry is 0 px from itself
        j = e[far]
        g, first = np.unique(group[j], return_index=True)  # entries are sorted by group
        second[g] = np.minimum(second[g], dist[j[first]].astype(np.float64))
    keep = live & ~(d1 >= RATIO * second)
    kept = starts[keep]
    flip = np.asarray(mirrored_rows, bool)[qr[kept]]
    for m in (False, True):
        mine = kept[flip == m]
        for ref, pos in sorted(_by_value(rid[mine]), key=lambda g: g[1][0]):  # in order of first match
            out[m][ref] = (qr[mine[pos]].tolist(), kp[mine[pos]].tolist())
    return out


def _by_value(values: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(value, its positions in ``values`` in order) for each distinct value, smallest value first."""
    if not len(values):
        return []
    uniq, inv = np.unique(values, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(inv, minlength=len(uniq)))]
    return [(int(v), order[bounds[i]:bounds[i + 1]]) for i, v in enumerate(uniq.tolist())]

