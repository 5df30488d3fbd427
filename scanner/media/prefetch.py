"""Decode the next batch while the current one is embedded and searched.

``Scanner.scan`` works in batches: decode a batch of files (a thread pool: reading, sha256,
image decode and resize, video probing), then run every detector over it and write the
results. Done one after the other, the model waits for every decode and the decoders wait
for every model call. :func:`prefetch` runs the decode of batch ``k + 1`` (and up to
``depth`` batches ahead) on a background thread while the caller embeds batch ``k``.

Why threads and not processes: the heavy parts of a decode (file reads, ``hashlib``, Pillow's
decoders and resamplers, PyAV) release the GIL, and the models (onnxruntime, torch) release it
while they compute, so the two overlap on separate cores; a process pool would pickle every
decoded image back to the parent, which costs about as much as the decode it saves.

The first batches are cut smaller (4, 8, 16... items up to the batch size) so the models
start after a few decodes rather than a whole batch of them; every detector gives the same
result for an item whatever batch it is in (the detector contract), so only timing changes.

Guarantees: items come out in input order, each with its decoded value, the same as the
sequential loop gives (``depth=0`` *is* the sequential loop, with the given batches); at most ``depth``
decoded batches wait in memory besides the one being searched; an exception raised while
decoding comes out at the batch it belongs to; closing the generator early (the caller
stops iterating) stops the background thread after the batch it is on.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Executor
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

DEPTH = 1  # decoded batches kept ready ahead of the one being searched (0: no overlap)
RAMP_FIRST = 4  # items in the first batch; batches then double up to the scan's batch size
_DONE = object()


def prefetch(batches: Iterable[Sequence[T]], decode: Callable[[T], R], pool: Executor,
             depth: int | None = None) -> Iterator[tuple[Sequence[T], list[R]]]:
    """``(batch, [decode(item) for item in batch])`` for each batch, decoded up to ``depth`` batches ahead.

    ``pool`` maps ``decode`` over the items of one batch (as ``Executor.map``);
    ``depth`` defaults to the module's ``DEPTH``.
    """
    depth = DEPTH if depth is None else int(depth)
    if depth <= 0:
        for batch in batches:
            yield batch, list(pool.map(decode, batch))
        return
    batches = _ramped(batches)
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                try:
                    item: object = (batch, list(pool.map(decode, batch)), None)
                except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                    item = (batch, None, exc)
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - the batch iterator itself failed
            put((None, None, exc))
            return
        put(_DONE)

    thread = threading.Thread(target=work, name="scanner-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            batch, decoded, exc = item  # type: ignore[misc]
            if exc is not None:
                raise exc
            yield batch, decoded
    finally:
        stop.set()
        thread.join()


def _ramped(batches: Iterable[Sequence[T]], first: int = RAMP_FIRST) -> Iterator[list[T]]:
    """The same items in the same order, the first batches smaller (``first``, then doubling up to
    the given batch size), so the models start on the first few files while the rest decode
    instead of waiting for a whole first batch."""
    size = 0
    n = first
    buf: list[T] = []
    for batch in batches:
        size = max(size, len(batch))
        buf.extend(batch)
        while buf and len(buf) >= min(n, size):
            k = min(n, size)
            yield buf[:k]
            buf = buf[k:]
            n *= 2
    if buf:
        yield buf
