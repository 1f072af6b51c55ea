"""What every emulator records: each request as it reached "the vendor", for tests to inspect."""

from __future__ import annotations

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
    """Read the request, append it to ``app.state.received`` and return it."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    received = ReceivedRequest(request.method, request.url.path, request.url.query, headers, await request.body())
    request.app.state.received.append(received)
    return received
