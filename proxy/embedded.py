"""The embedded Postgres: a real server from the pgserver wheel, under the data directory.

pgserver shares one running server between processes that ask for the same directory
(``tollgate serve``, ``tollgate keys create``, ``tollgate db url``) and leaves it running
for ``psql "$(tollgate db url)"``; ``tollgate db stop`` stops it.

Stopping does not go through pgserver. pgserver stops a server when the last process in its
handle list (``pg/.handle_pids.json``) exits through ``atexit``, but a ``tollgate serve``
stopped with SIGTERM never runs ``atexit`` (uvicorn re-raises the signal once it has shut
down), so its PID stays in the list for ever and pgserver's stop does nothing. So ``stop``
reads the postmaster's PID from ``postmaster.pid``, stops it with ``pg_ctl -m fast`` and
checks that the process is gone. Which ``tollgate serve`` processes still use the server is
Tollgate's own bookkeeping (``serving``): a file per process under an exclusive ``flock``,
which the kernel releases however the process ends, so a dead serve is never taken for a
live one and a live one never for a dead one.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

from proxy.errors import Conflict, TollgateError

log = structlog.get_logger(__name__)

STOP_WAIT_S = 30  # pg_ctl -t: a fast shutdown ends every session at once, then waits for a checkpoint
GONE_WAIT_S = 5.0  # pg_ctl -w returns when postmaster.pid is removed, just before the process exits


@dataclass(frozen=True)
class Serve:
    """A live ``tollgate serve`` on this data directory."""

    pid: int
    address: str


@dataclass(frozen=True)
class Stopped:
    """What ``stop`` did: ``pid`` is the postmaster it stopped, None if none was running.
    ``stale_pid``: postmaster.pid named a process that is gone (a crash, a SIGKILL).
    ``forced``: the serves still running on it (``--force``); they fail closed until it is back."""

    pid: int | None
    stale_pid: int | None = None
    forced: tuple[Serve, ...] = ()


def pg_dir(data_dir: Path) -> Path:
    return data_dir / "pg"


def serving_dir(data_dir: Path) -> Path:
    return data_dir / "serving"


def ensure_running(data_dir: Path) -> str:
    """Start (or attach to) the embedded server; return a libpq URL (unix socket)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pgserver

    directory = pg_dir(data_dir)
    directory.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives every Tollgate process, for psql, until `db stop`.
    server = pgserver.get_server(directory, cleanup_mode=None)
    return server.get_uri()


@contextmanager
def serving(data_dir: Path, address: str) -> Iterator[None]:
    """Mark this process as a ``tollgate serve`` using the embedded Postgres while the block runs.

    The mark is locked before it gets its final name, so ``live_serves`` never sees it unlocked.
    The descriptor is not inheritable (Python's default), so a postmaster this process starts
    does not keep the lock after it dies.
    """
    folder = serving_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"serve-{os.getpid()}-{secrets.token_hex(4)}"
    draft, final = folder / f".{name}", folder / name
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, json.dumps({"pid": os.getpid(), "address": address}).encode())
        os.rename(draft, final)
        yield
    finally:
        final.unlink(missing_ok=True)
        draft.unlink(missing_ok=True)
        os.close(fd)


def live_serves(data_dir: Path) -> list[Serve]:
    """The ``tollgate serve`` processes using this data directory now; stale marks are removed."""
    live = []
    for path in sorted(serving_dir(data_dir).glob("serve-*")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # its serve exited between the listing and the open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            mark = json.loads(os.read(fd, 4096) or b"{}")
            live.append(Serve(int(mark.get("pid", 0)), str(mark.get("address", "?"))))
        else:
            path.unlink(missing_ok=True)  # its process died without removing it (SIGTERM, SIGKILL)
        finally:
            os.close(fd)
    return live


def postmaster_pid(data_dir: Path) -> int | None:
    """The PID postmaster.pid names (its first line), running or not; None without the file."""
    try:
        first = (pg_dir(data_dir) / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    except FileNotFoundError:
        return None
    return int(first) if first.isdigit() else None


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited. A zombie has: nobody reaps an orphaned
    postmaster in a container whose PID 1 does not, and ``kill(pid, 0)`` still succeeds on it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): launchd reaps orphans, so kill(pid, 0) is the answer
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_postmaster_of(pid: int, directory: Path) -> bool:
    """Whether ``pid`` is alive and runs on ``directory``: after a reboot or a crash the PID in
    postmaster.pid may belong to an unrelated process, which must not get a stop signal."""
    if not alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust postmaster.pid, as pg_ctl does
    wanted = directory.resolve()
    return any(arg and Path(os.fsdecode(arg)).resolve() == wanted for arg in argv[1:])


def stop(data_dir: Path, *, force: bool = False) -> Stopped:
    """Stop the embedded Postgres and return what was done. Never starts one.

    Refused (``Conflict``) while a live ``tollgate serve`` uses it, unless ``force``.
    """
    directory = pg_dir(data_dir)
    pid = postmaster_pid(data_dir)
    if pid is None:
        return Stopped(None)
    if not _is_postmaster_of(pid, directory):
        return Stopped(None, stale_pid=pid)
    users = live_serves(data_dir)
    if users and not force:
        named = ", ".join(f"pid {s.pid} on {s.address}" for s in users)
        raise Conflict("database_in_use",
                       f"the embedded Postgres in {directory} (pid {pid}) is in use by tollgate serve ({named}): "
                       "stop it first, or run tollgate db stop --force (the proxy then fails closed)")
    _stop_postmaster(directory, pid)
    return Stopped(pid, forced=tuple(users))


def _stop_postmaster(directory: Path, pid: int) -> None:
    """pg_ctl stop, fast (sessions are ended, a checkpoint is written), then immediate if that
    did not do it; done only when the postmaster process is gone."""
    answers = []
    for mode in ("fast", "immediate"):
        answers.append(f"-m {mode}: {_pg_ctl(directory, '-m', mode, '-w', '-t', str(STOP_WAIT_S), 'stop')}")
        deadline = time.monotonic() + GONE_WAIT_S
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not alive(pid):
            return
    raise TollgateError("database_stop_failed",
                        f"the embedded Postgres in {directory} (pid {pid}) is still running after "
                        f"pg_ctl stop ({'; '.join(answers)})")


def _pg_ctl(directory: Path, *args: str) -> str:
    """Run pgserver's pg_ctl on ``directory`` as the directory's owner (pg_ctl refuses root, and
    pgserver runs Postgres as a user of its own when Tollgate runs as root); its answer, one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as in ensure_running
        # pgserver documents pgserver.POSTGRES_BIN_PATH, but its __init__ does not re-export it
        from pgserver._commands import POSTGRES_BIN_PATH

    owner = directory.stat().st_uid if os.geteuid() == 0 else None
    try:
        done = subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(directory), *args], cwd=directory,
                              user=owner, capture_output=True, text=True, timeout=STOP_WAIT_S + 10, check=False)
    except subprocess.TimeoutExpired:
        return "timed out"
    said = " ".join((done.stdout + done.stderr).split())
    return said if done.returncode == 0 else f"exit {done.returncode}: {said}"
