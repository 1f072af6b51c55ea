"""A fast fake Stripe: ``POST /v1/charges`` answers a charge with a ``Request-Id``.

Every answer names a new charge (``ch_`` and a unique suffix), as Stripe's do: the proxy
records each created charge for record-level scope, and one id answered over and over would
make every settle after the first collide on the same ``key_objects`` row.

Two implementations of the same answer:

* ``nginx_config()``: nginx itself returns the JSON (``return 200 '...'``); no Python at all.
  The harness uses it for the fast-upstream scenario, where the upstream must never be
  the bottleneck.
* ``serve()``: a raw asyncio protocol on uvloop with httptools parsing, and a fixed
  ``--delay-ms`` per response (``loop.call_later``, the cheap form of ``asyncio.sleep``).
  The harness uses it for the slow-upstream scenario (100 ms, as real vendors answer).

    python -m bench.upstream --port 12111 --delay-ms 100
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import json
import signal
from functools import lru_cache
from pathlib import Path

import httptools

FIXTURES = Path(__file__).resolve().parent.parent / "emulators" / "fixtures" / "stripe-fixtures3.json"


@lru_cache(maxsize=1)
def charge_body() -> bytes:
    """``resources.charge`` from Stripe's own fixtures, amount 100 usd, compact JSON."""
    charge = copy.deepcopy(json.loads(FIXTURES.read_text())["resources"]["charge"])
    charge.update(amount=100, currency="usd", amount_captured=100, captured=True, paid=True, status="succeeded")
    return json.dumps(charge, separators=(",", ":")).encode()


@lru_cache(maxsize=1)
def charge_parts() -> tuple[bytes, bytes]:
    """The charge body split around its id's suffix: ``before + suffix + after`` is one answer."""
    charge = json.loads(charge_body())
    marker = "ch_ID-SUFFIX"
    before, _, after = json.dumps({**charge, "id": marker}, separators=(",", ":")).encode().partition(
        marker.encode())
    return before + b"ch_", after


NOT_FOUND = json.dumps({"error": {"type": "invalid_request_error", "message": "Unrecognized request URL."}}).encode()


def nginx_config(port: int, workdir: Path, workers: int = 1) -> str:
    """A complete nginx.conf that answers like the asyncio server below (no delay)."""
    before, after = (part.decode() for part in charge_parts())
    if any(c in before + after for c in "'$\\"):
        raise ValueError("the charge JSON cannot be embedded in an nginx string literal")
    body = before + "$request_id" + after  # nginx's 32 hex digits, new for every request
    return f"""
worker_processes {workers};
pid {workdir}/nginx-upstream.pid;
error_log {workdir}/nginx-upstream.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path {workdir}/up_body;
    proxy_temp_path {workdir}/up_proxy;
    fastcgi_temp_path {workdir}/up_fcgi;
    uwsgi_temp_path {workdir}/up_uwsgi;
    scgi_temp_path {workdir}/up_scgi;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        default_type application/json;
        location = /v1/charges {{
            add_header Request-Id req_$request_id always;
            add_header Stripe-Version 2024-06-20 always;
            return 200 '{body}';
        }}
        location / {{ return 404 '{NOT_FOUND.decode()}'; }}
    }}
}}
"""


class _Protocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive; answers each request after ``delay`` seconds, in order."""

    ids = itertools.count(1)

    def __init__(self, delay: float):
        self.delay = delay
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        method, path, self.url = self.parser.get_method(), self.url.split(b"?", 1)[0], b""
        if method == b"POST" and path == b"/v1/charges":
            before, after = charge_parts()
            status, body = b"200 OK", before + b"%016x" % next(self.ids) + after
        else:
            status, body = b"404 Not Found", NOT_FOUND
        response = b"".join((
            b"HTTP/1.1 ", status, b"\r\ncontent-type: application/json\r\nrequest-id: req_",
            b"%016x" % next(self.ids), b"\r\nstripe-version: 2024-06-20\r\ncontent-length: ",
            str(len(body)).encode(), b"\r\n\r\n", body,
        ))
        if self.delay > 0:
            self.loop.call_later(self.delay, self._write, response)  # same delay for all: stays in order
        else:
            self._write(response)

    def _write(self, response: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int, delay_ms: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(delay_ms / 1000), host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake stripe on http://{host}:{port} (delay {delay_ms} ms)", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer each request after this delay")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # uvloop ships with uvicorn[standard]; plain asyncio still works
        asyncio.run(serve(args.host, args.port, args.delay_ms))
    else:
        uvloop.run(serve(args.host, args.port, args.delay_ms))


if __name__ == "__main__":
    main()
