"""Start-up cost of everyday commands, cold processes, against a bare interpreter in the same run.

    .venv/bin/python -m benchmarks.startup [--repeats N]

Targets (issue 14, on the 2-core development machine): ``scanner --help`` <= 0.3 s and
``scanner check image.png`` with the default detectors <= 1.5 s wall. The check runs against a
workspace with the bundled sample registered (``scanner demo``), so every default image detector
that has references (PDQ, SSCD) loads; no talent is registered, so the face and voice models do not.
Baseline: ``python -c pass`` and ``python -c "import numpy"`` in the same run, so the figures can
be read against what the interpreter alone costs on a loaded machine.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import cli
from benchmarks.common.data import REPO_ROOT as ROOT

SCANNER = [str(Path(sys.executable).with_name("scanner"))]  # the installed console script, as users run it
IMAGE = ROOT / "examples" / "sample" / "deliverables" / "sh010_comp_v003.jpg"


def wall(cmd: list[str], repeats: int) -> float:
    """Median wall seconds of ``cmd`` over ``repeats`` cold runs."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = cli.parser(__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        subprocess.run([*SCANNER, "demo", "--workspace", str(ws)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, cwd=ROOT, check=False)
        where = ["--catalog", str(ws / "catalog.db"), "--index-dir", str(ws / "indexes")]
        rows = [
            ("python -c pass (baseline)", wall([sys.executable, "-c", "pass"], args.repeats), None),
            ("python -c 'import numpy' (baseline)", wall([sys.executable, "-c", "import numpy"], args.repeats), None),
            ("scanner --help", wall([*SCANNER, "--help"], args.repeats), 0.3),
            ("scanner detectors", wall([*SCANNER, "detectors"], args.repeats), None),
            ("scanner check image.png (default detectors)", wall([*SCANNER, "check", *where, str(IMAGE)],
                                                                  args.repeats), 1.5),
        ]
    print(f"{'command':48} {'median s':>9} {'target':>7}")
    for name, t, target in rows:
        print(f"{name:48} {t:9.2f} {('<= %.1f' % target) if target else '':>7}")


if __name__ == "__main__":
    main()
