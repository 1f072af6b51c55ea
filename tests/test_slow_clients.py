"""Clients that hold connections without finishing a request (issue 17 item 8): a real
``tollgate serve`` closes a connection whose headers do not arrive within
TOLLGATE_HEADER_TIMEOUT_S, and answers a connection beyond TOLLGATE_MAX_CONNECTIONS with a
503 and closes it at once, so slowloris clients neither stay nor pile up. Before, 2,000 such
connections stayed open. Raw sockets: a client library would finish the request."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.faulty import FaultyVendor, faulty_vendor
from tests.support.processes import proxy_env, tollgate_serve
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, policy

HEADER_TIMEOUT_S = 1
CAP = 6
CLOSED_WITHIN_S = HEADER_TIMEOUT_S + 4  # a stalled connection must be gone well before this


@pytest.fixture(scope="module")
def server(pg_url: str) -> Iterator[tuple[str, FaultyVendor]]:
    """One ``tollgate serve`` whose vendor holds every call it gets (so calls can fill the cap)."""
    with faulty_vendor("hang") as (upstream, vendor):
        env = proxy_env(pg_url, {"stripe": upstream}, header_timeout_s=HEADER_TIMEOUT_S, max_connections=CAP)
        with tollgate_serve(env) as (base, _process):
            yield base, vendor


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=CLOSED_WITHIN_S)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; a TimeoutError if it keeps the connection open."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _read_one_response(sock: socket.socket) -> bytes:
    """One whole response (headers, then Content-Length bytes of body): on a loaded machine the
    body may come in a later segment than the headers, and must not be left for the next read."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_connection_that_stalls_before_its_headers_end_is_closed(server: tuple[str, FaultyVendor]) -> None:
    base, _ = server
    silent = _connect(base)  # connects and sends nothing
    halfway = _connect(base)
    halfway.sendall(b"POST /stripe/v1/charges HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    kept_alive = _connect(base)  # one full request, then half of the next
    kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert _read_one_response(kept_alive).startswith(b"HTTP/1.1 200")
    kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    trickle = _connect(base)  # a byte at a time, each well inside the timeout
    trickle.sendall(b"G")

    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200  # others are served meanwhile
    started = time.monotonic()
    for byte in b"ET /healthz HTTP/1.1\r\n":
        try:
            trickle.sendall(bytes([byte]))
        except OSError:  # closed by the server: what this test wants
            break
        time.sleep(HEADER_TIMEOUT_S / 4)
    for sock in (silent, halfway, kept_alive, trickle):
        with sock:
            assert _read_until_closed(sock) == b""  # closed without an answer; on main: TimeoutError
    assert time.monotonic() - started < CLOSED_WITHIN_S


def test_connections_beyond_the_cap_are_refused_at_once(server: tuple[str, FaultyVendor]) -> None:
    base, vendor = server
    key = httpx.post(f"{base}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10,
                     json={"vendor": "stripe", "policy": policy(), "upstream_secret": STRIPE_SECRET}).json()
    seen_before = len(vendor.request_lines)
    answers: list[int] = []
    callers = [threading.Thread(target=_charge_until_admitted, args=(base, key["key"], answers)) for _ in range(CAP)]
    for caller in callers:
        caller.start()
    _wait_for(lambda: len(vendor.request_lines) - seen_before == CAP)  # CAP calls held at the vendor

    with _connect(base) as extra:
        refused = _read_until_closed(extra)  # answered without having sent a byte
    assert refused.startswith(b"HTTP/1.1 503 ") and b"connection: close" in refused
    with _connect(base) as slowloris:  # it sends first: it reads the 503, or the reset of its unread bytes
        slowloris.sendall(b"GET /healthz HTTP/1.1\r\n")
        with contextlib.suppress(ConnectionResetError):
            assert _read_until_closed(slowloris).startswith(b"HTTP/1.1 503 ")

    vendor.release()  # the held calls fail (502); their connections close
    for caller in callers:
        caller.join(timeout=30)
    assert answers == [502] * CAP
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200  # the slots are free again


def _charge_until_admitted(base: str, key: str, answers: list[int]) -> None:
    """One charge on a connection of its own; a 503 from the cap (a connection closing late) is tried again."""
    while True:
        try:
            response = httpx.post(f"{base}/stripe/v1/charges", data={"amount": "100", "currency": "usd"},
                                  headers={"authorization": f"Bearer {key}"}, timeout=30)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        if response.status_code != 503 or "too many open connections" not in response.text.lower():
            answers.append(response.status_code)
            return
        time.sleep(0.05)


def _wait_for(condition: Any, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
