"""``tollgate serve --workers N`` (issue 21, target 3): one port, N whole proxies, one supervisor.

Real processes throughout: the supervisor is ``python -m proxy serve --workers 2`` started as an
operator would, its workers are what it forks, and each is told apart by the ``Tollgate-Worker``
header (its pid) of ``GET /healthz`` on a connection of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proxy import config, migrate, workers
from tests.support import leaks
from tests.support.databases import database_of_its_own
from tests.support.embedded import cli_env, data_dir_outside_pytest, exited, postgres_on, tollgate
from tests.support.processes import free_port, proxy_env, tollgate_serve
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, policy
from tests.support.webhooks import receiver, until

CHARGE = b"amount=500&currency=usd&source=tok_visa"


def children(pid: int) -> set[int]:
    """The live (not zombie) processes whose parent is ``pid``, read from /proc."""
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(proc.name))
    return found


def serving(process: subprocess.Popen, count: int = 2) -> set[int]:
    """Wait for the supervisor's banner (every worker serves); its workers' pids."""
    until(lambda: "workers serving" in process.log_path.read_text(), "the workers' banner")  # type: ignore[attr-defined]
    workers = children(process.pid)
    assert len(workers) == count, process.log_path.read_text()  # type: ignore[attr-defined]
    return workers


def worker_of(client: httpx.Client) -> int:
    return int(client.get("/healthz").headers["tollgate-worker"])


def answered_by(base: str, connections: int = 40) -> list[int]:
    """The worker behind each of ``connections`` new connections."""
    pids = []
    for _ in range(connections):
        with httpx.Client(base_url=base, timeout=10) as client:
            pids.append(worker_of(client))
    return pids


def one_connection_per_worker(base: str, workers: set[int]) -> dict[int, httpx.Client]:
    """A kept-alive connection to each worker (new connections until every worker has one)."""
    held: dict[int, httpx.Client] = {}
    for _ in range(200):
        client = httpx.Client(base_url=base, timeout=60, limits=httpx.Limits(max_connections=1))
        pid = worker_of(client)
        if pid in held:
            client.close()
        else:
            held[pid] = client
        if set(held) == workers:
            return held
    raise AssertionError(f"200 connections reached only {sorted(held)} of {sorted(workers)}")


def make_key(base: str, token: str = ADMIN_TOKEN) -> str:
    created = httpx.post(f"{base}/admin/v1/keys", headers={"authorization": f"Bearer {token}"},
                         json={"vendor": "stripe", "policy": policy(), "upstream_secret": STRIPE_SECRET})
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def charge(client: httpx.Client, key: str, run: str) -> httpx.Response:
    return client.post("/stripe/v1/charges", content=CHARGE, headers={
        "authorization": f"Bearer {key}", "x-agent-run-id": run, "content-type": "application/x-www-form-urlencoded"})


def test_two_workers_on_a_fresh_database_share_one_port_and_both_answer(pg_url, stripe_emulator):
    """The supervisor migrates (an empty database) before it forks: both workers are ready at head,
    and new connections reach both."""
    with database_of_its_own(pg_url, "workers_port") as url:
        env = proxy_env(url, {"stripe": stripe_emulator[0]}, workers=2)
        with tollgate_serve(env) as (base, process):
            workers = serving(process)
            pids = answered_by(base)
            held = one_connection_per_worker(base, workers)
            key = make_key(base)
            for pid, client in held.items():
                ready = client.get("/readyz")
                assert ready.status_code == 200 and ready.json()["migration"] == migrate.head_revision()
                assert charge(client, key, f"port-{pid}").status_code == 200
                client.close()
        log = process.log_path.read_text()  # type: ignore[attr-defined]
    assert set(pids) == workers, f"40 connections: {sorted(pids)}"
    assert process.returncode == 0
    assert log.count('"event":"worker_started"') == 2


def test_a_killed_worker_is_replaced_and_the_other_answers_meanwhile(pg_url, stripe_emulator):
    env = proxy_env(pg_url, {"stripe": stripe_emulator[0]}, workers=2)
    with tollgate_serve(env) as (base, process):
        workers = serving(process)
        key = make_key(base)
        doomed, survivor = sorted(workers)
        os.kill(doomed, signal.SIGKILL)
        answers, seen = [], set()
        deadline = time.monotonic() + 60
        # Until both the survivor and the replacement have answered: new connections go to the
        # survivor alone until the replacement's lifespan has started and it listens.
        while not (replacements := children(process.pid) - workers) or not (seen - workers and survivor in seen):
            assert time.monotonic() < deadline, "no replacement answered within 60 s"
            with httpx.Client(base_url=base, timeout=10) as client:  # a new connection each time
                answers.append(charge(client, key, "replaced").status_code)
                seen.add(worker_of(client))
        (replacement,) = replacements
        held = one_connection_per_worker(base, {survivor, replacement})
        # The replacement ran the whole lifespan: it gates, forwards and settles a governed call.
        assert charge(held[replacement], key, "replacement").status_code == 200
        for client in held.values():
            client.close()
    assert set(answers) == {200}, answers
    assert doomed not in seen and survivor in seen


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_drains_every_worker_and_leaves_no_process(sig: signal.Signals) -> None:
    """On the embedded default: one Postgres for both workers, owned by the supervisor; a slow call
    in flight on each worker is answered; exit 0; nothing but the Postgres (kept for psql, as a
    single serve keeps it) is left, and ``db stop`` is not refused by a stale serve."""
    with data_dir_outside_pytest("tollgate-workers-") as data, serve_asgi(_slow_vendor()) as upstream:
        env = cli_env(data, TOLLGATE_LOG_FORMAT="json", TOLLGATE_WORKERS="2", TOLLGATE_UPSTREAM_STRIPE=upstream)
        try:
            with tollgate_serve(env) as (base, process):
                workers = serving(process)
                key = make_key(base, (data / "admin-token").read_text().strip())
                leaks.remember_secret(key)
                held = one_connection_per_worker(base, workers)
                answers: list[int] = []
                calls = [threading.Thread(target=lambda c=client: answers.append(charge(c, key, "drain").status_code))
                         for client in held.values()]
                for call in calls:
                    call.start()
                time.sleep(0.5)  # both calls are at the vendor now
                process.send_signal(sig)
                for call in calls:
                    call.join(timeout=40)
                assert process.wait(timeout=60) == 0
                assert answers == [200, 200]
                assert not any(_alive(pid) for pid in workers)
                assert len(postgres_on(data)) >= 1, "one Postgres, the supervisor's, still there for psql"
        finally:
            stopped = tollgate("db", "stop", env=env, check=False)
        assert stopped.returncode == 0, stopped.stderr
        assert postgres_on(data) == []


def test_a_worker_that_cannot_start_stops_the_whole_serve(pg_url):
    """A lifespan that fails (here: a signing key that is not one) is not a half-up server: the
    supervisor stops, says which worker failed, exits 1, and no worker is left."""
    env = {"TOLLGATE_SIGNING_KEY": "not-a-key", **proxy_env(pg_url, {}, workers=2)}
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="tollgate-workers-fail-", suffix=".log", delete=False) as log:
        process = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--port", str(port)], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    leaks.remember_log(Path(log.name))
    try:
        assert process.wait(timeout=120) == 1
    finally:
        if process.poll() is None:
            process.kill()
    said = Path(log.name).read_text()
    started = [json.loads(line)["pid"] for line in said.splitlines() if '"event":"worker_started"' in line]
    assert len(started) == 2 and not any(_alive(pid) for pid in started)
    assert "before it served (its log is above); stopping the other workers" in said
    assert "workers serving" not in said
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_two_workers_deliver_each_alert_once(pg_url, stripe_emulator):
    """The background loops are the replicas' (proxy/workers.py): here the alert lease. Both workers
    poll every 10 ms while 60 events commit; each event is sent once, in order, one attempt each."""
    with database_of_its_own(pg_url, "workers_alerts") as url, receiver() as (hook, got):
        migrate.upgrade(url)
        env = proxy_env(url, {"stripe": stripe_emulator[0]}, workers=2, alert_interval_s=0.01,
                        alert_retry_base_s=0.05)
        with tollgate_serve(env) as (base, process), psycopg.connect(url, autocommit=True, row_factory=dict_row) as sql:
            serving(process)
            created = httpx.post(f"{base}/admin/v1/alerts/subscriptions", json={"url": hook, "events": ["run_halted"]},
                                 headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
            assert created.status_code == 201
            subscription = created.json()
            leaks.remember_secret(subscription["secret"])
            for i in range(60):
                sql.execute("SELECT tollgate_alert_emit('run_halted', jsonb_build_object('agent_run_id', %s::text), "
                            "NULL)", [f"run_{i:02d}"])
            rows = until(lambda: _settled(sql, subscription["id"]), "60 deliveries")
        leaks.dump_database(url, "workers_alerts")
    assert [d.event["data"]["agent_run_id"] for d in got.accepted()] == [f"run_{i:02d}" for i in range(60)]
    assert len(got.received) == 60 and {r["attempts"] for r in rows} == {1}


def _settled(sql: psycopg.Connection, subscription: str) -> list[dict] | None:
    rows = sql.execute("SELECT status, attempts FROM alert_deliveries WHERE subscription_id = %s",
                       [subscription]).fetchall()
    return rows if len(rows) == 60 and all(r["status"] == "delivered" for r in rows) else None


def _alive(pid: int) -> bool:
    return not exited(pid)


def _slow_vendor() -> Starlette:
    async def slow_charge(request: Request) -> Response:
        await asyncio.sleep(1.5)
        body = {"id": f"ch_slow{time.monotonic_ns()}", "object": "charge", "amount": 500, "currency": "usd"}
        return Response(json.dumps(body), media_type="application/json", headers={"Request-Id": "req_slow"})

    return Starlette(routes=[Route("/v1/charges", slow_charge, methods=["POST"])])


@pytest.mark.parametrize(("files", "expected"), [
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu.max": "150000 100000\n"}, 2),
    ({"cpu.max": "50000 100000\n"}, 1),
    ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
], ids=["v2 no limit", "v2 1.5 CPUs", "v2 half a CPU", "v1 4 CPUs", "v1 no limit", "no cgroup files"])
def test_the_default_count_is_held_to_a_containers_cpu_limit(tmp_path: Path, files: dict[str, str],
                                                              expected: int | None) -> None:
    """One worker per core would start 16 in a 1-CPU pod on a 16-core node: the quota bounds it."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert workers.cpu_quota(tmp_path) == expected


def test_workers_given_win_and_the_default_is_at_least_one() -> None:
    assert workers.count(config.Settings(workers=3)) == 3
    assert workers.count(config.load(env={"TOLLGATE_WORKERS": "5"})) == 5
    assert 1 <= workers.count(config.Settings()) <= (os.cpu_count() or 1)


def test_a_port_in_use_is_refused_before_any_worker_starts(pg_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "proxy", "serve", "--port", str(port), "--workers", "2"],
                              env=proxy_env(pg_url, {}), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"tollgate: cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "worker_started" not in done.stderr


def test_a_supervisor_killed_takes_its_workers_with_it(pg_url):
    """kill -9 on the supervisor is a crash of the whole serve (PR_SET_PDEATHSIG): no worker is
    left holding the port or answering without a supervisor to replace it."""
    with tollgate_serve(proxy_env(pg_url, {}, workers=2)) as (base, process):
        workers = serving(process)
        process.kill()
        process.wait(timeout=10)
        until(lambda: not any(_alive(pid) for pid in workers), "the workers to die with the supervisor", 10)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/healthz", timeout=2)
