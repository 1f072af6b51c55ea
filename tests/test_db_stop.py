"""``tollgate db stop`` stops the embedded Postgres, and says truthfully what it did (issue 17, item 7).

It used to ask pgserver to stop the server, and pgserver stops it only when no other process
in its handle list is left; a ``tollgate serve`` stopped with SIGTERM stays in that list for
ever (uvicorn re-raises the signal, so no exit handler runs), so ``db stop`` printed
"embedded Postgres stopped", exited 0 and left Postgres running. Every check here looks at
the postmaster's own PID, from postmaster.pid, and at the processes on the data directory.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.embedded import cli_env, data_dir_outside_pytest, exited, postgres_on, postmaster_pid, tollgate
from tests.support.processes import tollgate_serve


@pytest.fixture()
def data_dir() -> Iterator[Path]:
    with data_dir_outside_pytest("tollgate-db-stop-") as data:
        yield data
        # A failing test must not leave its Postgres behind either.
        tollgate("db", "stop", "--force", env=cli_env(data), check=False)


def _server_starts(data: Path) -> int:
    """How many times a Postgres has started on ``data`` (its log, which pgserver keeps in the data dir)."""
    return (data / "pg" / "log").read_text().count("database system is ready to accept connections")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT (Ctrl-C)"])
def test_db_stop_after_serve_leaves_no_postgres(data_dir: Path, sig: signal.Signals) -> None:
    env = cli_env(data_dir, TOLLGATE_LOG_FORMAT="json")
    with tollgate_serve(env) as (_, process):
        postmaster = postmaster_pid(data_dir)
        process.send_signal(sig)
        process.wait(timeout=60)
    if sig == signal.SIGTERM:
        # The case the issue found: killed by its own re-raised SIGTERM, serve is still pgserver's user.
        assert process.returncode == -signal.SIGTERM
        assert process.pid in json.loads((data_dir / "pg" / ".handle_pids.json").read_text())
    assert not exited(postmaster), "Postgres outlives the proxy (for psql) until db stop"

    stopped = tollgate("db", "stop", env=env)
    assert exited(postmaster), "Postgres still runs after db stop"
    assert postgres_on(data_dir) == []
    assert stopped.stdout == f"embedded Postgres in {data_dir / 'pg'} stopped (pid {postmaster})\n"

    again = tollgate("db", "stop", env=env)
    assert again.stdout == f"embedded Postgres in {data_dir / 'pg'} was not running\n"
    assert postgres_on(data_dir) == []


def test_db_stop_refuses_while_serve_uses_it_and_force_stops_it(data_dir: Path) -> None:
    env = cli_env(data_dir, TOLLGATE_LOG_FORMAT="json")
    with tollgate_serve(env) as (base, process):
        postmaster = postmaster_pid(data_dir)
        refused = tollgate("db", "stop", env=env, check=False)
        assert refused.returncode == 1 and refused.stdout == ""
        assert f"is in use by tollgate serve (pid {process.pid} on {base})" in refused.stderr
        assert "tollgate db stop --force" in refused.stderr
        assert not exited(postmaster)
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200

        forced = tollgate("db", "stop", "--force", env=env)
        assert forced.stdout == f"embedded Postgres in {data_dir / 'pg'} stopped (pid {postmaster})\n"
        assert f"tollgate serve (pid {process.pid} on {base}) is still running" in forced.stderr
        assert exited(postmaster)
        assert postgres_on(data_dir) == []
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 503  # the proxy fails closed, as warned


def test_a_stale_postmaster_pid_is_not_running_and_starts_nothing(data_dir: Path) -> None:
    env = cli_env(data_dir)
    tollgate("db", "url", env=env)  # starts the embedded Postgres, as psql "$(tollgate db url)" does
    postmaster = postmaster_pid(data_dir)
    os.kill(postmaster, signal.SIGKILL)  # a crash: postmaster.pid stays behind, naming a dead process
    deadline = time.monotonic() + 30
    while not exited(postmaster) and time.monotonic() < deadline:
        time.sleep(0.05)
    starts = _server_starts(data_dir)

    stale = tollgate("db", "stop", env=env)
    assert stale.stdout == (f"embedded Postgres in {data_dir / 'pg'} was not running (postmaster.pid names pid "
                            f"{postmaster}, which is not its server: a crash or a reboot left it)\n")
    assert _server_starts(data_dir) == starts, "db stop started a Postgres to find out"
    assert postgres_on(data_dir) == []

