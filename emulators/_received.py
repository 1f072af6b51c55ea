"""What every emulator records: each request as it reached "the vendor", for tests to inspect.

``app.state.delay_s`` (default 0) makes every emulator a slow vendor: a request is
recorded as received, then waits that many seconds before it is answered (a hanging
vendor is a large delay). Fault tests use it to hold calls in flight.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.requests import Request


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names lower-cased; a repeated header's values joined with ", "
    body: bytes


async def record(request: Request) -> ReceivedRequest:
    """Read the request, append it to ``app.state.received``, wait ``app.state.delay_s``, return it."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    received = ReceivedRequest(request.method, request.url.path, request.url.query, headers, await request.body())
    request.app.state.received.append(received)
    delay = getattr(request.app.state, "delay_s", 0)
    if delay:
        await asyncio.sleep(delay)
    return received
