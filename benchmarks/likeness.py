"""Likeness benchmark: faces (``image.face``) and voices (``audio.voice``) on real data; threshold calibration.

    .venv/bin/python -m benchmarks.likeness [--faces DIR] [--voices DIR] [--music DIR] [--quick]
        [--skip-faces] [--skip-voices] [--write-calibration [PATH]] [--compare-cnn]

Faces (``--faces``, default ``../shared/data/faces``): real photos of 13 people from the deepface
test set. ``master.csv`` lists 300 labelled pairs over 25 photos (38 same-person, 262
different-person); ``face-recognition-pivot.csv``, when present, labels 280 more pairs over 61
photos. Identities are the connected components of the same-person pairs of both files (a
different-person pair inside one component would stop the run). Two protocols:

* ``master.csv``: its pairs as listed. 262 impostor pairs resolve a false-accept rate (FAR) of
  1/262 = 0.38 %: 1 % FAR allows 2 impostor pairs above the threshold, 0.1 % FAR allows none
  (so it is really "FAR 0 of 262").
* all pairs of the labelled photos (61 photos: 140 same-person, 1,690 different-person
  pairs): resolution 1/1690 = 0.059 %; 1 % FAR allows 16 impostors, 0.1 % allows 1.

Each photo is embedded as a talent reference (exactly one face) and as a query (every face;
a pair's score is the best query face against the reference). Transforms: a subset of the
photos (two per person; one in ``--quick``) goes through copy transforms (resize, JPEG,
crop, colour, grey, mirror, rotation) and generation-like edits (blur, posterize, edge
enhance, a bilateral-filter "cartoon", OpenCV stylization, noise); each transformed photo is
scored against every reference: against its own photo ("self"), other photos of the same
person (TAR) and other people (FAR).

Voices (``--voices``, default ``../shared/data/voices``): 5 LibriSpeech test-other speakers x 10
utterances (CC-BY-4.0). EER: every utterance embedded as a reference, all pairs (225
same-speaker, 1,000 different-speaker) with the plain detector; and with the shipped scoring,
each utterance as a query against every other as a reference. Talent protocol: each speaker
enrols with the concatenation of its first 3 utterances; queries of 3, 5 and 10 s are cut every
d/2 s from the concatenation of the other 7, under conditions: clean, white noise at 10 dB SNR,
music at 10 dB and at 0 dB (``--music``, default ``../shared/data/music``, one track per query in
turn; synthetic if absent), a synthetic room (RT60 0.7 s, early reflections, 0 dB
direct-to-reverberant: not the detector's enrolment room), telephone band (8 kHz), MP3 32
kbit/s and Ogg Vorbis. A query's score against a talent is its best row against the talent's
best row (what the detector's search reports).

Voice scoring levers are measured one at a time on the same queries against the plain detector
(window rows vs one clean reference row): segment-mean query rows, three reference samples (max
over samples, centroid), AS-norm against a leave-speaker-out cohort (the clean utterances of the
speakers that are neither trial speaker: 3 of 5, a genuine trial drops one more), multi-condition
enrolment, multi-condition enrolment with segment means, and each query window also embedded after RNNoise
(denoised rows) with the clean reference row alone and with the multi-condition rows (shipped). With 5 speakers there are 10 speaker pairs: a 1 % FAR point is
set by the closest pair or two, and a condition's 91 genuine / 364 impostor 5 s queries resolve
about 1 % TAR and 0.3 % FAR.

Thresholds. A match is ``score >= threshold`` (cosine, 4 decimals). At a target FAR ``f`` over
``n`` impostor comparisons, the threshold is the smallest 4-decimal value that at most
``floor(f * n)`` impostor scores reach. The atomic comparison is what a user sees as one trial:

* faces: impostors are (query face, other person's reference) over all labelled photos,
  clean and transformed; the stored threshold is the stricter of the clean-photo and the
  pooled (clean + every transform) thresholds.
* voices: impostors are (query, other speaker's enrolment): the query's best row against the
  enrolment's best row, as the detector's search reports it, over every duration and condition;
  the stored threshold is the stricter of the clean-only and pooled ones (``stricter_threshold``
  over ``query_impostors``), and the run prints the per-query FAR it reached. The earlier rule
  (1 % of *window rows*) stays as a same-run baseline column: a query has several rows, so its
  per-query FAR there was higher (up to ~3.6 % for noisy 5 s queries).

The shipped voice enrolment is compared in the same run with the previous one
(``PREVIOUS_REF_CONDITIONS``: its rows are a subset of the shipped rows), for TAR per condition,
utterance EER and registration speed (x real time).

Calibration. ``--write-calibration`` merges into ``scanner/policy/calibration.json`` (other
entries kept) ``detectors["image.face"][<model>]`` and ``detectors["audio.voice"][<model>]``::

    final    = {"block": threshold at 0.1 % FAR, "review": threshold at 1 % FAR}
    ideation = {"block": threshold at 0.1 % FAR, "review": same as block}

plus ``measured`` (pair counts, FAR resolution, TAR, EER, source). ``version`` becomes
``<UTC date>-likeness-<8 hex of sha256 over every stored threshold>``. For likeness the
policy decides consent: a talent match at or above ``review`` is a finding, and consent
(scope, project, dates, revocation) decides whether it blocks.

Read the figures with their sample sizes: 13 face identities and 5 speakers (10 speaker
pairs) are far too few to pin a 0.1 % operating point; pairs are correlated (the same
photo appears in many pairs). Per asset, the chance of a false match grows with the number
of faces (windows) and registered talents: about ``1 - (1 - FAR) ** (faces x talents)``.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from benchmarks.common.memory import peak_rss_mib, peak_rss_since_reset_mib, reset_peak_rss
from benchmarks.common.stats import pct as _pct
from scanner.config import Settings
from scanner.media.audio import AudioClip
from scanner.policy.calibration import merge_calibration

REPO_ROOT = Path(__file__).resolve().parents[1]


def _pct6(x: float) -> str:
    """A share as a percentage in 6 columns (the tables' width)."""
    return _pct(x, 1, 6)


SHARED = REPO_ROOT.parent / "shared" / "data"
FAR_LEVELS = (0.01, 0.001)  # review, block
SR = 16_000
# audio.voice's multi-condition enrolment before the music-bed row at 0 dB: measured beside it in the same run
PREVIOUS_REF_CONDITIONS = ("pink noise 10 dB", "synthetic music 10 dB", "reverb 0.5 s")
PREVIOUS_LEVER = "+ multi-condition, previous rows"


# =============================================================== statistics


def threshold_at_far(impostors: np.ndarray, far: float) -> float:
    """Smallest 4-decimal threshold that at most floor(far * n) impostor scores reach."""
    imp = np.sort(np.asarray(impostors, np.float64))[::-1]
    allowed = int(math.floor(far * imp.size + 1e-9))
    if allowed >= imp.size:
        return -1.0
    thr = math.floor(imp[allowed] * 1e4) / 1e4 + 1e-4  # just above the first impostor that must not pass
    while (imp >= thr).sum() > allowed:
        thr += 1e-4
    return round(thr, 4)


def stricter_threshold(by_condition: dict[str, np.ndarray], far: float, clean: str = "clean") -> float:
    """Threshold (4 decimals) at ``far`` over every condition's impostor scores pooled, or over the ``clean``
    condition's alone, whichever is stricter (higher): neither clean trials nor the mix may exceed ``far``."""
    from benchmarks.common.stats import threshold_at_fpr

    pooled = np.concatenate([np.asarray(v, np.float64).ravel() for v in by_condition.values()])
    return max(threshold_at_fpr(pooled, far, step=1e-4),
               threshold_at_fpr(np.asarray(by_condition[clean], np.float64).ravel(), far, step=1e-4))


def query_scores(query_rows: list[np.ndarray], talent_rows: list[np.ndarray]) -> np.ndarray:
    """(queries, talents) scores as the detector's search reports them: a query's best row against the
    talent's best row (``-inf`` for a query without rows)."""
    out = np.full((len(query_rows), len(talent_rows)), -np.inf)
    for i, q in enumerate(query_rows):
        if q.shape[0]:
            out[i] = [float((q @ r.T).max()) for r in talent_rows]
    return out


def query_impostors(scores: np.ndarray, owners: np.ndarray, conditions: list[str]) -> dict[str, np.ndarray]:
    """Per condition, the per-query impostor scores: each query (row of ``scores``, spoken by ``owners[i]``,
    under ``conditions[i]``) against every talent but its own speaker. A query is one trial per talent:
    its FAR is what a user sees, whatever the number of rows behind it."""
    scores, owners, conds = np.asarray(scores), np.asarray(owners), np.asarray(conditions)
    other = np.arange(scores.shape[1])[None, :] != owners[:, None]
    return {c: scores[(conds == c)[:, None] & other] for c in dict.fromkeys(conditions)}


def rate(scores: np.ndarray, thr: float) -> float:
    return float((np.asarray(scores) >= thr).mean()) if len(scores) else float("nan")


def eer(genuine: np.ndarray, impostors: np.ndarray) -> tuple[float, float]:
    """(equal error rate, threshold): where the false-reject and false-accept rates cross."""
    g, i = np.sort(np.asarray(genuine, np.float64)), np.sort(np.asarray(impostors, np.float64))
    cands = np.unique(np.concatenate([g, i]))
    frr = np.searchsorted(g, cands, "left") / g.size  # genuine below the threshold
    far = 1 - np.searchsorted(i, cands, "left") / i.size  # impostors at or above it
    k = int(np.argmin(np.abs(frr - far)))
    return float((frr[k] + far[k]) / 2), float(cands[k])






# =============================================================== faces


def face_identities(folder: Path) -> tuple[dict[str, int], list[tuple[str, str, bool]]]:
    """Photo -> identity id (components of same-person pairs), and master.csv's pairs."""
    parent: dict[str, str] = {}

    def root(a: str) -> str:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    labelled: list[tuple[str, str, bool]] = []
    master: list[tuple[str, str, bool]] = []
    for name in ("master.csv", "face-recognition-pivot.csv"):
        path = folder / name
        if not path.is_file():
            continue
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                row = {k.strip().lower(): (v or "").strip() for k, v in row.items()}
                a, b = Path(row["file_x"]).name, Path(row["file_y"]).name
                same = row["decision"] == "Yes"
                if not ((folder / a).is_file() and (folder / b).is_file()):
                    continue
                labelled.append((a, b, same))
                if name == "master.csv":
                    master.append((a, b, same))
    for a, b, same in labelled:
        root(a), root(b)
        if same:
            parent[root(a)] = root(b)
    for a, b, same in labelled:
        if not same and root(a) == root(b):
            sys.exit(f"faces: {a} and {b} are labelled different people but linked as the same person")
    roots = sorted({root(a) for a in parent})
    return {a: roots.index(root(a)) for a in sorted(parent)}, master


def _cv2():
    try:
        import cv2
        return cv2
    except ImportError:
        return None


def _jpeg(img: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _crop(img: Image.Image, keep: float) -> Image.Image:
    w, h = img.size
    dw, dh = int(w * (1 - keep) / 2), int(h * (1 - keep) / 2)
    return img.crop((dw, dh, w - dw, h - dh))


def _cartoon(img: Image.Image) -> Image.Image:
    cv2 = _cv2()
    a = np.asarray(img)
    for _ in range(4):
        a = cv2.bilateralFilter(a, 9, 60, 7)
    grey = cv2.medianBlur(cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2GRAY), 7)
    edges = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 3)
    quant = (a // 32) * 32 + 16
    return Image.fromarray(np.where(edges[..., None] > 0, quant, 0).astype(np.uint8))


def _stylize(img: Image.Image) -> Image.Image:
    cv2 = _cv2()
    return Image.fromarray(cv2.stylization(np.ascontiguousarray(np.asarray(img)), sigma_s=60, sigma_r=0.45))


def _noise(img: Image.Image) -> Image.Image:
    a = np.asarray(img).astype(np.float32) + np.random.default_rng(0).normal(0, 12, (img.height, img.width, 3))
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


FaceTransform = Callable[[Image.Image], Image.Image]
FACE_TRANSFORMS: dict[str, tuple[str, FaceTransform]] = {
    "original": ("copy", lambda im: im),
    "resize 50%": ("copy", lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR)),
    "resize 25%": ("copy", lambda im: im.resize((im.width // 4, im.height // 4), Image.Resampling.BILINEAR)),
    "JPEG q30": ("copy", lambda im: _jpeg(im, 30)),
    "crop 75%": ("copy", lambda im: _crop(im, 0.75)),
    "colour": ("copy", lambda im: ImageEnhance.Brightness(ImageEnhance.Color(im).enhance(1.8)).enhance(0.8)),
    "grey": ("copy", lambda im: ImageOps.grayscale(im).convert("RGB")),
    "mirror": ("copy", ImageOps.mirror),
    "rotate 15": ("copy", lambda im: im.rotate(15, Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128))),
    "blur r2": ("generation", lambda im: im.filter(ImageFilter.GaussianBlur(2))),
    "blur r4": ("generation", lambda im: im.filter(ImageFilter.GaussianBlur(4))),
    "posterize 3b": ("generation", lambda im: ImageOps.posterize(im, 3)),
    "edge enhance": ("generation", lambda im: im.filter(ImageFilter.EDGE_ENHANCE_MORE)),
    "cartoon": ("generation", _cartoon),
    "stylization": ("generation", _stylize),
    "noise s12": ("generation", _noise),
}
QUICK_FACE_TRANSFORMS = ("original", "resize 50%", "JPEG q30", "crop 75%", "colour", "blur r2", "posterize 3b",
                         "cartoon")


@dataclass
class FaceResult:
    lines: list[str] = field(default_factory=list)
    entry: dict = field(default_factory=dict)
    model_id: str = ""


def run_faces(folder: Path, quick: bool, compare_cnn: bool) -> FaceResult:
    from scanner.detectors.face import FaceDetector

    out = FaceResult()
    say = out.lines.append
    ident, master = face_identities(folder)
    names = sorted(ident, key=lambda n: (ident[n], n))
    n_ids = len(set(ident.values()))
    det = FaceDetector(Settings())
    say(f"FACES  {folder}  model {det.model_id} (weights {det.weights_sha256[:12]}), params {det.params}")
    say(f"  {len(names)} labelled photos, {n_ids} people; master.csv {len(master)} pairs")

    images = {n: Image.open(folder / n).convert("RGB") for n in names}
    t0 = time.perf_counter()
    refs = dict(zip(names, det.embed_references([images[n] for n in names])))
    t_ref = time.perf_counter() - t0
    rejected = {n: e.note for n, e in refs.items() if e.empty}
    queries = dict(zip(names, det.embed_queries([images[n] for n in names])))
    say(f"  references: {len(names) - len(rejected)} accepted, {len(rejected)} rejected {rejected or ''}"
        f" ({t_ref / len(names) * 1000:.0f} ms/photo)")
    ref_names = [n for n in names if n not in rejected]
    R = np.stack([refs[n].vectors[0] for n in ref_names])
    ref_id = np.array([ident[n] for n in ref_names])

    def pair_score(query_rows: np.ndarray, ref_name: str) -> float:
        if ref_name in rejected or query_rows.shape[0] == 0:
            return -1.0
        return float((query_rows @ refs[ref_name].vectors[0]).max())

    # ---- protocol 1: master.csv as listed (query side: every face of file_y)
    m_gen = np.array([pair_score(queries[b].vectors, a) for a, b, s in master if s])
    m_imp = np.array([pair_score(queries[b].vectors, a) for a, b, s in master if not s])
    # ---- protocol 2: all pairs of labelled photos (each unordered pair once)
    gen, imp = [], []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (gen if ident[a] == ident[b] else imp).append(pair_score(queries[b].vectors, a))
    gen, imp = np.array(gen), np.array(imp)

    say("")
    say("  verification (photo vs photo, clean)        genuine  impostor  FAR resolution   TAR@1%FAR  TAR@0.1%FAR"
        "  thr@1%   thr@0.1%")
    clean_thr = {}
    for label, g, im in (("master.csv pairs", m_gen, m_imp), ("all labelled pairs", gen, imp)):
        t1, t01 = threshold_at_far(im, 0.01), threshold_at_far(im, 0.001)
        clean_thr[label] = (t1, t01)
        say(f"  {label:42} {len(g):7d}  {len(im):8d}  1/{len(im)} = {100 / len(im):.3f}%  "
            f" {_pct6(rate(g, t1))}     {_pct6(rate(g, t01))}    {t1:.4f}   {t01:.4f}")
    say(f"  scores: genuine min/median {gen.min():.4f}/{np.median(gen):.4f}; impostor median/max "
        f"{np.median(imp):.4f}/{imp.max():.4f}; master.csv: every genuine > max impostor: {m_gen.min() > m_imp.max()}")
    say("  (at 0.1 % the master.csv threshold only says 'above every impostor': 0.1 % of 262 pairs is 0 pairs)")

    # ---- transforms
    per_id: dict[int, list[str]] = {}
    for n in names:
        if n not in rejected:
            per_id.setdefault(ident[n], []).append(n)
    subset = [n for ns in per_id.values() for n in ns[: 1 if quick else 2]]
    tnames = QUICK_FACE_TRANSFORMS if quick else tuple(FACE_TRANSFORMS)
    if _cv2() is None:
        tnames = tuple(t for t in tnames if t not in ("cartoon", "stylization"))
    say("")
    say(f"  transforms: {len(subset)} photos ({'1' if quick else '2'} per person) x {len(tnames)} transforms, "
        "each scored against all references")
    say("  transform       kind        faces found  self med/min     TAR@review  TAR@block  FAR@review  FAR@block"
        "  max impostor")
    pooled_imp: list[float] = list(imp)
    table = {}
    n_faces, t_embed, px = 0, 0.0, 0
    rows_by_t = {}
    for tname in tnames:
        kind, fn = FACE_TRANSFORMS[tname]
        timgs = [fn(images[n]) for n in subset]
        t0 = time.perf_counter()
        embs = det.embed_queries(timgs)
        t_embed += time.perf_counter() - t0
        px += sum(im.width * im.height for im in timgs)
        n_faces += sum(e.vectors.shape[0] for e in embs)
        rows_by_t[tname] = (timgs, embs)
    # thresholds from clean photos first; the transforms then add impostor comparisons
    for tname in tnames:
        _, embs = rows_by_t[tname]
        for n, e in zip(subset, embs):
            if e.empty:
                continue
            s = (e.vectors @ R.T).max(axis=0)
            pooled_imp.extend(s[(ref_id != ident[n])].tolist())
    pooled_imp_arr = np.array(pooled_imp)
    t_review = max(clean_thr["all labelled pairs"][0], threshold_at_far(pooled_imp_arr, 0.01))
    t_block = max(clean_thr["all labelled pairs"][1], threshold_at_far(pooled_imp_arr, 0.001))
    for tname in tnames:
        kind = FACE_TRANSFORMS[tname][0]
        _, embs = rows_by_t[tname]
        selfs, g, im = [], [], []
        found = 0
        for n, e in zip(subset, embs):
            if e.empty:
                s = np.full(len(ref_names), -1.0)
            else:
                found += 1
                s = (e.vectors @ R.T).max(axis=0)
            own = np.array([r == n for r in ref_names])
            selfs.append(float(s[own][0]))
            g.extend(s[(ref_id == ident[n]) & ~own].tolist())
            im.extend(s[ref_id != ident[n]].tolist())
        selfs, g, im = np.array(selfs), np.array(g), np.array(im)
        found_selfs = selfs[selfs > -1]
        med = f"{np.median(found_selfs):.3f}/{found_selfs.min():.3f}" if found_selfs.size else "  -  /  -  "
        table[tname] = {"kind": kind, "found": found / len(subset), "self_median": float(np.median(selfs)),
                        "tar_review": rate(g, t_review), "tar_block": rate(g, t_block),
                        "far_review": rate(im, t_review), "far_block": rate(im, t_block)}
        say(f"  {tname:15} {kind:11} {found:3d}/{len(subset):<3d}     {med:15}  {_pct6(rate(g, t_review))}     "
            f"{_pct6(rate(g, t_block))}    {_pct6(rate(im, t_review))}     {_pct6(rate(im, t_block))}     {im.max():.4f}")
    say(f"  (TAR over {len(g)} same-person other-photo pairs per transform; FAR over {len(im)} impostor pairs "
        "per transform; a photo with no face found counts as a miss)")

    # ---- thresholds and speed
    say("")
    say(f"  thresholds: clean all-pairs {clean_thr['all labelled pairs']}, pooled with transforms "
        f"({pooled_imp_arr.size} impostor comparisons, resolution {100 / pooled_imp_arr.size:.4f}%) "
        f"({threshold_at_far(pooled_imp_arr, 0.01)}, {threshold_at_far(pooled_imp_arr, 0.001)})")
    say(f"  calibrated (stricter of the two): review {t_review:.4f} (1% FAR), block {t_block:.4f} (0.1% FAR)")
    say(f"  on clean all-pairs: TAR@review {_pct6(rate(gen, t_review))}, TAR@block {_pct6(rate(gen, t_block))}, "
        f"FAR@review {_pct6(rate(imp, t_review))}, FAR@block {_pct6(rate(imp, t_block))}")
    for talents in (100, 1000):
        say(f"  per query face vs {talents} talents, if comparisons were independent: P(false review) "
            f"~ {_pct6(1 - (1 - 0.01) ** talents)}, P(false block) ~ {_pct6(1 - (1 - 0.001) ** talents)}")
    speed = {"faces_per_s": n_faces / t_embed, "images_per_s": len(tnames) * len(subset) / t_embed,
             "mp_per_s": px / 1e6 / t_embed}
    say(f"  speed (embed_queries, 1 process): {speed['images_per_s']:.2f} images/s, "
        f"{speed['faces_per_s']:.2f} faces/s, "
        f"{speed['mp_per_s']:.2f} MP/s over {len(tnames) * len(subset)} images; peak RSS {peak_rss_mib():.0f} MB")
    # the same images through the previous configuration (full upsampled HOG on every image, dlib's
    # own ResNet), interleaved with the current one so both see the same machine load
    base = FaceDetector(Settings(), cascade=False, net="dlib")
    cmp_names = tnames[:3] if quick else tnames
    t_new = t_old = 0.0
    n_cmp = agree = 0
    for tname in cmp_names:
        for im in rows_by_t[tname][0]:
            t0 = time.process_time()
            (e_new,) = det.embed_queries([im])
            t_new += time.process_time() - t0
            t0 = time.process_time()
            (e_old,) = base.embed_queries([im])
            t_old += time.process_time() - t0
            n_cmp += 1
            if e_new.vectors.shape[0] and e_old.vectors.shape[0]:
                agree += float((e_new.vectors @ e_old.vectors.T).max()) >= 0.99
            else:
                agree += e_new.vectors.shape[0] == e_old.vectors.shape[0]
    speed.update(baseline_images_per_cpu_s=n_cmp / t_old, images_per_cpu_s=n_cmp / t_new, speedup=t_old / t_new)
    say(f"  speed vs the previous configuration (cascade off, dlib ResNet), same {n_cmp} images interleaved, "
        f"CPU time: {n_cmp / t_new:.2f} vs {n_cmp / t_old:.2f} images per CPU second = {t_old / t_new:.1f}x; "
        f"main face the same (cosine >= 0.99) in {agree}/{n_cmp}")

    if compare_cnn:
        say("")
        say("  HOG vs MMOD-CNN detection on hard transforms (faces found / photos, seconds per photo):")
        cnn = FaceDetector(Settings(), detector="cnn")
        for tname in ("original", "resize 25%", "rotate 15", "stylization", "blur r4"):
            if tname not in rows_by_t and tname in FACE_TRANSFORMS:
                rows_by_t[tname] = ([FACE_TRANSFORMS[tname][1](images[n]) for n in subset], None)
            timgs = rows_by_t[tname][0][:8]
            res = []
            for d in (det, cnn):
                t0 = time.perf_counter()
                found = sum(1 for im in timgs if d.detect(im))
                res.append(f"{found}/{len(timgs)} in {(time.perf_counter() - t0) / len(timgs):.2f} s")
            say(f"    {tname:12}  HOG {res[0]:18}  CNN {res[1]}")

    out.model_id = det.model_id
    out.entry = {
        "metric": "cosine",
        "final": {"block": t_block, "review": t_review},
        "ideation": {"block": t_block, "review": t_block},
        "measured": {
            "source": f"benchmarks/likeness.py on {folder.name}/ ({len(names)} photos, {n_ids} people)",
            "protocol": "face vs talent reference (cosine of L2-normalised dlib descriptors); threshold = stricter "
                        "of clean photo pairs and clean+transformed pairs",
            "genuine_pairs": int(gen.size), "impostor_pairs": int(imp.size),
            "far_resolution": round(1 / imp.size, 6),
            "impostor_comparisons_pooled": int(pooled_imp_arr.size),
            "tar_at_1pct_far": round(rate(gen, t_review), 4), "tar_at_0_1pct_far": round(rate(gen, t_block), 4),
            "far_at_review": round(rate(imp, t_review), 5), "far_at_block": round(rate(imp, t_block), 5),
            "master_csv": {"genuine": int(m_gen.size), "impostor": int(m_imp.size),
                           "tar_at_review": round(rate(m_gen, t_review), 4),
                           "far_at_review": round(rate(m_imp, t_review), 4)},
            "transforms": {k: {kk: (round(vv, 4) if isinstance(vv, float) else vv) for kk, vv in v.items()}
                           for k, v in table.items()},
            "speed": {k: round(v, 3) for k, v in speed.items()},
        },
    }
    return out


# =============================================================== voices


def _load_audio(path: Path) -> np.ndarray:
    """16 kHz mono float32 (the project's decoder when present, else soundfile)."""
    try:
        from scanner.media.audio import decode_audio
        return decode_audio(path.read_bytes()).samples
    except ImportError:
        import soundfile as sf

        from scanner.detectors.voice import to_16k

        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return to_16k(data.mean(axis=1), sr)


def _mix(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    noise = np.resize(noise, x.shape)
    px, pn = float(np.mean(x ** 2)), float(np.mean(noise ** 2)) + 1e-12
    return (x + noise * math.sqrt(px / (pn * 10 ** (snr_db / 10)))).astype(np.float32)


def _mp3(x: np.ndarray, kbps: int = 32) -> np.ndarray:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=SR)
        stream.layout = "mono"
        stream.bit_rate = kbps * 1000
        pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
        for i in range(0, pcm.size, 1152 * 8):
            frame = av.AudioFrame.from_ndarray(pcm[None, i: i + 1152 * 8], format="s16", layout="mono")
            frame.sample_rate = SR
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return _decode_bytes(buf.getvalue(), x.size)


def _ogg(x: np.ndarray) -> np.ndarray:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1, 1), SR, format="OGG", subtype="VORBIS")
    return _decode_bytes(buf.getvalue(), x.size)


def _decode_bytes(data: bytes, n: int) -> np.ndarray:
    try:
        from scanner.media.audio import decode_audio
        y = decode_audio(data).samples
    except ImportError:
        import av

        from scanner.detectors.voice import to_16k

        with av.open(io.BytesIO(data)) as c:
            chunks, sr = [], SR
            for frame in c.decode(audio=0):
                a = frame.to_ndarray()
                chunks.append(a.mean(axis=0) if a.ndim == 2 else a)
                sr = frame.sample_rate
            y = to_16k(np.concatenate(chunks).astype(np.float32), sr)
    return y[:n] if y.size >= n else np.pad(y, (0, n - y.size))


def _phone(x: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(resample_poly(x, 1, 2), 2, 1).astype(np.float32)[: x.size]


def room(x: np.ndarray, seed: int, rt60: float = 0.7) -> np.ndarray:
    """``x`` in a synthetic room: direct path, six early reflections (3-25 ms) and a diffuse exponential
    tail as loud as the direct sound (0 dB direct-to-reverberant ratio), peak level kept. Deliberately
    not the detector's enrolment room (RT60 0.5 s, +6 dB, no early reflections)."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    n = int(rt60 * SR)
    h = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / (rt60 * SR))
    h[: int(0.003 * SR)] = 0.0
    h /= np.sqrt(np.sum(h ** 2))
    for _ in range(6):
        h[int(rng.uniform(0.003, 0.025) * SR)] += rng.uniform(-0.6, 0.6)
    h[0] = 1.0
    y = fftconvolve(x, h)[: x.size]
    return (y * (np.abs(x).max() / max(1e-9, np.abs(y).max()))).astype(np.float32)


def synth_music(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    out = np.zeros(n)
    for k in range(int(seconds / 0.25)):
        a = int(k * 0.25 * SR)
        seg = np.arange(min(int(0.5 * SR), n - a)) / SR
        f0 = 196 * 2 ** (rng.choice([0, 3, 5, 7, 10, 12]) / 12)
        out[a: a + seg.size] += np.exp(-seg * 5) * sum(np.sin(2 * np.pi * f0 * h * seg) / h for h in range(1, 6))
    return (out / np.abs(out).max() * 0.5).astype(np.float32)


def music_beds(folder: Path | None, seconds: float) -> tuple[list[np.ndarray], str]:
    """Every track of ``folder`` (from 20 s in, looped to ``seconds``), else one synthetic bed."""
    if folder and folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".ogg", ".flac", ".wav", ".mp3"})
        if files:
            beds = []
            for f in files:
                x = _load_audio(f)
                beds.append(np.resize(x[20 * SR:] if x.size > 40 * SR else x, int(seconds * SR)))
            return beds, f"{len(files)} tracks of {folder.name}/ (one per query, in turn)"
    return [synth_music(seconds)], "synthetic"


@dataclass
class VoiceResult:
    lines: list[str] = field(default_factory=list)
    entry: dict = field(default_factory=dict)
    model_id: str = ""


@dataclass
class _Query:
    speaker: int
    condition: str
    duration: float
    rows: np.ndarray  # (n, 256): windows, then segment means, then the windows denoised
    window: np.ndarray  # (n,) bool: a window row as heard (not a segment mean, not denoised)
    denoised: np.ndarray  # (n,) bool: a window row after RNNoise


def _as_norm(raw: np.ndarray, q_rows: np.ndarray, ref_rows: np.ndarray, cohort: np.ndarray) -> np.ndarray:
    """Symmetric adaptive score normalisation of ``raw`` (rows x reference rows) against ``cohort`` rows:
    0.5 * ((s - mean_q) / std_q + (s - mean_r) / std_r) over every cohort row (cohorts here are small)."""
    cq, cr = q_rows @ cohort.T, ref_rows @ cohort.T
    zq = (raw - cq.mean(1, keepdims=True)) / (cq.std(1, keepdims=True) + 1e-6)
    zr = (raw - cr.mean(1)[None, :]) / (cr.std(1)[None, :] + 1e-6)
    return 0.5 * (zq + zr)


def run_voices(folder: Path, music_dir: Path | None, quick: bool, long_minutes: float) -> VoiceResult:
    """Voice benchmark: utterance EER, the talent protocol under conditions with every scoring lever
    against the plain detector (same queries, same run), calibration entry of the shipped scoring."""
    from benchmarks.common.stats import pct as cpct, threshold_at_fpr
    from benchmarks.common.table import format_table
    from scanner.detectors.voice import VoiceDetector

    def thr(neg, far):
        return threshold_at_fpr(np.asarray(neg), far, step=1e-4)

    out = VoiceResult()
    say = out.lines.append
    det = VoiceDetector(Settings())  # the shipped scoring
    plain = VoiceDetector(Settings())  # the same model without the scoring levers: the baseline
    plain.ref_conditions, plain.segment_means, plain.denoised_rows = (), False, False
    probe = VoiceDetector(Settings())  # embeds the queries: window rows (all levers) plus segment means
    probe.segment_means = True
    speakers = sorted(p.name for p in folder.iterdir() if p.is_dir())
    files = {s: sorted((folder / s).glob("*.flac")) for s in speakers}
    audio = {s: [_load_audio(f) for f in files[s]] for s in speakers}
    n_utts = sum(len(v) for v in files.values())
    S = len(speakers)
    say(f"VOICES  {folder}  model {det.model_id} (weights {det.weights_sha256[:12]}), params {det.params}")
    say(f"  {S} speakers, {n_utts} utterances, {sum(a.size for v in audio.values() for a in v) / SR:.0f} s of audio")

    # ---- EER: utterance vs utterance (clean), plain and shipped scoring
    t0 = time.perf_counter()
    embs = {s: plain.embed_references([AudioClip(a, SR) for a in audio[s]]) for s in speakers}
    t_ref = time.perf_counter() - t0
    rows = [(si, e.vectors[0]) for si, s in enumerate(speakers) for e in embs[s] if not e.empty]
    n_empty = n_utts - len(rows)
    spk = np.array([s for s, _ in rows])
    utt = np.stack([v for _, v in rows])  # clean utterance embeddings: also the AS-norm cohort
    sims = utt @ utt.T
    upper = np.triu(np.ones_like(sims, bool), 1)
    same = spk[:, None] == spk[None, :]
    u_eer, u_eer_t = eer(sims[upper & same], sims[upper & ~same])
    say(f"  utterance vs utterance (clean, {len(rows)} embedded, {n_empty} too short; {int((upper & same).sum())} "
        f"same / {int((upper & ~same).sum())} different-speaker pairs): plain EER {_pct6(u_eer)} at {u_eer_t:.3f}")
    ok = [(si, s, k) for si, s in enumerate(speakers) for k, e in enumerate(embs[s]) if not e.empty]
    clips = [AudioClip(audio[s][k], SR) for _, s, k in ok]
    new_refs = det.embed_references(clips)
    new_qs = det.embed_queries(clips)
    n = len(ok)
    # rows of the shipped enrolment that the previous one (PREVIOUS_REF_CONDITIONS) had: its figures come from them
    prev_rows = [0] + [1 + i for i, c in enumerate(det.ref_conditions) if c in PREVIOUS_REF_CONDITIONS]
    pair, pair_prev, pair_heard = (np.full((n, n), np.nan) for _ in range(3))
    for i in range(n):
        heard = new_qs[i].vectors[~np.asarray(new_qs[i].extra.get("denoised", np.zeros(0, bool)), bool)] \
            if not new_qs[i].empty else None
        for j in range(n):
            if i != j and not new_qs[i].empty:
                pair[i, j] = float((new_qs[i].vectors @ new_refs[j].vectors.T).max())
                pair_prev[i, j] = float((heard @ new_refs[j].vectors[prev_rows].T).max())
                pair_heard[i, j] = float((heard @ new_refs[j].vectors.T).max())
    lab = np.array([si for si, _, _ in ok])
    off = ~np.eye(n, dtype=bool) & ~np.isnan(pair)
    gen_m, imp_m = off & (lab[:, None] == lab[None, :]), off & (lab[:, None] != lab[None, :])
    n_eer, n_eer_t = eer(pair[gen_m], pair[imp_m])
    p_eer, _ = eer(pair_prev[gen_m], pair_prev[imp_m])
    h_eer, _ = eer(pair_heard[gen_m], pair_heard[imp_m])
    say(f"    shipped scoring (each utterance as a query vs every other as a reference, both orders): "
        f"EER {_pct6(n_eer)} at {n_eer_t:.3f} ({int(gen_m.sum())} / {int(imp_m.sum())} trials); without the "
        f"denoised query rows: {_pct6(h_eer)}; previous enrolment ({', '.join(PREVIOUS_REF_CONDITIONS)}), no "
        f"denoised rows: {_pct6(p_eer)}")

    # ---- talent protocol: enrol the first 3 utterances, query the other 7 under conditions
    enrol_clips = [AudioClip(np.concatenate(audio[s][:3]), SR) for s in speakers]
    plain_enrol = [e.vectors for e in plain.embed_references(enrol_clips)]
    new_enrol = [e.vectors for e in det.embed_references(enrol_clips)]
    sample_enrol = [np.vstack([e.vectors for e in plain.embed_references([AudioClip(a, SR) for a in audio[s][:3]])
                               if not e.empty]) for s in speakers]
    centroid_enrol = [(m.mean(0) / np.linalg.norm(m.mean(0)))[None] for m in sample_enrol]
    enrol_speech = ", ".join(f"{v.size / SR:.0f}" for v in (np.concatenate(audio[s][:3]) for s in speakers))
    pool = {s: np.concatenate(audio[s][3:]) for s in speakers}
    beds, bed_name = music_beds(music_dir, 30.0)
    noise = np.random.default_rng(1).standard_normal(int(60 * SR)).astype(np.float32)
    conditions: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
        "clean": lambda x, k: x,
        "white noise 10 dB": lambda x, k: _mix(x, np.roll(noise, 7919 * k), 10.0),
        "music 10 dB": lambda x, k: _mix(x, beds[k % len(beds)], 10.0),
        "music 0 dB": lambda x, k: _mix(x, beds[k % len(beds)], 0.0),
        "room reverb 0.7 s": lambda x, k: room(x, seed=1000 + k),
        "phone 8 kHz": lambda x, k: _phone(x),
        "MP3 32 kbit/s": lambda x, k: _mp3(x),
        "Ogg Vorbis": lambda x, k: _ogg(x),
    }
    durations = (3.0, 5.0, 10.0)
    if quick:
        conditions = {k: v for k, v in conditions.items() if k in
                      ("clean", "white noise 10 dB", "music 10 dB", "room reverb 0.7 s", "phone 8 kHz")}
        durations = (5.0,)
    say("")
    say(f"  talent protocol: enrolment = first 3 utterances per speaker ({enrol_speech} s); queries cut from the "
        f"other 7 (concatenated) every d/2 s for d = {', '.join(f'{d:g}' for d in durations)} s; music: {bed_name}")
    queries: list[_Query] = []
    t_q, audio_s = 0.0, 0.0
    for c, fn in conditions.items():
        for d in durations:
            batch, owners = [], []
            for si, s in enumerate(speakers):
                m = int(d * SR)
                for k, st in enumerate(range(0, pool[s].size - m + 1, m // 2)):
                    batch.append(AudioClip(fn(pool[s][st: st + m], si * 1000 + k), SR))
                    owners.append(si)
            t0 = time.perf_counter()
            qs = probe.embed_queries(batch)
            t_q += time.perf_counter() - t0
            audio_s += sum(cl.duration for cl in batch)
            for si, q in zip(owners, qs):
                pooled = np.asarray(q.extra.get("segment_mean", np.zeros(q.vectors.shape[0], bool)), bool)
                dn = np.asarray(q.extra.get("denoised", np.zeros(q.vectors.shape[0], bool)), bool)
                queries.append(_Query(si, c, d, q.vectors, ~pooled & ~dn, dn))

    def cohort(a: int, b: int) -> np.ndarray:
        # leave-speaker-out: never either trial speaker, always S - 2 speakers (a genuine trial drops the next one)
        drop = {a, b} if a != b else {a, (a + 1) % S}
        return utt[~np.isin(spk, list(drop))]

    # lever -> (query rows, reference rows per talent, AS-norm?)
    levers: dict[str, tuple[str, list[np.ndarray], bool]] = {
        "plain (baseline)": ("windows", plain_enrol, False),
        "+ segment means": ("all", plain_enrol, False),
        "+ 3 samples, max": ("windows", sample_enrol, False),
        "+ 3 samples, centroid": ("windows", centroid_enrol, False),
        "+ AS-norm (3-speaker cohort)": ("windows", plain_enrol, True),
    }
    if prev_rows != list(range(new_enrol[0].shape[0])):  # the enrolment before the shipped one, from its rows
        levers[PREVIOUS_LEVER] = ("windows", [e[prev_rows] for e in new_enrol], False)
    levers.update({
        "+ denoised query rows": ("denoised", plain_enrol, False),
        "+ multi-condition enrolment": ("windows", new_enrol, False),
        "+ multi-condition + segment means": ("all", new_enrol, False),
        "+ multi-condition + denoised rows": ("denoised", new_enrol, False),
    })
    shipped = ("+ multi-condition + denoised rows" if det.denoised_rows else
               "+ multi-condition + segment means" if det.segment_means else "+ multi-condition enrolment")
    before_denoise = "+ multi-condition + segment means" if det.segment_means else "+ multi-condition enrolment"
    if S < 4:
        levers.pop("+ AS-norm (3-speaker cohort)")
    owners = np.array([q.speaker for q in queries])
    q_conditions = [q.condition for q in queries]
    results: dict[str, dict] = {}
    for name, (rows_kind, refs, norm) in levers.items():
        row_gen, row_imp, q_score = [], {c: [] for c in conditions}, []
        for q in queries:
            # windows: as heard; all: + segment means; denoised: + the windows after RNNoise (the shipped rows)
            Q = q.rows[q.window | (q.denoised if rows_kind == "denoised" else ~q.denoised if rows_kind == "all"
                                   else np.zeros_like(q.window))]
            best = np.full(S, -np.inf)
            if Q.shape[0]:
                for t in range(S):
                    s = Q @ refs[t].T
                    if norm:
                        s = _as_norm(s, Q, refs[t], cohort(q.speaker, t))
                    per_row = s.max(axis=1)
                    best[t] = per_row.max()
                    (row_gen.extend if t == q.speaker else row_imp[q.condition].extend)(per_row.tolist())
            q_score.append(best)
        all_imp = np.concatenate([np.asarray(v) for v in row_imp.values()])
        # The stored thresholds hold per query (a query's best row against a talent's best row is one
        # trial, as the search reports it); the per-row ones, the earlier rule, stay as a baseline column.
        q_imp = query_impostors(np.stack(q_score), owners, q_conditions)
        q_imp_all = np.concatenate(list(q_imp.values()))
        t_review, t_block = stricter_threshold(q_imp, 0.01), stricter_threshold(q_imp, 0.001)
        r_review, r_block = stricter_threshold(row_imp, 0.01), stricter_threshold(row_imp, 0.001)
        table = {}
        for c in conditions:
            for d in durations:
                sel = [i for i, q in enumerate(queries) if q.condition == c and q.duration == d]
                g = np.array([q_score[i][queries[i].speaker] for i in sel])
                im = np.array([v for i in sel for t, v in enumerate(q_score[i]) if t != queries[i].speaker])
                g, im = np.nan_to_num(g, neginf=-1e3), np.nan_to_num(im, neginf=-1e3)
                e, _ = eer(g, im)
                own = thr(im, 0.01)
                table[f"{c} {d:g}s"] = {"queries": int(g.size), "impostor_pairs": int(im.size), "eer": round(e, 4),
                                        "tar_at_1pct_far": round(rate(g, own), 4),
                                        "tar_review": round(rate(g, t_review), 4),
                                        "tar_block": round(rate(g, t_block), 4),
                                        "far_review": round(rate(im, t_review), 4),
                                        "far_block": round(rate(im, t_block), 4),
                                        "tar_row_review": round(rate(g, r_review), 4),
                                        "far_row_review": round(rate(im, r_review), 4)}
        results[name] = {"review": t_review, "block": t_block, "row_review": r_review, "row_block": r_block,
                         "table": table, "genuine_rows": len(row_gen), "impostor_rows": int(all_imp.size),
                         "impostor_queries": int(q_imp_all.size),
                         "far_reached": {"review": round(rate(q_imp_all, t_review), 5),
                                         "block": round(rate(q_imp_all, t_block), 5),
                                         "clean_review": round(rate(q_imp["clean"], t_review), 5),
                                         "clean_block": round(rate(q_imp["clean"], t_block), 5),
                                         "row_review": round(rate(q_imp_all, r_review), 5),
                                         "row_block": round(rate(q_imp_all, r_block), 5)}}

    d_main = 5.0 if 5.0 in durations else durations[0]
    say(f"  levers, one at a time against the plain detector, {d_main:g} s queries. Cell: TAR at the lever's "
        f"calibrated review threshold (1 % FAR per query, stricter of clean-only and pooled) / EER of the "
        f"condition / TAR at 1 % FAR of that condition alone")
    header = ["lever", "review"] + list(conditions)
    body = []
    for name, r in results.items():
        cells = [name, f"{r['review']:.4f}"]
        for c in conditions:
            v = r["table"][f"{c} {d_main:g}s"]
            cells.append(f"{cpct(v['tar_review'])} / {cpct(v['eer'])} / {cpct(v['tar_at_1pct_far'])}")
        body.append(cells)
    say(format_table(header, body))
    n_per = {c: results[shipped]["table"][f"{c} {d_main:g}s"] for c in conditions}
    say(f"  ({', '.join(f'{c}: {v['queries']} genuine / {v['impostor_pairs']} impostor query-talent pairs' for c, v in list(n_per.items())[:1])}"
        f" per condition; {S * (S - 1) // 2} speaker pairs: a 1 % FAR point here is set by the closest pair or two)")

    best = results[shipped]
    t_review, t_block = best["review"], best["block"]
    fr = best["far_reached"]
    say("")
    say(f"  shipped scoring ({shipped.lstrip('+ ')}): review {t_review:.4f} / block {t_block:.4f} at 1 % / 0.1 % FAR "
        f"per query over {best['impostor_queries']} impostor query-talent pairs (all durations and conditions; FAR "
        f"resolution {100 / best['impostor_queries']:.3f} %); per-query FAR reached: pooled {cpct(fr['review'])} / "
        f"{cpct(fr['block'])}, clean {cpct(fr['clean_review'])} / {cpct(fr['clean_block'])}")
    say(f"    baseline rule (1 % / 0.1 % FAR per window row over {best['impostor_rows']} impostor rows): review "
        f"{best['row_review']:.4f} / block {best['row_block']:.4f}, per-query FAR there {cpct(fr['row_review'])} / "
        f"{cpct(fr['row_block'])}; plain detector per query: {results['plain (baseline)']['review']:.4f} / "
        f"{results['plain (baseline)']['block']:.4f}")
    before = results.get(before_denoise) if before_denoise != shipped else None
    hdr = ["condition", "dur", "EER", "TAR@review", "TAR@block", "FAR@review", "FAR@block", "per-row rule TAR / FAR"]
    if before:
        hdr.append(f"no denoised rows TAR@review ({before['review']:.4f})")
    hdr.append("plain TAR@review")
    body = []
    for c in conditions:
        for d in durations:
            v, p = best["table"][f"{c} {d:g}s"], results["plain (baseline)"]["table"][f"{c} {d:g}s"]
            cells = [c, f"{d:g} s", cpct(v["eer"]), cpct(v["tar_review"]), cpct(v["tar_block"]),
                     cpct(v["far_review"]), cpct(v["far_block"]), f"{cpct(v['tar_row_review'])} / {cpct(v['far_row_review'])}"]
            if before:
                cells.append(cpct(before["table"][f"{c} {d:g}s"]["tar_review"]))
            body.append(cells + [cpct(p["tar_review"])])
    say(format_table(hdr, body))

    # ---- speed: the talent queries, then one long file
    ref_audio_s = sum(a.size for v in audio.values() for a in v) / SR
    speed = {"query_x_realtime": audio_s / t_q, "plain_reference_x_realtime": ref_audio_s / t_ref}
    ref_clips = [AudioClip(a, SR) for s in speakers for a in audio[s][:3]]
    ref_s = sum(c.duration for c in ref_clips)
    previous = VoiceDetector(Settings())
    previous.ref_conditions, previous.segment_means = PREVIOUS_REF_CONDITIONS, False
    for key, d_ in (("reference_x_realtime", det), ("previous_reference_x_realtime", previous)):
        t0 = time.perf_counter()
        d_.embed_references(ref_clips)
        speed[key] = ref_s / (time.perf_counter() - t0)
    say("")
    say(f"  speed (1 thread): queries {speed['query_x_realtime']:.0f}x real time ({audio_s:.0f} s of audio), "
        f"references {speed['reference_x_realtime']:.0f}x ({len(det.ref_conditions)} degraded copies of up to 60 s "
        f"each; previous enrolment, {len(PREVIOUS_REF_CONDITIONS)} copies: "
        f"{speed['previous_reference_x_realtime']:.0f}x; plain: {speed['plain_reference_x_realtime']:.0f}x)")
    minutes = long_minutes
    n = int(minutes * 60 * SR)
    long = np.zeros(n, np.float32)  # talk with 0.7 s pauses, repeated, over the music bed at 15 dB
    talk = [a for s in speakers for a in audio[s]]
    pos, k = 0, 0
    while pos < n:
        a = talk[k % len(talk)][: n - pos]
        long[pos: pos + a.size] = a
        pos += a.size + int(0.7 * SR)
        k += 1
    bed = beds[0]
    gain = math.sqrt(float(np.mean(np.square(long[: 600 * SR]))) / (float(np.mean(np.square(bed))) * 10 ** 1.5))
    for i in range(0, n, bed.size):
        long[i: i + bed.size] += gain * bed[: n - i]
    measured = reset_peak_rss()
    before = peak_rss_since_reset_mib()
    t0 = time.perf_counter()
    q = det.embed_queries([AudioClip(long, SR)])[0]
    dt = time.perf_counter() - t0
    peak = peak_rss_since_reset_mib() - before if measured else float("nan")
    speed.update({"long_file_minutes": minutes, "long_file_seconds": round(dt, 1),
                  "long_file_rows": q.vectors.shape[0], "long_file_extra_rss_mb": round(peak, 1)})
    say(f"  {minutes:.0f}-minute file (speech with pauses over music at 15 dB): {dt:.1f} s "
        f"({minutes * 60 / dt:.0f}x real time), {q.vectors.shape[0]} rows; note: {q.note!r}")
    say(f"    memory: peak RSS rose {peak:.0f} MB above the {before:.0f} MB before the call "
        f"(the clip itself: {long.nbytes / 2**20:.0f} MB)")

    out.model_id = det.model_id
    lever_summary = {name: {"review": r["review"], **{c: r["table"][f"{c} {d_main:g}s"]["tar_review"] for c in conditions}}
                     for name, r in results.items()}
    out.entry = {
        "metric": "cosine",
        "final": {"block": t_block, "review": t_review},
        "ideation": {"block": t_block, "review": t_block},
        "measured": {
            "source": f"benchmarks/likeness.py on {folder.name}/ ({S} speakers, {n_utts} utterances)",
            "score": "cosine, max over query rows ("
                     + ("3 s speech windows and one mean row per speech segment of 2+ windows" if det.segment_means
                        else "3 s speech windows") + ") and reference rows (the enrolment's clean embedding, and "
                     "the clean embedding averaged with its embedding under each of " + ", ".join(det.ref_conditions)
                     + ")",
            "shipped": shipped,
            "protocol": "enrolment = first 3 utterances of a speaker; queries of 3/5/10 s cut every d/2 s from the other "
                        "7; threshold = stricter of clean-only and pooled 1 %/0.1 % FAR per query (a query's best row "
                        "against an other speaker's best row is one impostor trial) over durations "
                        + ", ".join(f"{d:g}" for d in durations) + " s and conditions "
                        + ", ".join(conditions) + f"; music beds: {bed_name}",
            "threshold_unit": "query",
            "far_reached": best["far_reached"],
            "per_row_rule": {"review": best["row_review"], "block": best["row_block"],
                             "note": "1 %/0.1 % FAR per window row (the rule before); far_reached.row_* is the "
                                     "per-query FAR it gave"},
            "previous_enrolment": ({"ref_conditions": list(PREVIOUS_REF_CONDITIONS),
                                    "review": results[PREVIOUS_LEVER]["review"],
                                    "block": results[PREVIOUS_LEVER]["block"],
                                    "utterance_eer": round(p_eer, 4),
                                    "queries_5s_tar_review": {c: results[PREVIOUS_LEVER]["table"][f"{c} {d_main:g}s"]
                                                              ["tar_review"] for c in conditions}}
                                   if PREVIOUS_LEVER in results else None),
            "without_denoised_rows": ({"lever": before_denoise, "review": results[before_denoise]["review"],
                                       "block": results[before_denoise]["block"], "utterance_eer": round(h_eer, 4),
                                       "queries_5s_tar_review": {c: results[before_denoise]["table"]
                                                                 [f"{c} {d_main:g}s"]["tar_review"]
                                                                 for c in conditions}}
                                      if before_denoise != shipped else None),
            "levers_5s_tar_at_review": lever_summary,
            "as_norm": "leave-speaker-out cohort: a trial's cohort is the clean utterances of the S-2 speakers that are "
                       "neither trial speaker (genuine trials drop one more), so 3 speakers here; measured, not shipped",
            "genuine_rows": best["genuine_rows"], "impostor_rows": best["impostor_rows"],
            "impostor_queries": best["impostor_queries"],
            "far_resolution": round(1 / best["impostor_queries"], 6),
            "speaker_pairs": S * (S - 1) // 2,
            "utterance_eer_plain": round(u_eer, 4), "utterance_eer": round(n_eer, 4),
            "queries": best["table"],
            "speed": {k: (round(v, 2) if isinstance(v, float) else v) for k, v in speed.items()},
        },
    }
    return out


# =============================================================== calibration file


# =============================================================== main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=Path, default=SHARED / "faces")
    ap.add_argument("--voices", type=Path, default=SHARED / "voices")
    ap.add_argument("--music", type=Path, default=SHARED / "music")
    ap.add_argument("--quick", action="store_true", help="fewer photos, transforms, queries and conditions")
    ap.add_argument("--skip-faces", action="store_true")
    ap.add_argument("--skip-voices", action="store_true")
    ap.add_argument("--long-minutes", type=float, default=None,
                    help="length of the long-file speed test (default 60, 10 with --quick)")
    ap.add_argument("--compare-cnn", action="store_true", help="also time the MMOD CNN face detector (slow)")
    ap.add_argument("--write-calibration", nargs="?", type=Path, const=Settings().calibration, default=None,
                    metavar="PATH", help="merge thresholds into the calibration file (default: the package's)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    entries: dict[tuple[str, str], dict] = {}
    if not args.skip_faces:
        if not args.faces.is_dir():
            print(f"faces: {args.faces} not found; skipped")
        else:
            r = run_faces(args.faces, args.quick, args.compare_cnn)
            print("\n".join(r.lines), flush=True)
            entries[("image.face", r.model_id)] = r.entry
            print()
    if not args.skip_voices:
        if not args.voices.is_dir():
            print(f"voices: {args.voices} not found; skipped")
        else:
            minutes = args.long_minutes if args.long_minutes is not None else (10.0 if args.quick else 60.0)
            r = run_voices(args.voices, args.music, args.quick, minutes)
            print("\n".join(r.lines), flush=True)
            entries[("audio.voice", r.model_id)] = r.entry
            print()
    if args.write_calibration and entries:
        version = merge_calibration(args.write_calibration, entries, "likeness",
                                    "; ".join(e["measured"]["source"] for e in entries.values()))
        print(f"calibration written to {args.write_calibration} (version {version}): "
              + ", ".join(f"{d}/{m}" for d, m in entries))
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
