"""Whole-scan throughput against the models alone, and against a naive per-file loop, same run.

    .venv/bin/python -m benchmarks.throughput            # from the repo root, on ../shared/data
    .venv/bin/python -m benchmarks.throughput --images 24 --audio 4 --videos 2 --device cpu
    .venv/bin/python -m benchmarks.throughput --frames-1080p 256 --device cuda   # GPU check

A mixed delivery is drawn from ``--data`` (default ``../shared/data``): images of several
sizes from every image folder (works, characters, stamps, scenes, faces), resized copies of
a few registered works, short H.264 clips made from its images, and music and speech files.
A few works, two music tracks and two talents (a photo and a voice each) are registered, so
every default detector (``Settings().detectors``) has an index and does its query work.
Then, each in a fresh subprocess (so its peak RSS is its own; model loading and index
building happen before the clock starts):

* ``model``: every asset decoded first (untimed: files read, images decoded and resized,
  video frames sampled, audio decoded), then only ``embed_queries`` + ``search`` of every
  live detector, batched as the scan batches them: the rate the models allow; run before and
  after ``pipeline`` and the mean time used, so a load that changes during the run (other jobs
  on a shared machine) moves both sides of the ratio;
* ``pipeline``: ``Scanner.scan`` over each modality's files and over the whole folder, with
  the decode-ahead pipeline (``scanner/media/prefetch.py``);
* ``sequential``: the same whole-folder scan with decode-ahead off (decode, then search);
* ``naive``: ``Scanner.check(file)`` one file at a time.

Prints per modality the model-only rate, the end-to-end rates and their ratio to the
model-only rate, peak RSS per mode, CPU seconds and the load average per mode (a low ratio
with a CPU-time ratio near 1 means other jobs took the cores, not that the pipeline adds work),
and as its last line, for the whole mixed folder::

    efficiency E (end-to-end R assets/s, model-only M assets/s)

Figures, 2026-12-01, default sizes (29 assets: 23 images, 2 videos of 8 s, 4 audio files),
default detectors (pdq, sscd, local, face, fingerprint, voice), this 2-core machine shared with
about eight other jobs; every figure against the model-only rate of the same run::

    run                            load (1 min)  model-only  end-to-end  efficiency  CPU-time ratio
    model-only once, first         0.6 -> 9.6          0.70        0.55        0.78               -
    model-only once, first         8.2 -> 9.7          0.50        0.48        0.96            0.97
    model-only before and after    7.9 -> 10.7         0.50        0.48        0.96            0.90
    model-only before and after   10.5 -> 11.7         0.42        0.40        0.95            0.96

(assets/s; naive per-file loop 0.64-1.03x, decode-then-search 0.65-1.08x of the same model
rate; peak RSS about 1.2 GB in every mode; pipeline and sequential results identical.) The
low run is the load, not the pipeline: its model-only mode ran while the machine was still
quiet (load 0.6) and the scan modes at load 9, and the CPU seconds of the scan are within
3-10 % of the models' alone (decode, hashing and result writing are that small next to the
face, local-feature and copy-descriptor models). Hence the model-only mode now runs before and
after the pipeline (the two differ by up to 20 % on this machine). Thread counts, checked:
torch 2 (1 in the voice model), onnxruntime 2 intra-op, OpenCV 2, OpenBLAS 2, decode pool 2
(``min(8, cores)``) plus the decode-ahead thread; the CPU-time ratio shows no work lost to them.
With no idle core (load 8-12 on 2 cores) decode-ahead cannot hide the decode, so the
decode-then-search loop is as fast within noise; its gain needs a core the models leave free.

Since 2026-12-02 a scan runs its one-thread detectors (face, voice) beside the others
(``scanning.SIDE_BY_SIDE``) while the model-only mode still runs every detector one after another,
so the efficiency can pass 1. Same defaults, load 1.1-2.2::

    model-only 1.90 / 1.75 (before / after), end-to-end 2.38 assets/s: efficiency 1.30
    (images 2.06 -> 2.82, video 0.61 -> 0.62, audio 2.73 -> 2.49; naive loop 2.05, decode-then-search
    2.15; peak RSS 1.33 GB model-only, 1.46 GB pipeline; CPU-time ratio 1.03)

(An earlier version ran any two detectors side by side: efficiency 1.18 at load 1.7-2.4, 1.22 with
four at load 1.2-2.7.)

``--frames-1080p N`` instead times N 1920x1080 JPEG frames through decode -> image.sscd ->
search (end to end with ``Scanner.scan``, and model-only on decoded frames); ``--device``
is passed to the detectors (``cuda`` needs onnxruntime-gpu, see ``benchmarks/gpu_check.sh``).
Index search scaling with catalog size is ``benchmarks/index_scale.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import cli
from benchmarks.common.data import REPO_ROOT, media_files
from benchmarks.common.memory import peak_rss_mib

IMAGE_DIRS = ("images", "characters", "stamps", "scenes", "faces")
KINDS = ("image", "video", "audio")


# =============================================================== the delivery


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return media_files(folder, suffixes, recursive=True)


def build(root: Path, data: Path, n_images: int, n_videos: int, n_audio: int, seed: int) -> dict:
    """Deliverables under ``root/deliv/{image,video,audio}`` and a registered catalog; returns counts."""
    from PIL import Image

    rng = random.Random(seed)
    deliv = {k: root / "deliv" / k for k in KINDS}
    for d in deliv.values():
        d.mkdir(parents=True)
    works_dir = root / "works"
    works_dir.mkdir()
    pools = {d: _files(data / d, (".jpg", ".jpeg", ".png")) for d in IMAGE_DIRS if (data / d).is_dir()}
    if not pools:
        sys.exit(f"no images under {data} (folders {', '.join(IMAGE_DIRS)}); pass --data")
    works = rng.sample(pools.get("images") or next(iter(pools.values())), 6)
    for w in works:
        shutil.copy(w, works_dir / w.name)
    taken = 0
    per_dir = max(1, n_images // len(pools))
    for name, files in pools.items():  # several sizes and kinds, a few from each folder
        for p in rng.sample(files, min(per_dir, len(files))):
            if taken < n_images:
                shutil.copy(p, deliv["image"] / f"{name}_{p.name}")
                taken += 1
    for i, w in enumerate(works[:3]):  # copies that must be found
        img = Image.open(w).convert("RGB")
        img.resize((img.width // 2, img.height // 2)).save(deliv["image"] / f"copy_{i}.jpg", quality=80)
        taken += 1
    video_seconds = 0.0
    if n_videos:
        import av

        stills = [p for files in pools.values() for p in files]
        for v in range(n_videos):
            path, seconds, fps = deliv["video"] / f"clip_{v}.mp4", 8.0, 25
            with av.open(str(path), "w") as out:
                vs = out.add_stream("h264", rate=fps)
                vs.width, vs.height, vs.pix_fmt = 640, 360, "yuv420p"
                shots = [Image.open(p).convert("RGB").resize((640, 360)) for p in rng.sample(stills, 4)]
                for i in range(int(seconds * fps)):
                    for pkt in vs.encode(av.VideoFrame.from_image(shots[min(3, int(i / fps / 2))])):
                        out.mux(pkt)
                for pkt in vs.encode():
                    out.mux(pkt)
            video_seconds += seconds
    music = _files(data / "music", (".ogg", ".flac", ".mp3", ".wav")) if (data / "music").is_dir() else []
    voices = _files(data / "voices", (".flac", ".wav", ".ogg")) if (data / "voices").is_dir() else []
    music = [p for p in music if p.stat().st_size < 500_000] or music  # short tracks keep the run short
    audio = rng.sample(music, min(len(music), (n_audio + 1) // 2)) + rng.sample(voices, min(len(voices), n_audio // 2))
    for p in audio:
        shutil.copy(p, deliv["audio"] / p.name)
    # catalog: works, two of the music tracks, two talents (one face photo and one voice each)
    from scanner.api import Scanner

    s = Scanner(_settings(root, "cpu"))
    s.add_reference(sorted(works_dir.iterdir()), rights_holder="bench")
    s.add_reference(audio[:2], rights_holder="bench")
    faces = pools.get("faces", [])
    talents = 0
    for i, photo in enumerate(f for f in faces if "img" in f.name):
        if talents == 2:
            break
        try:
            s.add_talent(f"Talent {talents}", photos=[photo], voices=voices[len(voices) - 1 - i:][:1])
            talents += 1
        except Exception:  # noqa: BLE001 - a photo with several faces is refused; try the next
            continue
    s.build_index()
    placeholders = write_calibration(root, s)
    counts = {k: sum(1 for _ in deliv[k].iterdir()) for k in KINDS}
    return {**counts, "video_seconds": video_seconds, "talents": talents, "works": len(works) + 2,
            "placeholder_thresholds": placeholders}


PLACEHOLDER = {"hamming": (31, 31), "cosine": (0.95, 0.9), "count": (50, 30), "probability": (0.9, 0.5)}


def write_calibration(root: Path, s) -> list[str]:
    """The package calibration, plus a placeholder for any enabled detector it has no thresholds for.

    Thresholds only decide verdicts, not the work done, so a detector calibrated elsewhere (or
    not yet) is still timed; the detectors given placeholders are printed with the results."""
    from scanner.config import Settings

    data = json.loads(Path(Settings().calibration).read_text())
    missing = []
    for name, det in s.detectors.items():
        models = data.setdefault("detectors", {}).setdefault(name, {})
        if det.model_id not in models:
            block, review = PLACEHOLDER[det.metric.value]
            models[det.model_id] = {"metric": det.metric.value, "final": {"block": block, "review": review},
                                    "ideation": {"block": block, "review": block}, "placeholder": True}
            missing.append(name)
    (root / "calibration.json").write_text(json.dumps(data))
    return missing


def build_frames(root: Path, data: Path, n: int, seed: int) -> dict:
    """``n`` 1920x1080 JPEG frames (from the shared images) and a few of them registered as works."""
    from PIL import Image

    rng = random.Random(seed)
    folder = root / "deliv" / "image"
    folder.mkdir(parents=True)
    stills = [p for d in IMAGE_DIRS if (data / d).is_dir() for p in _files(data / d, (".jpg", ".png"))]
    if stills:
        base = [Image.open(p).convert("RGB").resize((1920, 1080)) for p in rng.sample(stills, min(16, len(stills)))]
    else:  # no shared data on this machine (e.g. a lent GPU box): generated artwork instead
        from scanner.testing.fixtures import artwork

        base = [artwork(70_000 + i).convert("RGB").resize((1920, 1080)) for i in range(16)]
    for i in range(n):
        img = base[i % len(base)].rotate((i // len(base)) * 0.7)
        img.save(folder / f"frame_{i:05d}.jpg", quality=90)
    (root / "works").mkdir()
    for i, img in enumerate(base[:4]):
        img.save(root / "works" / f"work_{i}.jpg", quality=95)
    from scanner.api import Scanner

    s = Scanner(_settings(root, "cpu", ("image.sscd",)))
    s.add_reference(sorted((root / "works").iterdir()), rights_holder="bench")
    s.build_index()
    return {"image": n, "video": 0, "audio": 0, "video_seconds": 0.0, "talents": 0, "works": 4,
            "placeholder_thresholds": write_calibration(root, s)}


def _settings(root: Path, device: str, detectors: tuple[str, ...] | None = None):
    from scanner.config import Settings

    extra = {"detectors": detectors} if detectors else {}
    if (root / "calibration.json").is_file():
        extra["calibration"] = root / "calibration.json"
    return Settings(catalog=root / "catalog.db", index_dir=root / "indexes", device=device, **extra)


# =============================================================== workers (one subprocess each)


def _kind(cand) -> str:
    return Path(cand.path).parent.name


def worker(mode: str, root: Path, device: str, detectors: tuple[str, ...] | None) -> dict:
    """Time one mode; returns seconds per modality (and for the whole folder), counts, peak RSS."""
    import scanner.media.prefetch as prefetch_mod
    from scanner.api import Scanner

    s = Scanner(_settings(root, device, detectors))
    s.build_index()
    deliv = root / "deliv"
    cands = s.list_assets([deliv])
    by_kind = {k: [c for c in cands if _kind(c) == k] for k in KINDS}
    warm = [c for c in by_kind["image"][:2] + by_kind["audio"][:1]]
    list(s.scan(warm))  # models loaded, lazy parts (torch, ONNX sessions) warmed up
    out: dict = {"mode": mode, "n": {k: len(v) for k, v in by_kind.items()}, "seconds": {},
                 "load": [round(os.getloadavg()[0], 2)]}
    cpu0 = _cpu()
    if mode == "model":
        out["seconds"], model_cpu = _model_only(s, by_kind)
        cpu0 = _cpu() - model_cpu  # only the timed model calls, not the decode before them
    elif mode in ("pipeline", "sequential"):
        if mode == "sequential":
            prefetch_mod.DEPTH = 0
        results = {}
        if mode == "pipeline" and sum(1 for cs in by_kind.values() if cs) > 1:
            for k, cs in by_kind.items():
                if cs:
                    t0 = time.perf_counter()
                    results[k] = [r.to_dict() for r in s.scan(cs)]
                    out["seconds"][k] = time.perf_counter() - t0
        t0, cpu0 = time.perf_counter(), _cpu()
        mixed = [r.to_dict() for r in s.scan(cands)]
        out["seconds"]["all"] = time.perf_counter() - t0
        out["verdicts"] = {r["path"]: [r["verdict"], sorted(f["reference_id"] for f in r["findings"])] for r in mixed}
    elif mode == "naive":
        for c in cands:
            t0 = time.perf_counter()
            s.check(c.path)
            k = _kind(c)
            out["seconds"][k] = out["seconds"].get(k, 0.0) + time.perf_counter() - t0
        out["seconds"]["all"] = sum(out["seconds"].values())
    out["cpu_s"] = _cpu() - cpu0  # the whole-folder part: this process's CPU seconds, all threads
    out["load"].append(round(os.getloadavg()[0], 2))
    out["rss_mb"] = peak_rss_mib()
    return out


def _cpu() -> float:
    """CPU seconds (user + system, every thread) this process has used so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _model_only(s, by_kind: dict) -> tuple[dict, float]:
    """Seconds of embed_queries + search per modality on inputs decoded beforehand, and their CPU seconds."""
    from scanner.media.audio import decode_audio
    from scanner.media.video import iter_frames
    from scanner.scanning import VideoAsset

    inputs: dict[str, dict[str, list]] = {k: {"image": [], "audio": []} for k in KINDS}
    for kind, cands in by_kind.items():
        for c in cands:
            d = s._decode(c, {})
            if d.error is not None or d.media is None:
                continue
            if isinstance(d.media, VideoAsset):
                if d.media.info.has_video:
                    inputs[kind]["image"] += [f.image for f in iter_frames(
                        d.media.data, max_seconds=s.settings.max_audio_seconds, max_pixels=s.settings.max_pixels)]
                if getattr(d.media.info, "has_audio", False):
                    inputs[kind]["audio"].append(decode_audio(d.media.data, max_seconds=s.settings.max_audio_seconds))
            else:
                inputs[kind][d.media_type].append(d.media)
    ctx = s._context()
    seconds = {k: 0.0 for k in KINDS}
    cpu = 0.0
    bs = s.settings.batch_size
    for name, det in s.detectors.items():
        index = ctx.indexes[name][0]
        if not len(index):
            continue
        for kind in KINDS:
            items = inputs[kind][det.modality]
            t0, c0 = time.perf_counter(), _cpu()
            for i in range(0, len(items), bs):
                det.search(index, det.embed_queries(items[i:i + bs]))
            seconds[kind] += time.perf_counter() - t0
            cpu += _cpu() - c0
    seconds["all"] = sum(seconds.values())
    return seconds, cpu


def run_worker(mode: str, root: Path, device: str, detectors: tuple[str, ...] | None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.throughput", "--worker", mode, "--root", str(root), "--device", device]
    if detectors:
        cmd += ["--detectors", ",".join(detectors)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    if proc.returncode != 0:
        sys.exit(f"{mode} worker failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# =============================================================== report


def bracket(runs: list[dict]) -> dict:
    """One model-only row from several runs of it: mean seconds and CPU seconds, every load reading,
    the largest peak RSS; ``runs`` keeps the rates of each (printed beside the mean)."""
    seconds = {k: sum(r["seconds"][k] for r in runs) / len(runs) for k in runs[0]["seconds"]}
    return {**runs[0], "seconds": seconds, "cpu_s": sum(r["cpu_s"] for r in runs) / len(runs),
            "load": [x for r in runs for x in r["load"]], "rss_mb": max(r["rss_mb"] for r in runs),
            "runs": [r["seconds"]["all"] for r in runs]}


def report(info: dict, rows: dict, detectors: tuple[str, ...], started: float) -> None:
    model = rows["model"]
    n = {k: model["n"][k] for k in KINDS}
    total = sum(n.values())
    print(f"\n{total} assets: {n['image']} images, {n['video']} videos ({info['video_seconds']:.0f} s), "
          f"{n['audio']} audio files; {info['works']} works and {info['talents']} talents registered; "
          f"detectors {', '.join(detectors)}; {os.cpu_count()} CPUs")
    if info["placeholder_thresholds"]:
        print(f"(no calibrated thresholds for {', '.join(info['placeholder_thresholds'])}: placeholders used; "
              "they change verdicts, not the work timed)")
    print(f"{'modality':9} {'model-only':>11} {'pipeline':>9} {'ratio':>6} {'naive':>8} {'ratio':>6}   (assets/s)")
    for k in KINDS:
        if not n[k]:
            continue
        m = n[k] / max(model["seconds"][k], 1e-9)
        p = n[k] / rows["pipeline"]["seconds"][k]
        v = n[k] / rows["naive"]["seconds"][k]
        print(f"{k:9} {m:11.2f} {p:9.2f} {p / m:6.2f} {v:8.2f} {v / m:6.2f}")
    m_all = total / model["seconds"]["all"]
    line = {mode: total / rows[mode]["seconds"]["all"] for mode in ("pipeline", "sequential", "naive")}
    print(f"{'all':9} {m_all:11.2f} {line['pipeline']:9.2f} {line['pipeline'] / m_all:6.2f} "
          f"{line['naive']:8.2f} {line['naive'] / m_all:6.2f}")
    if len(model.get("runs", [])) > 1:
        print("model-only runs before and after the pipeline: "
              + ", ".join(f"{total / t:.2f}" for t in model["runs"]) + " assets/s (the mean time is used)")
    print(f"whole folder without decode-ahead (decode, then search): {line['sequential']:.2f} assets/s, "
          f"efficiency {line['sequential'] / m_all:.2f}")
    print("peak RSS: " + ", ".join(f"{mode} {r['rss_mb']:.0f} MB" for mode, r in rows.items()))
    # CPU seconds show whether a low ratio is work the pipeline adds or cores other jobs took from it
    print("whole folder CPU s (wall s): " + ", ".join(f"{mode} {r['cpu_s']:.1f} ({r['seconds']['all']:.1f})"
                                                   for mode, r in rows.items()))
    print("load average (1 min) at start/end of each mode: "
          + ", ".join(f"{mode} {'/'.join(map(str, r['load']))}" for mode, r in rows.items()))
    cpu = rows["model"]["cpu_s"] / max(rows["pipeline"]["cpu_s"], 1e-9)
    print(f"CPU-time ratio {cpu:.2f} (model-only CPU s / end-to-end CPU s: where the efficiency tends "
          "when other jobs take the core the decode would overlap on)")
    same = rows["pipeline"]["verdicts"] == rows["sequential"]["verdicts"]
    print(f"pipeline and sequential results identical (verdicts and matched references): {same}")
    print(f"benchmark wall time {time.perf_counter() - started:.0f} s")
    print(f"efficiency {line['pipeline'] / m_all:.2f} (end-to-end {line['pipeline']:.2f} assets/s, "
          f"model-only {m_all:.2f} assets/s)")


def report_frames(rows: dict, device: str) -> None:
    n = rows["model"]["n"]["image"]
    m, p = n / rows["model"]["seconds"]["all"], n / rows["pipeline"]["seconds"]["all"]
    print(f"\n1080p JPEG frames, decode -> image.sscd -> search, device {device}: {n} frames")
    print(f"images/s end to end {p:.1f}, model-only {m:.1f}; peak RSS "
          + ", ".join(f"{mode} {r['rss_mb']:.0f} MB" for mode, r in rows.items()))
    print(f"efficiency {p / m:.2f} (end-to-end {p:.2f} assets/s, model-only {m:.2f} assets/s)")


def add_delivery_args(ap) -> None:
    """``--data``, ``--images``, ``--videos``, ``--audio``: the mixed delivery ``build`` makes."""
    cli.add_data(ap)
    ap.add_argument("--images", type=int, default=24, help="images in the delivery (default 24, plus 3 copies)")
    ap.add_argument("--videos", type=int, default=2, help="8 s H.264 clips (default 2)")
    ap.add_argument("--audio", type=int, default=4, help="music and speech files (default 4)")


def main(argv: list[str] | None = None) -> int:
    ap = cli.parser(__doc__)
    add_delivery_args(ap)
    ap.add_argument("--detectors", default="", help="comma-separated (default: Settings().detectors)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (passed to the detectors)")
    ap.add_argument("--frames-1080p", type=int, default=0, help="time N 1080p JPEG frames through image.sscd")
    cli.add_seed(ap)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    detectors = cli.names(args.detectors) or None
    if args.worker:
        print(json.dumps(worker(args.worker, args.root, args.device, detectors)))
        return 0
    started = time.perf_counter()
    if not args.data.is_dir() and not args.frames_1080p:
        print(f"data folder {args.data} not found; pass --data")
        return 2
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        root = Path(tmp)
        if args.frames_1080p:
            detectors = ("image.sscd",)
            info = build_frames(root, args.data, args.frames_1080p, args.seed)
        else:
            info = build(root, args.data, args.images, args.videos, args.audio, args.seed)
        if detectors is None:
            from scanner.config import Settings

            detectors = tuple(Settings().detectors)
        print(f"delivery built in {time.perf_counter() - started:.0f} s: {info}", flush=True)
        # model-only before and after the pipeline: a load that changes during the run (other jobs on
        # a shared machine) then moves both sides of the ratio, not only the end-to-end one
        modes = ("model", "pipeline") if args.frames_1080p else ("model", "pipeline", "model", "sequential", "naive")
        rows: dict = {}
        model_runs = []
        for mode in modes:
            t0 = time.perf_counter()
            row = run_worker(mode, root, args.device, detectors)
            print(f"  {mode}: {time.perf_counter() - t0:.0f} s", flush=True)
            if mode == "model":
                model_runs.append(row)
                row = bracket(model_runs)
            rows[mode] = row
        if args.frames_1080p:
            report_frames(rows, args.device)
        else:
            report(info, rows, detectors, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
