"""How ``tollgate serve`` (and the bench's bare pass-through) run uvicorn: uvloop, httptools,
and two limits uvicorn does not have, a deadline on request headers and a cap on open
connections per process.

uvicorn 0.54's httptools protocol arms a timer only between requests (keep-alive), and any
byte the client sends cancels it. A client that connects and sends nothing, or sends half a
request line and stalls (slowloris), kept its connection, its file descriptor and its buffers
for good: 2,000 of them stayed open. ``limit_concurrency`` does not help: it answers 503
once a request's headers are complete, which a slowloris never sends. Here:

- a connection must deliver complete headers within ``header_timeout_s`` of opening, or of its
  first byte after a response, or it is closed;
- a connection beyond ``max_connections`` gets a plain 503 and is closed at once, so stalled
  clients cannot pile up past the cap; uvicorn's own ``limit_concurrency`` (one more than the
  cap, as it counts the asking connection too) still bounds requests in progress, which
  outlive their connection when the client hangs up while the vendor answers.

The request body has no deadline of its own here: it is read by the app, bounded in size by
``TOLLGATE_MAX_BODY_BYTES``.

``serve_worker`` is the same server for one worker of ``tollgate serve --workers N``
(proxy/workers.py): on a socket the supervisor hands it, telling the supervisor once it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy.config import Settings

_BUSY = b"Too many open connections; try again."
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\nretry-after: 1\r\n\r\n%s" % (len(_BUSY), _BUSY))


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a connection cap (class attributes:
    uvicorn makes one instance per connection and takes a class, see ``protocol``)."""

    header_timeout_s: float = 10.0
    max_connections: int = 512

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(_REFUSAL)
            transport.close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def protocol(settings: Settings) -> type[GuardedHttpTools]:
    """The protocol class with this process's limits."""
    limits = {"header_timeout_s": settings.header_timeout_s, "max_connections": settings.max_connections}
    return type("GuardedHttpTools", (GuardedHttpTools,), limits)


GRACE_S = 30  # calls in flight get this long to finish once SIGTERM or Ctrl-C arrives


def _options(settings: Settings) -> dict[str, Any]:
    return {"loop": "uvloop", "http": protocol(settings), "limit_concurrency": settings.max_connections + 1,
            "lifespan": "on", "log_level": "warning", "access_log": False, "timeout_graceful_shutdown": GRACE_S}


def run(app: Any, settings: Settings) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C; calls in flight get 30 s to finish."""
    uvicorn.run(app, host=settings.host, port=settings.port, **_options(settings))


class _Worker(uvicorn.Server):
    """uvicorn's server that writes a byte to ``ready_fd`` once its lifespan has started and it
    accepts, and that does not re-raise the signal that stopped it: the worker then exits 0 on
    its own, its log lines flushed, and the supervisor reads its status as a clean stop."""

    def __init__(self, config: uvicorn.Config, ready_fd: int) -> None:
        super().__init__(config)
        self._ready_fd = ready_fd

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            os.write(self._ready_fd, b"r")
            os.close(self._ready_fd)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve_worker(app: Any, settings: Settings, sock: socket.socket, ready_fd: int) -> None:
    """Serve ``app`` on ``sock`` (listening already) until SIGTERM; a second signal (SIGINT)
    stops at once. Returns normally: uvicorn exits through ``SystemExit`` if startup fails."""
    config = uvicorn.Config(app, **_options(settings))
    _Worker(config, ready_fd).run(sockets=[sock])
