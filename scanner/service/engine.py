"""The one thread that owns the ``Scanner``: models, indexes and every call into them.

Requests become ``Job``s on a queue. The worker takes the first waiting job, gathers what
else is waiting (up to ``max_batch``, waiting at most ``batch_wait_ms``), and checks the
batch with one ``Scanner.scan`` call per (stage, project) so decoding and embedding are
batched. Torch/FAISS objects are only ever touched from this thread.

Hot swap: every ``scan`` first brings the indexes up to date (``Scanner.build_index``), reloading an index whose
manifest checksum on disk changed into a *new* object; an idle worker also looks every
``index_poll_s`` seconds. A batch keeps the index objects it started with until it ends,
because the next batch only starts after it (one thread).

Ownership of a job's file: the request holds one reference and the worker a second one
while it checks it; whichever lets go last deletes the temp file (or closes the descriptor),
so a request that timed out never pulls the file from under a running check.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import queue
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from scanner.api import AuditLabel, Scanner
from scanner.config import Settings
from scanner.errors import ScannerError
from scanner.index import IndexStore
from scanner.media.files import Candidate
from scanner.service.config import ServiceConfig
from scanner.service.errors import ApiError
from scanner.service.intake import Intake, UploadDir, private_upload_dir
from scanner.types import AssetResult, Stage

log = logging.getLogger("scanner.service")
ScannerFactory = Callable[..., Scanner]  # (settings, caller=...) -> Scanner
_STOP = object()


@dataclass
class Outcome:
    """What the worker hands back: a result with its audit record id, or the error to answer with."""

    result: dict[str, Any] | None = None
    audit_id: int | None = None
    error: ApiError | None = None


class Job:
    """One request's asset on its way through the queue."""

    def __init__(self, intake: Intake, caller: str, stage: Stage, project: str):
        self.intake = intake
        self.caller = caller
        self.stage = stage
        self.project = project
        self.request_id = uuid.uuid4().hex[:16]
        self.future: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
        self.audit_id: int | None = None
        self._lock = threading.Lock()
        self._refs = 1  # the request's
        self._answered = False

    def claim(self) -> bool:
        """Worker: take the job unless its request already gave up."""
        with self._lock:
            if self._refs == 0 or not self.future.set_running_or_notify_cancel():
                return False
            self._refs += 1
            return True

    def release(self) -> None:
        """Let go of the file; the last holder deletes it. The request's release also
        withdraws the job if the worker has not taken it yet."""
        with self._lock:
            self.future.cancel()  # no-op once running or done
            self._refs -= 1
            last = self._refs == 0
        if last:
            self.intake.close()

    def complete(self, outcome: Outcome) -> None:
        """Worker: let go of the file first, then answer, so that the request's own release
        (right after) removes it before the response goes out. Once per claim."""
        if self._answered:
            return
        self._answered = True
        self.release()
        if not self.future.done():
            self.future.set_result(outcome)


class Engine:
    """Worker thread, micro-batcher and admission control around one ``Scanner``."""

    def __init__(self, settings: Settings, config: ServiceConfig, factory: ScannerFactory = Scanner):
        self.settings = settings
        self.config = config
        self._factory = factory
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self.upload_dir: Path | None = None
        self._uploads: UploadDir | None = None
        self.scanner: Scanner | None = None
        self.startup_error: BaseException | None = None
        self.last_error: str | None = None
        self.models: dict[str, dict[str, str]] = {}
        self.serving: dict[str, Any] = {}  # detector -> Manifest of the index in memory
        self.pending = 0
        self.started_at = time.time()
        self.counters = {"checked": 0, "batches": 0, "rejected_busy": 0, "timed_out": 0, "failed": 0}
        self._item_seconds = 0.05  # running estimate of model time per asset, for Retry-After
        self._store = IndexStore(settings.index_dir)

    # ----- life cycle -----------------------------------------------------------------
    def start(self) -> None:
        """Load models and indexes in the worker thread; raise what went wrong there. Idempotent."""
        if self._thread is None:
            self._uploads = private_upload_dir(self.config.temp_parent)  # also clears a killed server's folder
            self.upload_dir = self._uploads.path
            self._thread = threading.Thread(target=self._run, name="scanner-worker", daemon=True)
            self._thread.start()
        self._ready.wait()
        if self.startup_error is not None:
            raise self.startup_error

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        if self._uploads is not None:
            self._uploads.remove()

    @property
    def ready(self) -> bool:
        return (self._ready.is_set() and self.startup_error is None and self._thread is not None
                and self._thread.is_alive() and self.last_error is None)

    # ----- admission --------------------------------------------------------------------
    def admit(self) -> None:
        """Count a request in, or refuse it with 503 + Retry-After when ``max_pending`` are held."""
        with self._lock:
            if self.pending >= self.config.max_pending:
                self.counters["rejected_busy"] += 1
                raise ApiError(503, "busy", f"the server holds {self.pending} requests already; retry later",
                               {"Retry-After": str(self.retry_after())})
            self.pending += 1

    def leave(self) -> None:
        with self._lock:
            self.pending -= 1

    @property
    def queued(self) -> int:
        """Jobs waiting for the worker."""
        return self._queue.qsize()

    def retry_after(self) -> int:
        backlog = self.pending * self._item_seconds
        return int(min(60, max(1, math.ceil(backlog))))

    def submit(self, job: Job) -> None:
        if self._thread is None or not self._thread.is_alive() or self.startup_error is not None:
            raise ApiError(503, "not_ready", "the scanner is not running", {"Retry-After": "30"})
        self._queue.put(job)

    def note_timeout(self) -> None:
        with self._lock:
            self.counters["timed_out"] += 1

    # ----- the worker thread ------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._startup()
        except BaseException as exc:  # noqa: BLE001 - handed to start() in the calling thread
            self.startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self.config.index_poll_s)
            except queue.Empty:
                self._refresh()
                continue
            if first is _STOP:
                break
            batch = [first]
            deadline = time.monotonic() + self.config.batch_wait_ms / 1000.0
            while len(batch) < self.config.max_batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._process(batch)
        while True:  # answer whatever is still queued at shutdown
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP and job.claim():
                job.complete(Outcome(error=ApiError(503, "shutting_down", "the server is shutting down")))

    def _startup(self) -> None:
        scanner = self._factory(self.settings, caller="service")
        self.models = {n: {"model": d.model_label, "model_id": d.model_id, "weights_sha256": d.weights_sha256,
                           "modality": d.modality} for n, d in scanner.detectors.items()}
        scanner.calibration  # noqa: B018 - fail at start, not on the first request
        scanner.build_index()
        for detector in scanner.detectors.values():  # models loaded on first use: now, not on a request
            detector.warm_up()
        self.scanner = scanner
        self._note_indexes()
        log.info("scanner ready: %s", ", ".join(f"{n} [{m['model']}]" for n, m in self.models.items()))

    def _note_indexes(self) -> None:
        self.serving = self.scanner.loaded_indexes() if self.scanner is not None else {}

    def _refresh(self) -> None:
        """Idle: pick up a rebuilt index now rather than on the next request. Only a changed
        manifest (or a failed last attempt) triggers the reload; reading a manifest is cheap."""
        assert self.scanner is not None
        try:
            changed = self.last_error is not None or any(
                (m := self._store.manifest(name)) is not None
                and (name not in self.serving or m.checksum != self.serving[name].checksum)
                for name in self.settings.detectors)
            if changed:
                self.scanner.build_index()
            self.last_error = None
        except ScannerError as exc:
            self.last_error = str(exc)
            log.warning("index refresh failed: %s", exc)
        except Exception:  # noqa: BLE001 - keep serving; health shows it
            self.last_error = "index refresh failed unexpectedly (see the server log)"
            log.exception("index refresh failed")
        self._note_indexes()

    def _process(self, batch: list[Job]) -> None:
        jobs = [j for j in batch if j.claim()]
        if not jobs:
            return
        groups: dict[tuple[Stage, str], list[Job]] = defaultdict(list)
        for job in jobs:
            groups[(job.stage, job.project)].append(job)
        self.counters["batches"] += 1
        for (stage, project), group in groups.items():
            started = time.monotonic()
            try:
                self._scan(group, stage, project)
                self.last_error = None
            except ScannerError as exc:
                self.last_error = str(exc)
                log.warning("check failed: %s", exc)
                err = ApiError(503, "not_ready", f"the scanner cannot check right now: {exc}", {"Retry-After": "1"})
                for job in group:
                    job.complete(Outcome(error=err))
            except Exception:  # noqa: BLE001 - one bad batch must not stop the worker
                log.exception("check failed")
                self.counters["failed"] += len(group)
                err = ApiError(500, "internal_error", "the scanner failed on this request; see the server log")
                for job in group:
                    job.complete(Outcome(error=err))
            finally:
                for job in group:  # no-op for answered jobs; never leave a file or a request hanging
                    job.complete(Outcome(error=ApiError(500, "internal_error", "no result came back for this asset")))
                per_item = (time.monotonic() - started) / len(group)
                self._item_seconds = 0.8 * self._item_seconds + 0.2 * per_item
        self._note_indexes()

    def _scan(self, group: list[Job], stage: Stage, project: str) -> None:
        scanner = self.scanner
        assert scanner is not None
        scanner.settings = replace(self.settings, stage=stage, project=project)  # only this thread reads it
        labels = {job.intake.path: AuditLabel(job.caller, job.intake.label, job.intake.source, job.request_id)
                  for job in group}
        try:
            results = scanner.scan([Candidate(job.intake.path) for job in group], labels=labels)
            for job, result in zip(group, results):
                if result.path != job.intake.path:  # results come back in input order
                    raise RuntimeError(f"result for {result.path!r} where {job.intake.path!r} was expected")
                self.counters["checked"] += 1  # before answering, so a client never sees a stale count
                job.audit_id = labels[job.intake.path].audit_id
                job.complete(Outcome(_relabel(result, job.intake.label), job.audit_id))
        finally:
            scanner.settings = self.settings

    # ----- reporting ----------------------------------------------------------------------
    def index_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.settings.detectors:
            serving = self.serving.get(name)
            try:
                disk = self._store.manifest(name)
                disk_error = None
            except ScannerError as exc:
                disk, disk_error = None, str(exc)
            entry: dict[str, Any] = {
                "serving": _manifest_info(serving),
                "on_disk": _manifest_info(disk),
                "current": bool(serving and disk and serving.checksum == disk.checksum),
            }
            if disk_error:
                entry["error"] = disk_error
            out[name] = entry
        return out


def _manifest_info(m: Any) -> dict[str, Any] | None:
    if m is None:
        return None
    return {"checksum": m.checksum, "count": m.count, "not_indexed": len(m.skipped), "model": m.model,
            "index_type": m.index_type, "created": m.created}


def _relabel(result: AssetResult, label: str) -> dict[str, Any]:
    return replace(result, path=label).to_dict()
