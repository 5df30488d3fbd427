"""Faces in wide frames: are small faces found, and how long does a 1280x720 frame take?

    .venv/bin/python -m benchmarks.face_frames [--data DIR] [--sizes 40,48,64,100] [--seed N] [--quick]
        [--frame 1920x1080] [--baseline colour|no-enlarge]

Data (``--data``, default ``../shared/data``): every labelled photo of ``faces/`` with exactly one
face (its box from the reference pass, i.e. dlib's full upsampled HOG in colour) and the ``scenes/``
backgrounds at 1280x720. Each photo is scaled so that face is ``--sizes`` px (shorter box side), and a
region three faces wide around it is pasted at a seeded place of a seeded scene: the frame of a wide shot
whose only face is that one (the backgrounds are painted landscapes: no other face).

Query detection is run two ways on the same frames, alternating so machine load moves both: as shipped
and a ``--baseline``: ``colour`` (``grey_queries=False``, HOG on the colour image, before the luma plane)
or ``no-enlarge`` (``fine_pixels=0``: the full pass at the work image's own size, as it ran on images over
1.5 MP before it was enlarged there too). Per face
size: the share of frames whose face is found (a detection of at least ``min_face`` px with IoU >= 0.4
against the true box), the same-photo cosine against the reference (found faces), and the frames with a
detection that is not the face. Then the mean ms per frame of ``embed_queries`` (detection, landmarks,
descriptor), and how far the two ways' descriptors of the same face are apart.

Measured 2026-12-02 on the 2-core machine (otherwise idle; 62 photos x 7 sizes, 434 frames): both ways
found every face at every size (40, 44, 48, 56, 64, 80, 100 px) and nothing else; same-photo cosine
median 0.9884 at 40 px, 0.9995 at 100 px, the same both ways to the third decimal; the same face's two
descriptors 1 - cosine median 0.00000, max 0.00195; grey 262 ms per frame against 361 ms in colour.
``--frame 1920x1080 --sizes 40,56,80,100,130`` (310 frames): a 1080p frame gets no upsampled pass
(``auto_upsample``: none above 1.5 MP), so 40 px faces are found 0 % both ways and 56 px faces 90.3 %
(56/62) on the luma plane against 91.9 % (57/62) in colour; 80 px and larger 100 % both ways; 163 against
217 ms per frame.

After the full pass was enlarged above 1.5 MP (``--baseline no-enlarge``, same run each): at 1920x1080,
``--sizes 40,48,56,64,80,100`` (372 frames), 40 / 48 / 56 / 64 px faces found 100 % each against 0 / 40.3 /
88.7 / 98.4 %, 80-100 px 100 % both, no other detection either way, found faces' descriptors within 0.0072
cosine of each other; 501 against 166 ms per frame. At 3840x2160 (work image 2048x1152, enlarged 1.88x),
``--sizes 56,64,80,100,130``: 83.9 / 98.4 / 98.4 / 100 / 100 % against 0 / 0 / 0 / 79.0 / 100 %; 582
against 236 ms per frame.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import cli
from benchmarks.common.data import IMAGE_SUFFIXES, media_files, require_dir
from scanner.config import Settings
from scanner.detectors.face import FaceDetector
from scanner.detectors.local import polygon_iou

FRAME = (1280, 720)
SIZES = (40, 44, 48, 56, 64, 80, 100)
MIN_IOU = 0.4
# the baseline ways, as FaceDetector keyword arguments
BASELINES = {
    "colour": {"grey_queries": False},  # HOG on the colour image (before the luma plane)
    "no-enlarge": {"fine_pixels": 0},  # full pass not enlarged (as before, above 1.5 MP)
}


def iou(a, b) -> float:
    """Intersection over union of two ``[x0, y0, x1, y1]`` boxes (``image.local``'s polygon IoU)."""
    return polygon_iou(*(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64) for x0, y0, x1, y1 in (a, b)))


def frames(photos: list[tuple[Image.Image, list[int]]], scenes: list[Image.Image], sizes, seed: int):
    """(size, photo number, frame, true face box) for every photo at every size."""
    rng = random.Random(seed)
    for i, (img, box) in enumerate(photos):
        for size in sizes:
            k = size / min(box[2] - box[0], box[3] - box[1])
            small = img.resize((max(1, round(img.width * k)), max(1, round(img.height * k))), Image.Resampling.LANCZOS)
            b = [round(v * k) for v in box]
            cx, cy, half = (b[0] + b[2]) // 2, (b[1] + b[3]) // 2, int(1.5 * size)
            x0, y0 = max(0, cx - half), max(0, cy - half)
            region = small.crop((x0, y0, min(small.width, cx + half), min(small.height, cy + half)))
            frame = rng.choice(scenes).copy()
            fw, fh = frame.size
            px, py = rng.randrange(0, fw - region.width), rng.randrange(0, fh - region.height)
            frame.paste(region, (px, py))
            yield size, i, frame, [b[0] - x0 + px, b[1] - y0 + py, b[2] - x0 + px, b[3] - y0 + py]


def main() -> None:
    ap = cli.parser(__doc__)
    cli.add_data(ap)
    cli.add_seed(ap)
    cli.add_quick(ap, "12 photos, 3 sizes")
    ap.add_argument("--sizes", type=cli.names, default=None, help=f"face sizes in px (default {SIZES})")
    ap.add_argument("--frame", type=cli.frame_size, default=f"{FRAME[0]}x{FRAME[1]}",
                    help="frame size WxH (default %(default)s)")
    ap.add_argument("--baseline", choices=sorted(BASELINES), default="colour",
                    help="the way shipped detection is compared with (default %(default)s)")
    args = ap.parse_args()
    data = require_dir(args.data, "--data", "faces", "scenes")
    sizes = tuple(int(s) for s in args.sizes) if args.sizes else ((40, 56, 100) if args.quick else SIZES)
    frame_size = args.frame
    ways = {"shipped": FaceDetector(Settings()),
            args.baseline: FaceDetector(Settings(), **BASELINES[args.baseline])}
    ref_det = next(iter(ways.values()))
    photos, refs = [], []
    for path in media_files(data / "faces", IMAGE_SUFFIXES):
        img = Image.open(path).convert("RGB")
        (emb,) = ref_det.embed_references([img])
        if not emb.empty:
            photos.append((img, [int(v) for v in emb.extra["box"][0]]))
            refs.append(emb.vectors[0])
    if not photos:
        raise SystemExit(f"no photo in {data / 'faces'} shows exactly one face: nothing to measure")
    if args.quick:
        photos, refs = photos[:12], refs[:12]
    scenes = [Image.open(p).convert("RGB").resize(frame_size) for p in media_files(data / "scenes", IMAGE_SUFFIXES)]
    print(f"{len(photos)} one-face photos x {len(sizes)} sizes in {frame_size[0]}x{frame_size[1]} frames "
          f"({len(scenes)} scenes); model {ref_det.model_id}, min_face {ref_det.min_face} px")
    for det in ways.values():  # models loaded, first-call costs paid: not timed
        det.embed_queries([scenes[0]])
    found = {w: {s: [] for s in sizes} for w in ways}
    cos = {w: {s: [] for s in sizes} for w in ways}
    extra = {w: 0 for w in ways}
    ms = {w: [] for w in ways}
    apart = []
    for n, (size, i, frame, truth) in enumerate(frames(photos, scenes, sizes, args.seed)):
        order = list(ways) if n % 2 == 0 else list(reversed(ways))
        own = {}
        for w in order:
            t = time.perf_counter()
            (emb,) = ways[w].embed_queries([frame])
            ms[w].append(1000 * (time.perf_counter() - t))
            hit = [k for k, box in enumerate(emb.extra["box"]) if iou(box, truth) >= MIN_IOU]
            extra[w] += len(emb.extra["box"]) > len(hit)
            found[w][size].append(bool(hit))
            if hit:
                own[w] = emb.vectors[hit[0]]
                cos[w][size].append(float(own[w] @ refs[i]))
        if len(own) == 2:
            a, b = own.values()
            apart.append(1.0 - float(a @ b))
    n_frames = len(next(iter(ms.values())))
    for w in ways:
        print(f"\n{w}: {statistics.mean(ms[w]):.0f} ms per frame (mean of {n_frames}); "
              f"frames with a detection that is not the face: {extra[w]}")
        print("  face px   found    same-photo cosine median / min")
        for s in sizes:
            c = cos[w][s]
            stats = f"{np.median(c):.4f} / {min(c):.4f}" if c else "  -"
            print(f"  {s:7d}   {np.mean(found[w][s]):6.1%}   {stats}")
    if apart:
        print(f"\nthe same face found both ways: 1 - cosine median {np.median(apart):.5f}, max {max(apart):.5f} "
              f"({len(apart)} faces)")


if __name__ == "__main__":
    main()
