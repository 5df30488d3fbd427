"""Running the app under uvicorn: in the foreground (``scanner serve``) or in a thread on a
loopback port picked by the OS (tests, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI

from scanner.service.config import ServiceConfig
from scanner.service.guard import HeaderGuard, guarded_protocol


def _uvicorn_config(app: FastAPI, config: ServiceConfig, **kw: Any) -> uvicorn.Config:
    # slow request heads are timed and bounded by the guard (uvicorn's h11 protocol has no header
    # timeout); health reports its counters
    guard = HeaderGuard(config.header_timeout_s, config.max_unfinished_heads_per_client, config.max_unfinished_heads,
                        config.max_idle_connections)
    app.state.header_guard = guard
    return uvicorn.Config(
        app, host=config.host, port=config.port, lifespan="on", server_header=False, access_log=kw.pop("access_log", True),
        http=guarded_protocol(guard),
        # a last-resort cap on open connections (uvicorn answers a plain 503 past it); the app's own
        # admission control (max_pending, JSON 503) acts well before it
        limit_concurrency=config.max_connections, timeout_graceful_shutdown=int(config.request_timeout_s) + 5,
        **kw,
    )


def serve(app: FastAPI, config: ServiceConfig, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM finish the requests in flight)."""
    server = uvicorn.Server(_uvicorn_config(app, config, log_level=log_level))
    server.run()


class BackgroundServer:
    """``with BackgroundServer(app) as srv: httpx.get(srv.url + "/v1/health")``: real HTTP on 127.0.0.1."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", log_level: str = "warning", start_timeout: float = 60.0):
        self.app = app
        self.host = host
        self.start_timeout = start_timeout
        # proto given explicitly: asyncio only sets TCP_NODELAY on sockets whose proto is IPPROTO_TCP,
        # and without it every response stalls ~40 ms (Nagle + delayed ACK)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.port = self._sock.getsockname()[1]
        cfg = getattr(app.state, "config", ServiceConfig())
        self.server = uvicorn.Server(_uvicorn_config(app, cfg, log_level=log_level, access_log=False))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]},
                                        name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "BackgroundServer":
        self._thread.start()
        until = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server did not start (see the log above)")
            if time.monotonic() > until:
                raise RuntimeError("the server did not start in time")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(30)
        self._sock.close()

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
