"""The embedded Postgres seen from outside, as an operator would check it: the postmaster's PID
in ``postmaster.pid`` and the ``postgres`` processes running on a data directory.

Written against /proc and ``kill(pid, 0)`` directly, not with proxy/embedded.py's helpers, so
that a test of ``tollgate db stop`` does not take the code under test's word for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI on the embedded default in ``data_dir`` (no DATABASE_URL, no settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_") and k != "DATABASE_URL"}
    env.update(TOLLGATE_DATA_DIR=str(data_dir), **extra)
    return env


def tollgate(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-W", "ignore", "-m", "proxy", *args], env=env, capture_output=True,
                            text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"tollgate {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def postmaster_pid(data_dir: Path) -> int:
    """The PID on postmaster.pid's first line: Postgres writes it there itself."""
    return int((data_dir / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])


def exited(pid: int) -> bool:
    """The process is gone: ``kill(pid, 0)`` raises ProcessLookupError, or it is a zombie (this
    machine's PID 1 does not reap orphans, and Postgres' postmaster is one: pg_ctl leaves it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return _state(pid) in ("Z", None)


def postgres_on(data_dir: Path) -> list[int]:
    """Every live ``postgres`` process whose command line names ``data_dir/pg`` (the postmaster)."""
    wanted = str((data_dir / "pg").resolve()).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"postgres") and wanted in argv and _state(int(proc.name)) not in ("Z", None):
            found.append(int(proc.name))
    return found


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None  # reaped meanwhile


@contextmanager
def data_dir_outside_pytest(prefix: str) -> Iterator[Path]:
    """A fresh data directory for an embedded Postgres, not under pytest's ``tmp_path``: pytest makes
    /tmp/pytest-of-<user> 0700 at the start of every session, and when Tollgate runs as root pgserver
    runs Postgres as a user of its own, which must traverse to the directory (a second pytest session
    on the machine made initdb fail with "Permission denied")."""
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        yield Path(directory) / "data"
