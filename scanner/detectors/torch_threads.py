"""torch's intra-op thread count is one setting for the whole process. Detectors that need their own for a
step (face chips: one thread; voice: its ``threads``) set it for a block and put it back. A scan runs the
detectors of a batch side by side, so these blocks take one process-wide lock: two of them never
interleave their set-and-restore, which could leave the process at the other's count."""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

_LOCK = threading.Lock()


@contextlib.contextmanager
def torch_threads(torch: Any, at_most: int) -> Iterator[None]:
    """Run the block with torch's thread count at most ``at_most`` (at least 1), restored afterwards."""
    with _LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(max(1, min(int(at_most), before)))
        try:
            yield
        finally:
            torch.set_num_threads(before)
