"""Run ASGI apps on a real local port for tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


@contextmanager
def serve_asgi(app: Any, host: str = "127.0.0.1", *, lifespan: str = "off") -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yield its base URL.

    The listening socket is bound (to a free port) before the thread starts,
    so there is no window in which another process could take the port.
    ``lifespan="on"`` runs the app's startup/shutdown (and fails loudly if
    startup fails); the default leaves lifespan off.  The server is asked to
    exit, and its thread joined, when the block ends.
    """
    from proxy.app import TollgateApp
    from tests.support.leaks import RecordingApp

    if isinstance(app, TollgateApp):  # what Tollgate answers is searched for secrets at the end of the run
        app = RecordingApp(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan=lifespan,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    try:
        _wait_until_started(server, thread)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(_STOP_TIMEOUT)
        sock.close()
    if thread.is_alive():
        raise RuntimeError(f"uvicorn on port {port} did not stop within {_STOP_TIMEOUT}s")


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn exited before it started serving")
        if time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start within {_START_TIMEOUT}s")
        time.sleep(0.005)
