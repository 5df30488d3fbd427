"""Fit the ``image.sscd`` descriptor whitening on a training set that is not evaluation data.

    apt-get download openclipart-png stellarium-data supertux-data hedgewars-data pingus-data \\
        extremetuxracer-data neverball-data freeciv-data frozen-bubble-data tuxmath-data gimp-data \\
        kdegames-card-data-kf5          # into DEBS; nothing is installed, the script runs dpkg -x
    .venv/bin/python models/train_sscd_whitening.py --debs DEBS [--model sscd-disc-mixup] [--shrink 0.5]
        [--per-package 500] [--exclude ../shared/data] [--work /tmp/sscd-white/train] [--seed 0]

SSCD's authors (Pizzi et al., CVPR 2022, sec. 4) centre and whiten the descriptors on a background
set of images like the target distribution, then L2-normalise again: directions that every image
shares (flat clip art, sky, a white page) stop dominating the cosine. The fit here:

* Training images: every PNG/JPEG of at least ``MIN_SIDE`` px on the short side in the given Debian
  art packages (game sprites and backgrounds, clip art, star-atlas and landscape photos, textures),
  decoded the way the scanner decodes references (transparency cropped to its opaque box and
  composited on grey by the detector), de-duplicated by content, at most ``--per-package`` per package
  (seeded sample), plus one seeded augmented view of each (``augment``: a crop, recompression, colour
  change, text, a paste onto another training image, or a transparent image composited on another),
  since a scan's queries are edited images, not clean references.
* Never evaluation data: the benchmark's ``../shared/data`` and the Debian packages it was drawn from
  (``EXCLUDED_PACKAGES``) are refused, and any training image whose raw SSCD cosine to an image under
  ``--exclude`` reaches ``EXCLUDE_COSINE`` (a copy of an evaluation image shipped elsewhere, e.g. an
  openclipart drawing that is also a Tux Paint stamp) is dropped with its augmented view.
* Fit: ``benchmarks.common.descriptors.fit_whitening`` (mean, then ZCA whitening of the covariance
  shrunk towards its mean eigenvalue by ``--shrink``; ZCA and PCA whitening give the same cosines
  after the L2 step). Stored as ``models/<model>-whitening.npz`` (``mean`` 512 and ``proj`` 512x512,
  float32), with ``models/<model>-whitening-train.csv`` (file, package, version, licence, sha256) and
  both checksums in ``config.whitening`` of ``models/<model>.json``, which the detector verifies.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common.descriptors import fit_whitening  # noqa: E402
from scanner.media.image import decode_image  # noqa: E402

MIN_SIDE = 96  # smaller sprites and tiles are not like the works a catalog holds
MAX_PIXELS = 64_000_000
EXCLUDE_COSINE = 0.5  # raw SSCD cosine at which a training image counts as a copy of an evaluation image
# Packages the evaluation data (../shared/data) comes from: never training data.
EXCLUDED_PACKAGES = re.compile(r"^(wesnoth.*|tuxpaint-stamps.*|desktop-base|.*backgrounds?.*|.*wallpapers?.*)$")
SUFFIXES = {".png", ".jpg", ".jpeg"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _deb_fields(deb: Path) -> tuple[str, str]:
    out = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version"], check=True, capture_output=True,
                         text=True).stdout
    fields = dict(line.split(": ", 1) for line in out.strip().splitlines())
    return fields["Package"], fields["Version"]


def _licence(root: Path, package: str) -> str:
    """The licences named in the package's debian/copyright (most frequent first), or a pointer to it."""
    path = root / "usr/share/doc" / package / "copyright"
    if not path.is_file():
        return f"see /usr/share/doc/{package}/copyright"
    names = re.findall(r"^License:\s*(\S.*)$", path.read_text(errors="replace"), re.M)
    if not names:
        text = path.read_text(errors="replace").lower()
        return "public domain" if "public domain" in text else f"see /usr/share/doc/{package}/copyright"
    counts: dict[str, int] = {}
    for n in names:
        counts[n.strip()] = counts.get(n.strip(), 0) + 1
    return "; ".join(sorted(counts, key=lambda n: -counts[n])[:3]) + f" (debian/copyright of {package})"


def collect(debs: Path, work: Path, per_package: int, seed: int) -> list[dict]:
    """Extract every .deb under ``debs`` into ``work`` and pick its training images (manifest rows)."""
    rows: list[dict] = []
    seen: set[str] = set()
    for deb in sorted(debs.glob("*.deb")):
        package, version = _deb_fields(deb)
        if EXCLUDED_PACKAGES.match(package):
            sys.exit(f"{package} is one of the packages the evaluation data comes from; not training data")
        root = work / "x" / package
        if not root.is_dir():
            root.mkdir(parents=True)
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        licence = _licence(root, package)
        cands = []
        for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()):
            data = path.read_bytes()
            digest = _sha(data)
            if digest in seen:
                continue
            try:
                with Image.open(io.BytesIO(data)) as im:
                    w, h = im.size
            except Exception:  # not an image Pillow reads: skip it
                continue
            if min(w, h) < MIN_SIDE or w * h > MAX_PIXELS:
                continue
            seen.add(digest)
            cands.append({"file": "/" + str(path.relative_to(root)), "package": package, "version": version,
                          "licence": licence, "sha256": digest, "_path": str(path)})
        rng = np.random.default_rng([seed, int(_sha(package.encode())[:8], 16)])
        pick = sorted(rng.choice(len(cands), min(per_package, len(cands)), replace=False)) if cands else []
        rows += [cands[i] for i in pick]
        print(f"  {package} {version}: {len(cands)} usable images, {len(pick)} taken", file=sys.stderr)
    return rows


def load(row: dict) -> Image.Image:
    """The training image decoded as the scanner decodes a reference."""
    return decode_image(Path(row["_path"]).read_bytes(), MAX_PIXELS)


def augment(img: Image.Image, other: Image.Image, seed: int) -> Image.Image:
    """One seeded edited view of ``img`` (``other``: a second training image to paste onto)."""
    rng = np.random.default_rng(seed)
    rgba = img.convert("RGBA")
    if img.info.get("scanner.alpha") is not None:
        rgba.putalpha(img.info["scanner.alpha"] if isinstance(img.info["scanner.alpha"], Image.Image)
                      else Image.fromarray(np.asarray(img.info["scanner.alpha"], np.uint8)))
    kind = int(rng.integers(6))
    base = other.convert("RGB")
    if kind == 0 or rgba.getextrema()[3][0] < 128:  # paste (transparent images always: composited on a scene)
        side = max(base.size)
        f = rng.uniform(0.4, 0.8) * side / max(rgba.size)
        fg = rgba.resize((max(1, round(rgba.width * f)), max(1, round(rgba.height * f))))
        x = int(rng.integers(0, max(1, base.width - fg.width + 1)))
        y = int(rng.integers(0, max(1, base.height - fg.height + 1)))
        out = base.convert("RGBA")
        out.alpha_composite(fg, (min(x, max(0, out.width - fg.width)), min(y, max(0, out.height - fg.height))))
        return out.convert("RGB")
    rgb = rgba.convert("RGB")
    w, h = rgb.size
    if kind == 1:  # crop
        f = rng.uniform(0.5, 0.9)
        cw, ch = round(w * f), round(h * f)
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return rgb.crop((x, y, x + cw, y + ch))
    if kind == 2:  # heavy recompression at a smaller size
        small = rgb.resize((max(1, w // 2), max(1, h // 2)))
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=int(rng.integers(10, 40)))
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if kind == 3:  # colour: grey, or saturation/brightness change
        if rng.random() < 0.4:
            return ImageOps.grayscale(rgb).convert("RGB")
        rgb = ImageEnhance.Color(rgb).enhance(rng.uniform(0.3, 1.8))
        return ImageEnhance.Brightness(rgb).enhance(rng.uniform(0.7, 1.3))
    if kind == 4:  # caption text
        draw = ImageDraw.Draw(rgb)
        draw.text((w * 0.05, h * rng.uniform(0.02, 0.8)), "COPY " * int(rng.integers(1, 4)),
                  fill=tuple(int(c) for c in rng.integers(0, 256, 3)), font_size=max(10, h // 8))
        return rgb
    return ImageOps.mirror(rgb).rotate(float(rng.uniform(-12, 12)), expand=False)  # mirror + tilt


def embed(det, images: Sequence[Image.Image], chunk: int = 64) -> np.ndarray:
    """Raw (unwhitened) descriptors, one row per image (zeros for a flat image)."""
    out = np.zeros((len(images), det.dim), np.float32)
    for s in range(0, len(images), chunk):
        for i, e in enumerate(det.embed_references(images[s:s + chunk])):
            if len(e.vectors):
                out[s + i] = e.vectors[0]
    return out


def describe_training_set(det, rows: list[dict], seed: int, work: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """(descriptors of the training images, of one seeded augmented view of each) by ``det``, zeros for a flat
    image; cached in ``work`` under ``prefix`` and a key of the images, the seed and the model id."""
    key = _sha(json.dumps([r["sha256"] for r in rows] + [seed, det.model_id]).encode())[:12]
    cache = work / f"{prefix}-{key}.npz"
    if cache.is_file():
        z = np.load(cache)
        return z["orig"], z["aug"]
    start = time.time()
    x_orig, x_aug = np.zeros((len(rows), det.dim), np.float32), np.zeros((len(rows), det.dim), np.float32)
    for s in range(0, len(rows), 64):
        batch = [load(r) for r in rows[s:s + 64]]
        x_orig[s:s + len(batch)] = embed(det, batch)
        others = [load(rows[(s + i + len(rows) // 2) % len(rows)]) for i in range(len(batch))]
        views = [augment(im, o, seed * 1_000_003 + s + i) for i, (im, o) in enumerate(zip(batch, others))]
        x_aug[s:s + len(batch)] = embed(det, views)
        print(f"  embedded {s + len(batch)}/{len(rows)} ({time.time() - start:.0f} s)", file=sys.stderr)
    np.savez(cache, orig=x_orig, aug=x_aug)
    return x_orig, x_aug


def open_raw(model: str):
    """The detector with its post-processing off: the descriptors the whitening is fitted on."""
    from scanner.config import Settings
    from scanner.detectors.sscd import SscdDetector

    det = SscdDetector(Settings(), model=model)
    if getattr(det, "whitening", None) is not None:
        det = SscdDetector(Settings(detector_options={"image.sscd": {"model": model, "whitening": False}}))
    return det


def eval_descriptors(det, folder: Path, work: Path) -> np.ndarray:
    """Raw descriptors of every image under ``folder`` (the evaluation data), cached in ``work``."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES | {".webp"} and p.is_file())
    key = _sha("\n".join(f"{p}:{p.stat().st_size}" for p in files).encode())[:12]
    cache = work / f"eval-{det.model_id}-{key}.npy"
    if cache.is_file():
        return np.load(cache)
    x = embed(det, [decode_image(p.read_bytes(), MAX_PIXELS) for p in files])
    np.save(cache, x)
    return x


SHRINK_GRID = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
VALIDATION_PAIR_RATE = 1e-5  # negative (view, other original) pairs allowed to pass in the shrinkage check


def validate_shrink(x_orig: np.ndarray, x_aug: np.ndarray, seed: int) -> dict[float, float]:
    """Per shrinkage, the share of augmented views whose cosine to their own original passes the threshold
    that ``VALIDATION_PAIR_RATE`` of (view, other original) pairs pass: fitted on one half of the training
    images and measured on the other, both ways (mean). ``None`` (raw) is included as shrinkage 1.0's
    neighbour for comparison. Training data only: no evaluation image is involved."""
    rng = np.random.default_rng(seed)
    half = rng.permutation(len(x_orig)) % 2
    out: dict[float, float] = {}
    for shrink in (None, *SHRINK_GRID):
        tprs = []
        for fold in (0, 1):
            fit, ev = half == fold, half != fold
            if shrink is None:
                a, b = x_orig[ev], x_aug[ev]
            else:
                w = fit_whitening(np.concatenate([x_orig[fit], x_aug[fit]]), shrink=shrink)
                a, b = w.apply(x_orig[ev]), w.apply(x_aug[ev])
            sims = b @ a.T
            own = np.diag(sims).copy()
            neg = sims[~np.eye(len(a), dtype=bool)]
            thr = np.quantile(neg, 1 - VALIDATION_PAIR_RATE)
            tprs.append(float((own > thr).mean()))
        out[-1.0 if shrink is None else shrink] = float(np.mean(tprs))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Collect, embed, filter, fit and record."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--debs", type=Path, required=True, help="folder of downloaded .deb art packages")
    p.add_argument("--model", default="sscd-disc-mixup")
    p.add_argument("--shrink", default="auto",
                   help="covariance shrinkage in [0, 1], or auto: the best of SHRINK_GRID on a 2-fold check on the "
                        "training images (own original vs other originals for each augmented view)")
    p.add_argument("--per-package", type=int, default=500)
    p.add_argument("--exclude", type=Path, default=REPO.parent / "shared" / "data",
                   help="evaluation data: training images that are copies of one of these are dropped")
    p.add_argument("--work", type=Path, default=Path("/tmp/sscd-white/train"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = collect(args.debs, args.work, args.per_package, args.seed)
    det = open_raw(args.model)
    x_orig, x_aug = describe_training_set(det, rows, args.seed, args.work, "train")
    keep = np.linalg.norm(x_orig, axis=1) > 0
    n_copies = 0
    if args.exclude.is_dir():
        ev = eval_descriptors(det, args.exclude, args.work)
        near = (x_orig @ ev.T).max(1) >= EXCLUDE_COSINE
        n_copies = int((near & keep).sum())
        keep &= ~near
    both = keep & (np.linalg.norm(x_aug, axis=1) > 0)
    x = np.concatenate([x_orig[keep], x_aug[both]])
    checks = validate_shrink(x_orig[both], x_aug[both], args.seed)
    print("  shrinkage check (view found at pair rate 1e-5; -1 = raw): "
          + ", ".join(f"{k:g}: {v:.3f}" for k, v in checks.items()), file=sys.stderr)
    shrink = max(SHRINK_GRID, key=lambda k: checks[k]) if args.shrink == "auto" else float(args.shrink)
    w = fit_whitening(x, shrink=shrink)
    stem = f"{args.model}-whitening"
    out = REPO / "models" / f"{stem}.npz"
    buf = io.BytesIO()
    np.savez(buf, mean=w.mean.astype(np.float32), proj=w.proj.astype(np.float32))
    out.write_bytes(buf.getvalue())
    manifest = REPO / "models" / f"{stem}-train.csv"
    with open(manifest, "w", newline="") as fh:
        wr = csv.DictWriter(fh, ["file", "package", "version", "licence", "sha256"], lineterminator="\n")
        wr.writeheader()
        for r, k in zip(rows, keep):
            if k:
                wr.writerow({f: r[f] for f in wr.fieldnames})
    reg_path = REPO / "models" / f"{args.model}.json"
    reg = json.loads(reg_path.read_text())
    reg["config"]["whitening"] = {
        "file": out.name, "sha256": _sha(out.read_bytes()), "manifest": manifest.name,
        "manifest_sha256": _sha(manifest.read_bytes()),
        "method": f"centring + ZCA whitening, covariance shrunk by {shrink} towards its mean eigenvalue, "
                  "L2 after",
        "shrink": shrink, "shrink_check": {f"{k:g}": round(v, 4) for k, v in checks.items()}, "fitted_on": f"{int(keep.sum())} training images + one augmented view each "
                  f"({len(x)} descriptors); {n_copies} dropped as copies of evaluation images "
                  f"(raw cosine >= {EXCLUDE_COSINE})",
        "script": "models/train_sscd_whitening.py", "seed": args.seed, "per_package": args.per_package}
    reg_path.write_text(json.dumps(reg, indent=2) + "\n")
    print(f"{out} ({out.stat().st_size} bytes) from {len(x)} descriptors; manifest {manifest} "
          f"({int(keep.sum())} files); {n_copies} dropped as copies of evaluation images")


if __name__ == "__main__":
    main()
