"""Settings of the HTTP service (the scanner's own settings stay in ``scanner.config``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
SERVICE_MAX_PIXELS = 100_000_000  # default cap for uploads: a batch of bigger images would not fit in memory


@dataclass(frozen=True)
class ServiceConfig:
    """How the service listens, what it accepts and how it queues work.

    ``max_pending`` bounds the requests held at once (receiving, queued or being checked);
    past it requests get 503 with ``Retry-After``. ``max_batch`` requests that are waiting
    together go to the models in one ``Scanner.scan`` call; the worker waits at most
    ``batch_wait_ms`` for a batch to fill. ``index_poll_s``: how often an idle worker looks
    for a rebuilt index on disk (requests always check first).

    Slow clients: a request head (request line and headers) must arrive within
    ``header_timeout_s``, and at most ``max_unfinished_heads_per_client`` connections per client
    address may be sending one at a time (see ``scanner.service.guard``); bodies have
    ``request_timeout_s`` (408), like the whole answer (504).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    allow_roots: tuple[Path, ...] = ()
    require_auth: bool = True
    max_upload_bytes: int = 100 * MiB
    max_batch: int = 16
    batch_wait_ms: float = 2.0
    max_pending: int = 64
    request_timeout_s: float = 60.0
    index_poll_s: float = 5.0
    temp_parent: Path | None = None  # where the private upload folder is made (default: the system temp dir)
    max_field_bytes: int = 4096
    max_json_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0
    max_unfinished_heads_per_client: int = 32

    @property
    def max_connections(self) -> int:
        """uvicorn's last-resort cap on open connections (it answers a plain 503 past it)."""
        return self.max_pending * 4 + 64

    @property
    def max_unfinished_heads(self) -> int:
        """Connections (all clients) that may be sending a request head at once: half of
        ``max_connections``, so slow heads alone can never reach that cap."""
        return self.max_connections // 2

    @property
    def max_idle_connections(self) -> int:
        """Keep-alive connections (all clients) that may idle between requests at once: a quarter
        of ``max_connections``, which leaves at least ``max_pending`` + 16 for requests in flight."""
        return self.max_connections // 4
