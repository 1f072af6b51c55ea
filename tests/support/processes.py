"""Run ``tollgate serve`` as a real process, the way operators do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support import leaks
from tests.support.tollgate import ADMIN_TOKEN, MASTER_KEY


def proxy_env(pg_url: str, upstreams: dict[str, str], **settings: object) -> dict[str, str]:
    """The environment of a ``tollgate serve`` on the suite's database: ``upstreams`` by vendor,
    ``settings`` as ``TOLLGATE_<NAME>`` (``reservation_ttl_s=2`` -> ``TOLLGATE_RESERVATION_TTL_S=2``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(DATABASE_URL=pg_url, TOLLGATE_MASTER_KEY=MASTER_KEY, TOLLGATE_ADMIN_TOKEN=ADMIN_TOKEN,
               TOLLGATE_LOG_FORMAT="json")
    env.update({f"TOLLGATE_UPSTREAM_{vendor.upper()}": url for vendor, url in upstreams.items()})
    env.update({f"TOLLGATE_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def tollgate_serve(env: dict[str, str], timeout_s: float = 60,
                   command: tuple[str, ...] = (sys.executable, "-m", "proxy"),
                   cwd: Path | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start ``python -m proxy serve`` (or ``command serve``) on a free loopback port; yield (base URL,
    process); stop it with SIGTERM."""
    port = free_port()
    # One process unless the test asks for workers (TOLLGATE_WORKERS): serve's default is one per
    # core, and the tests that SIGKILL "the process" or count replicas mean a single one.
    env = {"TOLLGATE_WORKERS": "1", **env}
    # Output goes to a file, not a pipe: nobody reads a pipe while the test runs, and a full
    # pipe would block the proxy on its next log line.
    with tempfile.NamedTemporaryFile(prefix=f"tollgate-serve-{port}-", suffix=".log", delete=False) as log:
        process = subprocess.Popen([*command, "serve", "--port", str(port)], env=env, cwd=cwd,
                                   stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    process.log_path = Path(log.name)  # type: ignore[attr-defined]
    leaks.remember_log(process.log_path)
    try:
        _wait_healthy(base, process, timeout_s, Path(log.name))
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(base: str, process: subprocess.Popen, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"tollgate serve did not start:\n{log.read_text()}")
        time.sleep(0.1)
