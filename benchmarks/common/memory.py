"""Peak memory of a benchmark process or of one stage of it.

``peak_rss_mib`` is the kernel's high-water mark for the whole process (``ru_maxrss``, KiB on
Linux), which counts native allocations (ONNX, torch, image decoders) that ``tracemalloc`` cannot
see; ``reset_peak_rss`` / ``peak_rss_since_reset_mib`` measure one stage alone where the kernel
allows it; ``traced_peak`` is the Python-heap peak of a block, for code that allocates in Python.
"""

from __future__ import annotations

import resource
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``/proc/self/clear_refs`` 5) so the next peak is one
    stage's alone; False where that is not allowed (then the process peak is all there is)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_since_reset_mib() -> float:
    """Peak resident memory since ``reset_peak_rss`` (``VmHWM``), MiB; the process peak if unreadable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mib()


@dataclass
class TracedPeak:
    """Filled in when the ``traced_peak`` block ends: the Python-heap peak above its start, MiB."""

    mib: float = 0.0


@contextmanager
def traced_peak() -> Iterator[TracedPeak]:
    """``with traced_peak() as p: ...`` then ``p.mib``: the block's peak Python allocation (tracemalloc;
    native buffers not counted). Restores tracemalloc's state afterwards."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    start, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    out = TracedPeak()
    try:
        yield out
    finally:
        _, peak = tracemalloc.get_traced_memory()
        out.mib = max(0, peak - start) / 2**20
        if not was_tracing:
            tracemalloc.stop()
