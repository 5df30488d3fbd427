"""Build the ``image.sscd`` score-normalisation background from the whitening's own training images.

    apt-get download <the packages named in models/sscd-disc-mixup-whitening-train.csv>   # into DEBS
    .venv/bin/python models/build_sscd_background.py --debs DEBS [--model sscd-disc-mixup] [--k auto]
        [--work /tmp/sscd-white/train] [--seed 0]

SSCD's authors (Pizzi et al., CVPR 2022, sec. 4) normalise a query's similarity to a reference by the
query's similarity to its k-th nearest neighbour in a background set of images like the target
distribution: ``s'(q, r) = s(q, r) - beta * s_k(q)``. A query that resembles many things (flat clip art on
white, a sky, a page layout) then needs a closer match to pass, so one threshold holds across queries and
catalog sizes. The background here is exactly the whitening's training set (the rows of
``models/<model>-whitening-train.csv``, checked by sha256: Debian art packages, never evaluation data),
each image and one seeded augmented view (``train_sscd_whitening.augment``), described by the detector
as it runs by default (whitened). Stored as ``models/<model>-background.npz`` (``rows``, float16) and
pinned by sha256 in ``config.score_norm`` of ``models/<model>.json`` with ``k`` and ``beta``.

``k`` (``--k auto``): the best of ``K_GRID`` on a 2-fold check on the training images only (half the
images are the background, the other half's augmented views are queries against their own originals
and every other original; the share of views found at the threshold a ``VALIDATION_PAIR_RATE`` of the
wrong pairs pass), no evaluation image involved. ``beta`` is 1, as the authors use it; the stored score
is ``(s - s_k) / 2`` so that it stays a cosine-like value in [-1, 1].
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common.descriptors import kth_neighbour_similarity as kth  # noqa: E402
from models.train_sscd_whitening import collect, describe_training_set  # noqa: E402

K_GRID = (1, 3, 10, 30)
BETA = 1.0
VALIDATION_PAIR_RATE = 1e-4  # wrong (view, original) pairs allowed to pass in the k check


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def validate_k(x_orig: np.ndarray, x_aug: np.ndarray, seed: int) -> dict[int, float]:
    """Per k (0 = no normalisation), the share of one half's augmented views whose normalised score to their
    own original passes the level that ``VALIDATION_PAIR_RATE`` of their wrong pairs pass, with the other
    half (originals and views) as the background; mean over both folds."""
    half = np.random.default_rng(seed).permutation(len(x_orig)) % 2
    out: dict[int, float] = {}
    for k in (0, *K_GRID):
        tprs = []
        for fold in (0, 1):
            bg, ev = half == fold, half != fold
            a, b = x_orig[ev], x_aug[ev]
            sims = b @ a.T
            if k:
                sims = (sims - BETA * kth(b, np.concatenate([x_orig[bg], x_aug[bg]]), k)[:, None]) / 2
            own = np.diag(sims).copy()
            thr = np.quantile(sims[~np.eye(len(a), dtype=bool)], 1 - VALIDATION_PAIR_RATE)
            tprs.append(float((own > thr).mean()))
        out[k] = float(np.mean(tprs))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Collect the manifest's images, describe them and their views, choose k, record."""
    from scanner.config import Settings
    from scanner.detectors.sscd import SscdDetector

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--debs", type=Path, required=True, help="folder of the downloaded .deb art packages")
    p.add_argument("--model", default="sscd-disc-mixup")
    p.add_argument("--k", default="auto", help="neighbour rank, or auto (the best of K_GRID on the 2-fold check)")
    p.add_argument("--work", type=Path, default=Path("/tmp/sscd-white/train"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    reg_path = REPO / "models" / f"{args.model}.json"
    reg = json.loads(reg_path.read_text())
    white = reg["config"].get("whitening")
    if not white:
        sys.exit(f"{args.model} has no fitted whitening: fit it first (models/train_sscd_whitening.py)")
    manifest = REPO / "models" / white["manifest"]
    with open(manifest, newline="") as fh:
        wanted = {r["sha256"] for r in csv.DictReader(fh)}
    per_package = int(white.get("per_package", 500))
    rows = [r for r in collect(args.debs, args.work, per_package, int(white.get("seed", 0))) if r["sha256"] in wanted]
    missing = len(wanted) - len({r["sha256"] for r in rows})
    if missing:
        sys.exit(f"{missing} images of {manifest.name} were not found in {args.debs}: download the packages "
                 "and versions it names")
    det = SscdDetector(Settings(detector_options={"image.sscd": {"model": args.model}}))
    if det.whitening is None:
        sys.exit(f"{args.model}: the detector runs without whitening; the background is described as it runs")
    x_orig, x_aug = describe_training_set(det, rows, args.seed, args.work, "background")
    both = (np.linalg.norm(x_orig, axis=1) > 0) & (np.linalg.norm(x_aug, axis=1) > 0)
    checks = validate_k(x_orig[both], x_aug[both], args.seed)
    print("  k check (views found at pair rate 1e-4; 0 = not normalised): "
          + ", ".join(f"{k}: {v:.3f}" for k, v in checks.items()), file=sys.stderr)
    k = max(K_GRID, key=lambda k_: checks[k_]) if args.k == "auto" else int(args.k)
    x = np.concatenate([x_orig, x_aug])
    x = x[np.linalg.norm(x, axis=1) > 0]
    out = REPO / "models" / f"{args.model}-background.npz"
    buf = io.BytesIO()
    np.savez_compressed(buf, rows=x.astype(np.float16))
    out.write_bytes(buf.getvalue())
    reg["config"]["score_norm"] = {
        "file": out.name, "sha256": _sha(out.read_bytes()), "k": k, "beta": BETA,
        "manifest": manifest.name, "manifest_sha256": _sha(manifest.read_bytes()),
        "method": f"s' = (s - {BETA:g} * s_k) / 2, s_k the query's cosine to its k-th nearest background row",
        "rows": int(len(x)), "described_as": det.model_id,
        "k_check": {str(k_): round(v, 4) for k_, v in checks.items()},
        "script": "models/build_sscd_background.py", "seed": args.seed}
    reg_path.write_text(json.dumps(reg, indent=2) + "\n")
    print(f"{out} ({out.stat().st_size} bytes): {len(x)} rows, k = {k}")


if __name__ == "__main__":
    main()
