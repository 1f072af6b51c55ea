"""Serve an ASGI app with uvicorn on a thread of this process, on a free loopback port.

``tollgate demo`` runs the emulators and the proxy this way rather than as child processes:
a thread cannot outlive the process, so Ctrl-C (or a crash) never leaves a server behind.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


@contextmanager
def served(app: Any, *, lifespan: Literal["auto", "on", "off"] = "off", port: int = 0,
           host: str = "127.0.0.1") -> Iterator[str]:
    """Yield the base URL of ``app`` served on ``host`` (loopback unless told; 0.0.0.0 in a
    container, whose loopback nobody outside reaches), a free port unless ``port`` names one;
    the server is stopped when the block ends. The URL is the one to call from this machine.

    The socket is bound before the thread starts, so no other process can take the port meanwhile.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, host=host, port=bound, lifespan=lifespan, log_level="warning",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{bound}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {bound} did not start")
            time.sleep(0.01)
        yield f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        sock.close()
