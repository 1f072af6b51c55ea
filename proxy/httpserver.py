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
"""

from __future__ import annotations

import asyncio
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


def run(app: Any, settings: Settings) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C; calls in flight get 30 s to finish."""
    uvicorn.run(app, host=settings.host, port=settings.port, loop="uvloop", http=protocol(settings),
                limit_concurrency=settings.max_connections + 1, lifespan="on", log_level="warning",
                access_log=False, timeout_graceful_shutdown=30)
