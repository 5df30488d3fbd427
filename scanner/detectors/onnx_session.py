"""Session options every ONNX Runtime model of the project runs with (SSCD, Basic Pitch, PP-OCR text).

ONNX Runtime's CPU thread pool spins by default: after each operator its worker threads busy-wait for
the next one, and keep a core busy for a while after ``run`` returns. A check runs detectors side by
side (dlib's face finder in a lane of its own, ``scanning``), and a farm node runs several scans, so a
spinning pool takes cores another lane or process could use. Outputs are unchanged: spinning only
decides how an idle worker waits. Measured on the 2-core machine, 1,000 works, one talent, 1280x720
frames, the same queries alternating per query between two warm scanners (``benchmarks/check_latency.py``
has the same-run column): a check 505 ms against 531 ms spinning (no talent 388 / 408 ms); CPU per check
912 / 992 ms and 921 / 935 ms in two ad-hoc runs with wall times 514 / 534 and 518 / 507 ms. Whole scans
of the 16 frames moved both ways (470 / 448 ms per asset in one run, 491 / 542 in another): the effect
is within this machine's noise there.
"""

from __future__ import annotations

import os
from typing import Any

SPINNING = "session.intra_op.allow_spinning"
SPIN_BY_DEFAULT = False  # benchmarks set it to open spinning sessions, the earlier way, as a baseline


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def session_options(threads: int | None = None, spinning: bool | None = None) -> Any:
    """``onnxruntime.SessionOptions``: ``threads`` intra-op threads (default: every available core), one
    inter-op thread, and worker threads that sleep rather than spin when idle (unless ``spinning``;
    default ``SPIN_BY_DEFAULT``)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads or cpu_cores())
    opts.inter_op_num_threads = 1
    spin = SPIN_BY_DEFAULT if spinning is None else spinning
    opts.add_session_config_entry(SPINNING, "1" if spin else "0")
    return opts
