"""Peak memory of checking images that declare huge pictures (issue 15, item 10).

A 1.4 MB all-zero PNG can declare 22000 x 22000 pixels. Each case runs in a fresh Python
process and prints its peak RSS (``ru_maxrss``), against a baseline measured in the same run:
the decode the scanner used before (full decode, a full-size EXIF copy, RGB conversion, then a
thumbnail).

    .venv/bin/python -m benchmarks.memory_limits            # 22000^2, about a minute on 2 cores
    .venv/bin/python -m benchmarks.memory_limits --side 12000
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from benchmarks.common import cli
from benchmarks.common.data import REPO_ROOT

CASES = {
    "baseline: full decode + EXIF copy + RGB + thumbnail (the old decode)": """
from PIL import Image, ImageOps
Image.MAX_IMAGE_PIXELS = None
img = Image.open(PATH); img.load(); img = ImageOps.exif_transpose(img).convert("RGB"); img.thumbnail((2048, 2048))
print(json.dumps({"result": f"decoded to {img.size}"}))
""",
    "decode_image, default max_pixels (512 MP)": """
from scanner.media.image import decode_image
img = decode_image(open(PATH, "rb").read(), 512_000_000)
print(json.dumps({"result": f"decoded to {img.size}"}))
""",
    "decode_image, service max_pixels (100 MP)": """
from scanner.errors import MediaError
from scanner.media.image import decode_image
try:
    decode_image(open(PATH, "rb").read(), 100_000_000); r = "decoded"
except MediaError as exc:
    r = "refused: " + str(exc)[:90]
print(json.dumps({"result": r}))
""",
    "scanner check (PDQ), default settings": """
from scanner.api import Scanner
from scanner.config import Settings
ws = Path(WORK)
s = Scanner(Settings(catalog=ws / "c1" / "catalog.db", index_dir=ws / "c1" / "idx", detectors=("image.pdq",)))
r = s.check(PATH)
print(json.dumps({"result": f"verdict {r.verdict.value}" + (f" ({r.error[:80]})" if r.error else "")}))
""",
    "folder scan of two such files (PDQ), default settings": """
import shutil
from scanner.api import Scanner
from scanner.config import Settings
from scanner.media.budget import DECODES
ws = Path(WORK); folder = ws / "two"; folder.mkdir(exist_ok=True)
for n in ("a.png", "b.png"):
    if not (folder / n).exists(): shutil.copy(PATH, folder / n)
s = Scanner(Settings(catalog=ws / "c2" / "catalog.db", index_dir=ws / "c2" / "idx", detectors=("image.pdq",)))
rs = list(s.scan([folder]))
print(json.dumps({"result": ", ".join(r.verdict.value for r in rs) + f"; reserved at most {DECODES.peak / 1e9:.2f} GB at once"}))
""",
}


def zero_png(path: Path, side: int) -> int:
    """An all-zero RGB PNG of ``side`` x ``side``, streamed (never held in memory); returns its size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * side)  # filter byte 0, then black pixels
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)))
        out = bytearray()
        for _ in range(side):
            out += comp.compress(row)
            if len(out) > 1 << 20:
                fh.write(chunk(b"IDAT", bytes(out)))
                out.clear()
        out += comp.flush()
        fh.write(chunk(b"IDAT", bytes(out)) + chunk(b"IEND", b""))
    return path.stat().st_size


RUNNER = """
import json, sys, time
from pathlib import Path
from benchmarks.common.memory import peak_rss_mib
PATH, WORK = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
{code}
print(json.dumps({{"peak_mb": peak_rss_mib(), "seconds": time.perf_counter() - t0}}))
"""


def run_case(code: str, png: Path, work: Path) -> dict:
    # from the repository root, so that the fresh interpreter imports benchmarks.common
    proc = subprocess.run([sys.executable, "-c", RUNNER.format(code=code), str(png), str(work)],
                          capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
    if proc.returncode != 0:
        return {"result": "failed: " + proc.stderr.strip().splitlines()[-1][:120], "peak_mb": float("nan"),
                "seconds": float("nan")}
    out: dict = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            out.update(json.loads(line))
    return out


def main() -> None:
    ap = cli.parser(__doc__, raw=True)
    ap.add_argument("--side", type=int, default=22000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "zeros.png"
        t0 = time.perf_counter()
        size = zero_png(png, args.side)
        print(f"{args.side}x{args.side} all-zero RGB PNG: {size / 1e6:.2f} MB on disk "
              f"({args.side ** 2 / 1e6:.0f} MP; made in {time.perf_counter() - t0:.1f} s); cores: {os.cpu_count()}")
        print(f"{'case':<72} {'peak RSS':>10} {'time':>8}  result")
        for name, code in CASES.items():
            r = run_case(code, png, Path(tmp))
            print(f"{name:<72} {r['peak_mb']:>7.0f} MB {r['seconds']:>7.1f}s  {r['result']}", flush=True)


if __name__ == "__main__":
    main()
