"""Start and stop everything the benchmark measures, on 127.0.0.1 only.

Every process is started in its own session with a parent-death signal, tracked by a
``Services`` group, and stopped (SIGTERM, then SIGKILL after a timeout) when the group
closes, whether the run ends, fails or is interrupted. Postgres comes from the ``pgserver``
wheel, exactly as Tollgate's embedded default and its test suite run it.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench import upstream as fake_stripe

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
ADMIN_TOKEN = "tga_bench_" + secrets.token_urlsafe(24)
MASTER_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
STRIPE_SECRET = "sk_test_bench" + "0" * 16

# Allows the benchmarked call, with caps far above anything a run reaches, so every request
# goes the whole way: gate (counters for day, minute and the agent run), forward, settle.
POLICY: dict[str, Any] = {
    "vendor": "stripe",
    "mode": "enforce",
    "endpoints": {"allow": ["POST /v1/charges", "GET /v1/charges/*"]},
    "per_call_usd": "10000",
    "caps": [
        {"usd": "100000000", "window": "day"},
        {"usd": "100000000", "window": "run"},
        {"requests": 100000000, "window": "minute"},
    ],
    "require_run_id": False,
}

# POLICY with the runaway-agent guards the example policies turn on: what they cost is the
# difference between a key with this policy and one with POLICY, both fed unique bodies.
GUARDED_POLICY: dict[str, Any] = {
    **POLICY, "duplicates": {"window_s": 60},
    "stop": {"max_calls": 1_000_000_000, "max_refusals": {"count": 1000, "window_s": 60}, "consecutive_errors": 1000},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Child side of Popen: get SIGTERM if the harness dies, even by SIGKILL (Linux)."""
    os.setsid()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


@dataclass
class Services:
    """A group of processes, stopped in reverse start order by ``close()`` (or ``with``)."""

    workdir: Path
    started: list[Service] = field(default_factory=list)

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, name: str, argv: list[str], *, port: int | None, env: Mapping[str, str] | None = None,
              ready_path: str | None = None, timeout: float = 60.0, stderr_to: Path | None = None,
              cwd: Path = ROOT) -> Service:
        log = self.workdir / f"{name}.log"
        out = log.open("ab")
        err = stderr_to.open("ab") if stderr_to is not None else subprocess.STDOUT
        process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd,
                                   env={**os.environ, **(env or {})}, preexec_fn=_die_with_parent)
        out.close()
        if stderr_to is not None:
            err.close()  # type: ignore[union-attr]
        service = Service(name, process, log, port)
        self.started.append(service)
        if port is not None:
            _wait_ready(service, ready_path, timeout)
        return service

    def stop(self, service: Service) -> None:
        service.stop()
        if service in self.started:
            self.started.remove(service)

    def close(self) -> None:
        while self.started:
            self.started.pop().stop()


def _wait_ready(service: Service, ready_path: str | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}; "
                               f"see {service.log}:\n{_tail(service.log)}")
        try:
            if ready_path is None:
                with socket.create_connection((HOST, service.port), timeout=1):
                    return
            else:
                with urllib.request.urlopen(service.url + ready_path, timeout=2) as response:
                    if response.status == 200:
                        return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{service.name} not ready on port {service.port} after {timeout:.0f} s; see {service.log}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- the processes ---------------------------------------------------------------------------


def start_nginx_upstream(group: Services) -> Service:
    port = free_port()
    conf = group.workdir / "nginx-upstream.conf"
    conf.write_text(fake_stripe.nginx_config(port, group.workdir))
    return group.start("upstream-nginx", ["nginx", "-c", str(conf), "-g", "daemon off;"], port=port)


def start_python_upstream(group: Services, delay_ms: float, name: str = "upstream-py") -> Service:
    port = free_port()
    return group.start(name, [PYTHON, "-m", "bench.upstream", "--port", str(port), "--delay-ms", str(delay_ms)],
                       port=port)


def _nginx_head(workdir: Path, name: str, workers: int) -> str:
    """The start of an nginx.conf of the harness, up to and into ``http {``: its own pid, log
    and temporary paths under ``workdir``, no access log, long keep-alive."""
    return f"""worker_processes {workers};
pid {workdir}/nginx-{name}.pid;
error_log {workdir}/nginx-{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
""" + "".join(f"    {kind}_temp_path {workdir}/{name}_{kind};\n"
              for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


def nginx_proxy_config(port: int, upstream_port: int, workdir: Path, workers: int = 1) -> str:
    """nginx as a plain reverse proxy: /stripe/* -> upstream /*, HTTP/1.1 keep-alive to it."""
    return f"""
{_nginx_head(workdir, "proxy", workers)}
    upstream stripe {{
        server 127.0.0.1:{upstream_port};
        keepalive 256;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location /stripe/ {{
            proxy_pass http://stripe/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer {STRIPE_SECRET}";
            proxy_set_header X-Agent-Run-Id "";
            proxy_buffering on;
        }}
    }}
}}
"""


def start_nginx_proxy(group: Services, upstream_port: int) -> Service:
    port = free_port()
    conf = group.workdir / "nginx-proxy.conf"
    conf.write_text(nginx_proxy_config(port, upstream_port, group.workdir))
    return group.start("nginx-proxy", ["nginx", "-c", str(conf), "-g", "daemon off;"], port=port)


def start_bare(group: Services, upstream_url: str, transport: str, name: str | None = None) -> Service:
    """python -m proxy.bare with TOLLGATE_UPSTREAM_TRANSPORT=transport (aiohttp, httpx-aiohttp, httpx)."""
    port = free_port()
    env = {"TOLLGATE_UPSTREAM_TRANSPORT": transport}
    return group.start(name or f"bare-{transport}",
                       [PYTHON, "-m", "proxy.bare", "--vendor", "stripe", "--port", str(port),
                        "--upstream", upstream_url],
                       port=port, env=env)


def tollgate_env(database_url: str, upstream_url: str, *, pool_size: int = 10, transport: str = "aiohttp",
                 data_dir: Path, workers: int = 1) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "TOLLGATE_MASTER_KEY": MASTER_KEY,
        "TOLLGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "TOLLGATE_UPSTREAM_STRIPE": upstream_url,
        "TOLLGATE_UPSTREAM_TRANSPORT": transport,
        "TOLLGATE_DB_POOL_SIZE": str(pool_size),
        "TOLLGATE_LOG_FORMAT": "json",
        "TOLLGATE_DATA_DIR": str(data_dir),
        # One process unless asked: serve's default is one worker per core, and the single-process
        # targets are what the per-process figures (CPU per call, bare vs governed) are about.
        "TOLLGATE_WORKERS": str(workers),
    }


def start_tollgate(group: Services, name: str, database_url: str, upstream_url: str, *, pool_size: int = 10,
                   log_to: Path | None = None, workers: int = 1, source: Path = ROOT) -> Service:
    """A real ``tollgate serve`` (python -m proxy serve) of the tree at ``source``, with ``workers``
    worker processes; JSON log lines to ``log_to`` (or /dev/null). Ready when /readyz answers: with
    workers, the supervisor forks them only after migrating, and a worker answers only once its
    lifespan has started."""
    port = free_port()
    env = tollgate_env(database_url, upstream_url, pool_size=pool_size, data_dir=group.workdir / "tollgate-data",
                       workers=workers)
    if source != ROOT:
        env["PYTHONPATH"] = str(source)
    return group.start(name, [PYTHON, "-m", "proxy", "serve", "--host", HOST, "--port", str(port)],
                       port=port, env=env, ready_path="/readyz", timeout=120,
                       stderr_to=log_to or Path(os.devnull), cwd=source)


def admin_request(base_url: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, method=method, headers={
        "authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def create_key(tollgate: Service, policy: dict[str, Any] | None = None) -> dict[str, Any]:
    """A vault key with ``policy`` (default ``POLICY``), created through the admin API; the body
    has the one-time ``key``."""
    return admin_request(tollgate.url, "POST", "/admin/v1/keys", {
        "vendor": "stripe", "policy": policy or POLICY, "upstream_secret": STRIPE_SECRET, "label": "bench"})


def check_charge(base_url: str, path: str, key: str | None) -> None:
    """One request before any load: the target must answer 200 with a charge, or the numbers mean nothing."""
    headers = {"content-type": "application/x-www-form-urlencoded", "x-agent-run-id": "run_bench_check"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    request = urllib.request.Request(base_url + path, data=b"amount=100&currency=usd&source=tok_visa",
                                     method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{base_url}{path} answered {exc.code}: {exc.read()[:300]!r}") from None
    if body.get("object") != "charge":
        raise RuntimeError(f"{base_url}{path} did not answer a charge: {str(body)[:200]}")


# -- Postgres ---------------------------------------------------------------------------------


class Postgres:
    """pgserver in a directory of its own: default settings (fsync on, synchronous_commit on)."""

    def __init__(self, directory: Path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
            import pgserver
        directory.mkdir(parents=True, exist_ok=True)
        self.server = pgserver.get_server(directory, cleanup_mode="stop")
        self.url = self.server.get_uri()
        self.directory = directory

    @property
    def postmaster_pid(self) -> int | None:
        return self.server.get_pid()

    def sql(self, command: str) -> str:
        return self.server.psql(command)

    def stop(self) -> None:
        self.server.cleanup()


# -- CPU accounting ---------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds used by a set of processes (and their children) between two readings."""

    def __init__(self, pids: Mapping[str, int | None]):
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self._start: dict[str, float] = {}
        self._wall = 0.0

    @staticmethod
    def _cpu(pid: int) -> float:
        try:
            root = psutil.Process(pid)
            total = 0.0
            for proc in [root, *root.children(recursive=True)]:
                try:
                    t = proc.cpu_times()  # children_*: exited children it reaped (Postgres backends)
                    total += t.user + t.system + t.children_user + t.children_system
                except psutil.Error:
                    pass
            return total
        except psutil.Error:
            return 0.0

    def start(self) -> None:
        self._wall = time.monotonic()
        self._start = {name: self._cpu(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        """Percent of one core used by each process tree since ``start()``."""
        wall = time.monotonic() - self._wall
        return {name: round(100 * (self._cpu(pid) - self._start.get(name, 0.0)) / wall, 1)
                for name, pid in self.pids.items()} if wall > 0 else {}
