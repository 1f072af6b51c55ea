"""``tollgate serve --workers N``: one port, N worker processes, one supervisor.

A Python process uses one core, so a governed call's CPU (the proxy's share is most of it:
bench/REPORT.md) caps one process at what one core does. Each worker is a whole ``tollgate
serve`` as one replica is today: the full TollgateApp lifespan, its own database pools,
upstream client and background loops, its own connection cap and header deadline
(proxy/httpserver.py). All shared state is in Postgres already, so N workers behave as N
replicas do: nothing is shared in memory. The background loops of proxy/app.py were read for
this, each already safe across replicas: the reconcile sweep shares work with SKIP LOCKED; the
sealer (audit/chain.py), the alert deliverer (alerts/delivery.py) and the partition maker
(tollgate_audit_partition, migration 0007) take a Postgres advisory lock per pass; the repricer
(prices.py) a session advisory lock; the daily price sync a lease row (leases.py); the fx and own
price reloads read into each process's memory, which every worker needs anyway. N workers start
them at the same instant, which replicas rarely do; the locks do not care
(tests/test_serve_workers.py delivers 60 alerts through two workers, each once).

The supervisor does what must happen once: it starts (or attaches to) the embedded Postgres,
generates the data directory's secrets, and runs the migrations (once, rather than N workers
waiting in turn on the migration lock of migrations/env.py); only then does it fork the
workers, which inherit the resolved runtime. It reports ready (the banner) only when every
worker has finished its lifespan startup and accepts; a worker that exits before that stops
the whole serve (exit 1) with the worker's own error in the log. A worker that dies later is
replaced (its replacement runs the full lifespan; one that fails to start is retried, waiting
1 s doubling to 30 s, as a database outage would make it); the others answer meanwhile. SIGTERM
or Ctrl-C on the supervisor: SIGTERM to every worker, which drains (calls in flight get 30 s),
then exit 0; a second signal stops the workers at once. Workers are in a process group of
their own (a terminal's Ctrl-C reaches the supervisor only, which then stops them once) and
die with the supervisor (PR_SET_PDEATHSIG, SIGKILL): a supervisor killed -9 is a crash of the
serve, and its open reservations are reconciled like any crash's (guarantee 7).

One port: each worker listens on a socket of its own with SO_REUSEPORT (the kernel spreads new
connections over the group by a hash of their addresses), and the supervisor holds one more,
bound but never listening, so the port stays this serve's between a worker's death and its
replacement and a port in use is refused before any worker starts. The alternative, one socket
bound by the supervisor and inherited (uvicorn's and gunicorn's model), was measured on this
2-core machine with wrk, 64 keep-alive connections to a governed ``POST /v1/charges`` (nginx
upstream, one pgserver Postgres, one key), 5 s runs, two sessions of 3, connections per
worker counted mid-run from /proc:

    SO_REUSEPORT per worker   req/s 1197 795 650 | 1354 1445 1473   connections 28/36 25/39 27/37 | 28/36 29/35 28/36
    one inherited socket      req/s  738 778 1179 | 1270  978 1075  connections 23/41 17/47  9/55 |  7/57 21/43  9/55
    (one worker, reference)   req/s 1483 1428 1192 | 1821 1943 1977

With one inherited socket every worker's event loop wakes for each new connection and the first
to call accept takes it, and uvloop accepts all it can at once, so a burst of connections lands
unevenly (up to 7/57); the hash spreads them by count (at worst 25/39), and the second session's
throughput follows. Residual of SO_REUSEPORT: a second ``tollgate serve`` of the same Unix user
on the same port joins the group instead of failing with "address in use" (the kernel allows a
group only within one user); a worker killed -9 loses the connections waiting in its own accept
queue, not only those it was serving.

Note the reference line: on this 2-core machine, where wrk, nginx and Postgres take their share
of the same two cores, two workers did less than one (1,445 against 1,943 req/s, medians of the
second session). Not the one hot key: with calls spread over 16 keys (so the two workers' gate
batches seldom touch the same counter rows), alternating runs gave 1 worker 1,496/1,239/1,197 and
2 workers 1,009/820/1,211 req/s (one key: 1,407/1,373/1,108 and 730/1,299/1,317), the machine
shared with other test runs. The two cores are already full with one worker (wrk, nginx,
Postgres and the proxy); a second Python process adds no core, only switching between them.
What --workers buys shows where the proxy has cores of its own (Postgres and the clients
elsewhere); bench/run.py reports 1 and 2 workers side by side in every run.

Which worker answered: the ``Tollgate-Worker`` header (its pid) of ``GET /healthz``. /metrics
is per process, as with replicas: a scrape through the shared port reads whichever worker took
the connection (a Prometheus per worker would need prometheus_client's multiprocess mode; not
done).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from proxy.config import Settings

log = structlog.get_logger("tollgate.workers")

READY_TIMEOUT_S = 120.0  # a lifespan that has not started by then is stuck, not slow
STOP_GRACE_S = 40.0  # httpserver's 30 s for calls in flight, plus the lifespan's shutdown
RETRY_MAX_S = 30.0
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_WATCHED = _STOP_SIGNALS | {signal.SIGCHLD}
_PR_SET_PDEATHSIG = 1

# A worker's life: it serves ``settings`` on the socket it is given, and writes one byte to the fd
# once it accepts (proxy/httpserver.py::serve_worker).
Work = Callable[[socket.socket, int], None]


def count(settings: Settings) -> int:
    """--workers / TOLLGATE_WORKERS, or one per core this process may run on: the CPUs it may be
    scheduled on, fewer if its cgroup's CPU quota (a container's CPU limit) allows fewer. A pod
    limited to 1 CPU on a 16-core node must not start 16 workers, each with its database pools."""
    if settings.workers > 0:
        return settings.workers
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    return max(1, min(cores, quota)) if quota is not None else max(1, cores)


def cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Whole CPUs the cgroup's quota allows (rounded up), None without a quota: cgroup v2's
    cpu.max ("max 100000" or "150000 100000"), else v1's cpu.cfs_quota_us and cpu.cfs_period_us."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1") or not quota.lstrip("-").isdigit() or not period.isdigit() or int(period) <= 0:
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def hold_port(settings: Settings) -> socket.socket:
    """The supervisor's socket on the port, bound and never listening (see the docstring). A port
    of 0 becomes the free port the kernel picks, which every worker then binds."""
    sock = _reuseport_socket(settings.host)
    try:
        sock.bind((settings.host, settings.port))
    except OSError:
        sock.close()
        raise
    return sock


def _reuseport_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def listener(host: str, port: int) -> socket.socket:
    """A worker's own socket in the port's SO_REUSEPORT group, bound, not yet listening: uvicorn
    listens once the lifespan has started, and only then does the kernel send it connections (a
    socket listening during the lifespan would hold the connections hashed to it until then)."""
    sock = _reuseport_socket(host)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


@dataclass
class _Worker:
    slot: int
    pid: int
    ready_fd: int | None  # the pipe's read end until the worker says it serves
    failures: int = 0  # replacements in a row that died before they served


class Supervisor:
    """Forks ``n`` workers running ``work`` and keeps ``n`` running until a stop signal."""

    def __init__(self, n: int, held: socket.socket, work: Work) -> None:
        self.n, self.held, self.work = n, held, work
        self.host, self.port = held.getsockname()[:2]
        self.workers: dict[int, _Worker] = {}  # by pid
        self.retries: dict[int, tuple[float, int]] = {}  # slot -> (when, failures) of a replacement
        self.stops = 0

    def run(self, on_ready: Callable[[list[int]], None]) -> int:
        """0 after a stop signal drained every worker; 1 when a worker could not start."""
        if threading.active_count() > 1:
            log.warning("workers_fork_with_threads", threads=threading.active_count())
        signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
        try:
            for slot in range(self.n):
                self._spawn(slot)
            failed = self._wait_ready()
            if failed is not None:
                print(f"tollgate: {failed}; stopping the other workers", file=sys.stderr, flush=True)
                self._stop()
                return 1
            if not self.stops:
                on_ready(sorted(self.workers))
                self._watch()
            self._stop()
            return 0
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _WATCHED)

    def _spawn(self, slot: int, failures: int = 0) -> None:
        read_fd, write_fd = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _child(self.held, self.host, self.port, write_fd, parent, self.work)
        os.close(write_fd)
        self.workers[pid] = _Worker(slot, pid, read_fd, failures)
        log.info("worker_started", worker=slot, pid=pid)

    def _wait_ready(self) -> str | None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while any(w.ready_fd is not None for w in self.workers.values()) and not self.stops:
            for worker, status in self._tick():
                return (f"worker {worker.slot} (pid {worker.pid}) {_describe(status)} before it served "
                        "(its log is above)")
            if time.monotonic() > deadline:
                return f"workers did not start serving within {READY_TIMEOUT_S:.0f} s"
        return None

    def _watch(self) -> None:
        while not self.stops:
            for worker, status in self._tick():
                failures = worker.failures + 1 if worker.ready_fd is not None else 0
                delay = 0.0 if not failures else min(RETRY_MAX_S, 2.0 ** (failures - 1))
                log.error("worker_died", worker=worker.slot, pid=worker.pid, status=_describe(status),
                          replacement_in_s=delay)
                self.retries[worker.slot] = (time.monotonic() + delay, failures)
            for slot, (when, failures) in list(self.retries.items()):
                if time.monotonic() >= when:
                    del self.retries[slot]
                    self._spawn(slot, failures)

    def _tick(self, timeout_s: float = 0.1) -> list[tuple[_Worker, int]]:
        """Wait up to ``timeout_s``: note workers that now serve, count stop signals; the
        workers that exited (removed from ``workers``), with their wait status."""
        pending = [w.ready_fd for w in self.workers.values() if w.ready_fd is not None]
        if pending:
            readable, _, _ = select.select(pending, [], [], timeout_s)
        else:
            readable = []
            if (info := signal.sigtimedwait(_WATCHED, timeout_s)) is not None:
                self._note(info.si_signo)
        for worker in self.workers.values():
            if worker.ready_fd in readable and os.read(worker.ready_fd, 1):
                os.close(worker.ready_fd)
                worker.ready_fd = None
                worker.failures = 0
                log.info("worker_serving", worker=worker.slot, pid=worker.pid)
        while (info := signal.sigtimedwait(_WATCHED, 0)) is not None:
            self._note(info.si_signo)
        return self._reap()

    def _note(self, signo: int) -> None:
        if signo in _STOP_SIGNALS:
            self.stops += 1
            if self.stops > 1:  # a second Ctrl-C: uvicorn stops at once on SIGINT after SIGTERM
                self._signal_all(signal.SIGINT)

    def _reap(self) -> list[tuple[_Worker, int]]:
        gone = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            worker = self.workers.pop(pid, None)
            if worker is not None:
                if worker.ready_fd is not None:
                    os.close(worker.ready_fd)
                gone.append((worker, status))
        return gone

    def _signal_all(self, sig: int) -> None:
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _stop(self) -> None:
        """SIGTERM to every worker; each drains its calls in flight. SIGKILL past STOP_GRACE_S."""
        self.retries.clear()
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.workers and time.monotonic() < deadline:
            for worker, status in self._tick():
                if os.waitstatus_to_exitcode(status) != 0:
                    log.warning("worker_stopped", worker=worker.slot, pid=worker.pid, status=_describe(status))
        if self.workers:
            log.error("workers_killed", pids=sorted(self.workers), after_s=STOP_GRACE_S)
            self._signal_all(signal.SIGKILL)
            while self.workers:
                self._tick()


def _child(held: socket.socket, host: str, port: int, ready_fd: int, parent: int, work: Work) -> None:
    """The forked worker: never returns (os._exit), so nothing of the supervisor's stack (the
    embedded Postgres' serving mark, atexit handlers) runs in it."""
    code = 1
    try:
        for sig in _WATCHED:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.setpgid(0, 0)
        with contextlib.suppress(OSError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the supervisor died before the line above
            os._exit(1)
        held.close()
        work(listener(host, port), ready_fd)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
