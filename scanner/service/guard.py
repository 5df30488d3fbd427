"""Slow-client (slowloris) protection for the uvicorn h11 server.

uvicorn's h11 protocol arms no timer until a first response has gone out: a connection that
sends half a request head and then a byte now and then is held forever, and every such socket
counts toward ``limit_concurrency``, past which uvicorn answers every request 503. A few hundred
sockets, no key needed, locked every client out.

What the options do (uvicorn 0.54, read from its source and measured with
``benchmarks/service_load.py``): ``timeout_keep_alive`` only runs after a response, so it never
fires for a connection that has not finished its first request head; ``h11_max_incomplete_event_size``
bounds the bytes of a head, not its time; raising ``limit_concurrency`` only raises the number of
sockets an attacker needs. Hypercorn or gunicorn would be another dependency and process model.
So the protocol below adds what was missing, inside the same server:

- **header deadline**: a request head (request line and headers) must be complete within
  ``header_timeout_s`` of its first byte (of the connection, for a first request); otherwise the
  client gets ``408`` and the connection is closed. Trickling bytes does not extend it.
- **bounded unfinished heads**: at most ``per_client`` connections per client address, and
  ``total`` in all, may be waiting for their head; past either bound the *oldest* waiting ones
  (of that address, then overall) are closed, ``ENFORCE_AFTER_S`` after the newcomers arrived so
  that the first bytes of a burst of new connections have been read. A well-behaved client sends
  its head at once, so by then it has left the pool, even when it shares the attacker's address
  (loopback, a NAT).
- uvicorn's ``limit_concurrency`` counts only the connections the guard does not bound (see
  ``_ActiveConnections``), so unfinished heads and idle connections never push it into its plain 503.
- **bounded idle keep-alive connections**: a connection between requests counts toward
  ``limit_concurrency`` too (for ``timeout_keep_alive``, 5 s): cheap requests on many
  connections would fill the cap the same way. Past ``per_client`` idle connections of an
  address, or ``idle_total`` in all, the oldest idle one is closed, as HTTP allows.

Once the head is in, the request belongs to the app, whose own deadline covers the body (408)
and the answer (504).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("scanner.service")
ENFORCE_AFTER_S = 0.25  # how long new connections get to send their first bytes before the caps apply
_BODY = b'{"error": {"status": 408, "code": "header_timeout", "message": "the request head was too slow"}}'
TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(_BODY), _BODY))


class _Pool:
    """An insertion-ordered set of connections with a cap per client address and in all; adding
    past a cap pushes out the oldest member (of that address, then overall)."""

    def __init__(self, per_client: int, total: int):
        if per_client < 1 or total < 1:
            raise ValueError("per_client and total must be at least 1")
        self.per_client, self.total = per_client, total
        self._all: OrderedDict[Any, None] = OrderedDict()
        self._by_client: dict[str, OrderedDict[Any, None]] = {}

    def __contains__(self, proto: Any) -> bool:
        return proto in self._all

    def __len__(self) -> int:
        return len(self._all)

    def add(self, proto: Any) -> None:
        """Add ``proto`` as the newest member."""
        self._all[proto] = None
        self._by_client.setdefault(proto.client_key, OrderedDict())[proto] = None

    def over(self) -> list[Any]:
        """Remove and return the oldest members past the caps (per address first, then overall)."""
        out = []
        for mine in list(self._by_client.values()):
            while len(mine) > self.per_client:
                out.append(next(iter(mine)))
                self.discard(out[-1])
        while len(self._all) > self.total:
            out.append(next(iter(self._all)))
            self.discard(out[-1])
        return out

    def discard(self, proto: Any) -> None:
        if proto in self._all:
            del self._all[proto]
            mine = self._by_client.get(proto.client_key)
            if mine is not None:
                mine.pop(proto, None)
                if not mine:
                    del self._by_client[proto.client_key]


class HeaderGuard:
    """The connections of one server that are sending a request head (timed, bounded) or idle
    between keep-alive requests (bounded: the oldest idle one is closed first)."""

    def __init__(self, header_timeout_s: float, per_client: int, total: int, idle_total: int | None = None):
        if header_timeout_s <= 0:
            raise ValueError("header_timeout_s must be positive")
        self.header_timeout_s = header_timeout_s
        self._heads = _Pool(per_client, total)
        self._idle = _Pool(per_client, idle_total or max(1, total // 2))
        self.counters = {"header_timeouts": 0, "evicted": 0, "idle_closed": 0}
        self._enforcing: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        """Connections still sending their request head."""
        return len(self._heads)

    @property
    def idle(self) -> int:
        """Keep-alive connections between requests."""
        return len(self._idle)

    def start(self, proto: "GuardedH11Protocol") -> None:
        """``proto`` is waiting for a request head; its clock starts now unless already running."""
        self._idle.discard(proto)
        if proto in self._heads:
            return
        proto.arm(self.header_timeout_s)
        self._heads.add(proto)
        if len(self._heads) > min(self._heads.per_client, self._heads.total) and self._enforcing is None:
            # not at once: a burst of accepted connections (an attacker's and a good client's) has
            # not been read yet; a moment later the good client's head is in and it left the pool
            self._enforcing = proto.loop.call_later(ENFORCE_AFTER_S, self._enforce)

    def _enforce(self) -> None:
        self._enforcing = None
        for old in self._heads.over():
            self.counters["evicted"] += 1
            old.disarm()
            old.refuse()

    def done(self, proto: "GuardedH11Protocol") -> None:
        """``proto``'s head is complete (or it is gone): stop its clock."""
        proto.disarm()
        self._heads.discard(proto)
        self._idle.discard(proto)

    def wake(self, proto: "GuardedH11Protocol") -> None:
        """Bytes arrived on ``proto``: it is no longer idle."""
        self._idle.discard(proto)

    def rest(self, proto: "GuardedH11Protocol") -> None:
        """``proto`` answered its request and waits, idle, for another (uvicorn's keep-alive timeout
        runs); idle connections past the caps are closed, oldest first, as HTTP allows."""
        self.done(proto)
        self._idle.add(proto)
        for old in self._idle.over():
            self.counters["idle_closed"] += 1
            old.close_idle()

    def resting_or_sending_head(self, proto: Any) -> bool:
        """Whether ``proto`` is bounded by the guard (so uvicorn's connection cap need not count it)."""
        return proto in self._heads or proto in self._idle

    def timed_out(self, proto: "GuardedH11Protocol") -> None:
        if proto in self._heads:
            self.counters["header_timeouts"] += 1
            self.done(proto)
            proto.refuse()


class _ActiveConnections:
    """What uvicorn's ``limit_concurrency`` check counts: the server's connections less those the
    guard bounds on its own (sending a head, or idle). Otherwise a burst of fresh connections, or
    idle ones, would still push a well-behaved request into uvicorn's plain 503 before the guard
    had closed them. ``add``/``discard`` go to the server's own set (shutdown walks it)."""

    def __init__(self, real: set, guard: "HeaderGuard"):
        self._real, self._guard = real, guard

    def add(self, proto: Any) -> None:
        self._real.add(proto)

    def discard(self, proto: Any) -> None:
        self._real.discard(proto)

    def __len__(self) -> int:
        return sum(1 for p in self._real if not self._guard.resting_or_sending_head(p))

    def __iter__(self):
        return iter(self._real)

    def __contains__(self, proto: Any) -> bool:
        return proto in self._real


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and bounded unfinished heads
    (see the module docstring). ``guard`` is set on a subclass per server (``guarded_protocol``)."""

    guard: HeaderGuard
    _head_timer: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections = _ActiveConnections(self.server_state.connections, self.guard)  # type: ignore[assignment]

    @property
    def client_key(self) -> str:
        return self.client[0] if self.client else "?"

    def arm(self, seconds: float) -> None:
        self.disarm()
        self._head_timer = self.loop.call_later(seconds, self.guard.timed_out, self)

    def disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def refuse(self) -> None:
        """Answer 408 and close (the client is not reading an h11 response cycle: raw bytes)."""
        if not self.transport.is_closing():
            try:
                self.transport.write(TIMEOUT_RESPONSE)
            finally:
                self.transport.close()

    def close_idle(self) -> None:
        """Close a keep-alive connection between requests (what uvicorn's keep-alive timeout does)."""
        if not self.transport.is_closing():
            self.timeout_keep_alive_handler()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.guard.start(self)

    def data_received(self, data: bytes) -> None:
        self.guard.wake(self)  # not idle any more (a running head clock keeps running)
        super().data_received(data)
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            self.guard.done(self)  # the head is in (or the connection is finished)
        else:
            self.guard.start(self)  # bytes of a head that is not complete yet (a keep-alive follow-up too)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # a pipelined follow-up whose head is already partly buffered: time it from now; with
        # nothing buffered the connection is idle (uvicorn's keep-alive timeout runs, and the
        # guard bounds how many may idle at once)
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            if self.conn.trailing_data[0]:
                self.guard.start(self)
            else:
                self.guard.rest(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.done(self)
        super().connection_lost(exc)


def guarded_protocol(guard: HeaderGuard) -> type[GuardedH11Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` whose connections share ``guard``."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})
