"""Plain-ASGI helpers for the hot path (no middleware, no Request objects)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from vendors.base import RequestRejected

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestRejected("client_disconnected", "The client went away before sending its body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestRejected("body_too_large", f"The request body is larger than {limit} bytes.", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def header_map(
    raw_headers: Iterable[tuple[bytes, bytes]], single: frozenset[str], limit: int | None = None
) -> dict[str, str]:
    """Lower-cased headers; a header in ``single`` that appears twice is refused as ambiguous.

    ``limit`` bounds the headers' total size: the HTTP server in front (uvicorn with httptools)
    sets none, and an allowlisted header such as User-Agent would otherwise be forwarded at
    any size."""
    headers: dict[str, str] = {}
    size = 0
    for raw_name, raw_value in raw_headers:
        size += len(raw_name) + len(raw_value) + 4  # ": " and CRLF, as on the wire
        if limit is not None and size > limit:
            raise RequestRejected("headers_too_large", f"The request headers are larger than {limit} bytes.",
                                  status=431)
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in headers:
            if name in single:
                raise RequestRejected("duplicate_header", f"Header {name!r} appears more than once.")
            headers[name] = f"{headers[name]}, {value}"
        else:
            headers[name] = value
    return headers


async def send_response(send: Send, status: int, headers: Mapping[str, str], body: bytes) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items() if k != "content-length"]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
