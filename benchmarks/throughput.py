"""Whole-scan throughput on this machine against a naive one-file-at-a-time loop, same run.

    .venv/bin/python benchmarks/throughput.py [--images 200] [--videos 4] [--audio 6] [--detectors ...]

Builds a synthetic delivery in a temp folder (procedural images, short H.264 clips with an
AAC track, MP3 music), registers a few works, then measures, each in a fresh subprocess so
peak memory is its own:

* ``pipeline``: ``Scanner.scan(folder)`` - decoding in a thread pool, batched embedding and
  batched index search, one scan context;
* ``naive``: ``for f in files: Scanner.check(f)`` - one asset at a time (batch of one), the
  way a script calling the per-asset API in a loop would.

Prints images/s, video seconds per second, audio x real time and peak RSS for both, and the
speed-up. Index search scaling (1k..1M references) is ``benchmarks/index_scale.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build_delivery(root: Path, n_images: int, n_videos: int, n_audio: int) -> dict:
    """Synthetic deliverables and works; returns counts and media seconds."""
    import av
    import numpy as np

    from scanner.testing.audio import encode_audio, synth_music
    from scanner.testing.fixtures import artwork

    works, deliv = root / "works", root / "deliv"
    works.mkdir()
    deliv.mkdir()
    for i in range(10):
        artwork(10_000 + i).save(works / f"work_{i}.jpg", quality=90)
    for i in range(n_images):
        img = artwork(20_000 + i) if i % 10 else artwork(10_000 + i % 10).resize((640, 427))
        img.save(deliv / f"img_{i:04d}.jpg", quality=85)
    video_seconds = 0.0
    for v in range(n_videos):
        path, seconds, fps = deliv / f"clip_{v}.mp4", 20.0, 25
        with av.open(str(path), "w") as out:
            vs = out.add_stream("h264", rate=fps)
            vs.width, vs.height, vs.pix_fmt = 640, 360, "yuv420p"
            shots = [artwork(30_000 + v * 10 + s).resize((640, 360)) for s in range(4)]
            for i in range(int(seconds * fps)):
                frame = av.VideoFrame.from_image(shots[int(i / fps) // 5])
                for p in vs.encode(frame):
                    out.mux(p)
            for p in vs.encode():
                out.mux(p)
        video_seconds += seconds
    audio_seconds = 0.0
    for a in range(n_audio):
        samples = synth_music(40_000 + a, seconds=60.0)
        (deliv / f"music_{a}.mp3").write_bytes(encode_audio(samples, 16000, "mp3"))
        audio_seconds += 60.0
        if a < 3:
            (works / f"song_{a}.flac").write_bytes(encode_audio(samples[: 30 * 16000], 16000, "flac"))
    return {"images": n_images, "videos": n_videos, "video_seconds": video_seconds, "audio": n_audio,
            "audio_seconds": audio_seconds}


WORKER = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from scanner.api import Scanner
from scanner.config import Settings
root, mode = Path({root!r}), {mode!r}
settings = Settings(catalog=root / "catalog.db", index_dir=root / "indexes", detectors=tuple({detectors!r}),
                    clip_model="clip-test-tiny")
s = Scanner(settings)
s.build_index()
files = [c for c in s.list_assets([root / "deliv"])]
kinds = {{}}
t0 = time.perf_counter()
if mode == "pipeline":
    results = list(s.scan(files))
else:
    results = [s.check(c.path) for c in files]
elapsed = time.perf_counter() - t0
by_type = {{}}
for r in results:
    by_type.setdefault(r.media_type, []).append(r.verdict.value)
print(json.dumps({{"elapsed": elapsed, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "verdicts": {{k: sorted(v) for k, v in by_type.items()}}, "n": len(results)}}))
"""


def run_mode(root: Path, mode: str, detectors: list[str]) -> dict:
    code = WORKER.format(repo=str(REPO), root=str(root), mode=mode, detectors=detectors)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--audio", type=int, default=6)
    ap.add_argument("--detectors", default="image.pdq,image.clip,audio.fingerprint")
    args = ap.parse_args()
    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        info = build_delivery(root, args.images, args.videos, args.audio)
        print(f"built delivery in {time.perf_counter() - t0:.1f} s: {info}")
        from scanner.api import Scanner
        from scanner.config import Settings

        s = Scanner(Settings(catalog=root / "catalog.db", index_dir=root / "indexes", detectors=tuple(detectors),
                             clip_model="clip-test-tiny"))
        s.add_reference(sorted((root / "works").iterdir()), rights_holder="bench")
        s.build_index()
        del s
        rows = {}
        for mode in ("naive", "pipeline"):
            rows[mode] = run_mode(root, mode, detectors)
        if rows["naive"]["verdicts"] != rows["pipeline"]["verdicts"]:
            print("WARNING: verdicts differ between modes", rows)
        media_total = info["images"] + info["videos"] + info["audio"]
        print(f"\nWhole scan, {media_total} assets ({info['images']} images, {info['videos']} videos = "
              f"{info['video_seconds']:.0f} s, {info['audio']} audio files = {info['audio_seconds']:.0f} s); "
              f"detectors: {', '.join(detectors)}; CPU, {__import__('os').cpu_count()} cores")
        print(f"{'mode':10} {'seconds':>8} {'assets/s':>9} {'peak RSS':>9}")
        for mode, r in rows.items():
            print(f"{mode:10} {r['elapsed']:8.1f} {r['n'] / r['elapsed']:9.2f} {r['rss_mb']:7.0f} MB")
        print(f"speed-up of the pipeline over the naive loop: {rows['naive']['elapsed'] / rows['pipeline']['elapsed']:.2f}x")
        # per-modality rates from separate pipeline runs over one kind of asset
        print("\nPer modality (pipeline):")
        for kind, pattern in (("images", "img_*"), ("video", "clip_*"), ("audio", "music_*")):
            sub = root / f"only_{kind}"
            sub.mkdir()
            for f in (root / "deliv").glob(pattern):
                (sub / f.name).symlink_to(f)
            code = WORKER.format(repo=str(REPO), root=str(root), mode="pipeline", detectors=detectors).replace(
                'root / "deliv"', f'root / "only_{kind}"')
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if kind == "images":
                print(f"  images: {r['n'] / r['elapsed']:.1f} images/s")
            elif kind == "video":
                print(f"  video:  {info['video_seconds'] / r['elapsed']:.2f} video seconds per second")
            else:
                print(f"  audio:  {info['audio_seconds'] / r['elapsed']:.1f} x real time")
        print(f"benchmark process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
