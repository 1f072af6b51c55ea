"""A/B of the governed path's CPU per call, within one Postgres and one proxy process.

The full bench (bench/run.py) takes 17 minutes and measures throughput on a shared machine;
this script answers a narrower question fast: how much CPU does one governed call cost the
proxy and Postgres, and which variant costs what. Against ONE fresh embedded Postgres and ONE
``tollgate serve``, it drives N sequential calls (c=1) and N at c=8, with and without an
``X-Agent-Run-Id``, in rounds (median of the rounds is quoted), and reports per call:

- proxy CPU (utime+stime deltas of the proxy process, /proc via psutil);
- Postgres CPU (the postmaster's tree: every backend, the WAL writer, the checkpointer);
- writing transactions per call (transaction ids assigned: ``pg_current_xact_id()``, exact
  and at once, where pg_stat_database lags up to 10 s behind busy backends), and per PL/pgSQL
  function the mean ms (pg_stat_user_functions, ``track_functions = 'pl'``; its call counts
  lag the same way). pg_stat_statements is not in the pgserver wheel: no per-statement figures.

``--against REV`` also starts a ``tollgate serve`` of REV (``git archive``) on the same
Postgres and alternates the two phase by phase: an A/B within one run, on one database.

CPU time, not wall time, because other people's tests share the two cores. The client is
threads of http.client keep-alive connections: its own CPU is not counted.

    python -m bench.ab --calls 400 --rounds 3 [--pyspy /tmp/lone.raw]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import probe, services
from bench.services import CpuMeter, Postgres, Services
from bench.wrk import BODY

_XID = "SELECT pg_current_xact_id()::text::bigint AS xid"  # assigns one itself: subtracted below


def _client(port: int, key: str, run_id: bool, calls: int, worker: int, failures: list[int]) -> None:
    conn = http.client.HTTPConnection(services.HOST, port, timeout=30)
    headers = {"content-type": "application/x-www-form-urlencoded", "authorization": f"Bearer {key}"}
    for i in range(calls):
        if run_id:
            headers["x-agent-run-id"] = f"run_ab_{(worker + i) % 32:04d}"
        conn.request("POST", "/stripe/v1/charges", BODY, headers)
        response = conn.getresponse()
        response.read()
        if response.status >= 400:
            failures.append(response.status)
    conn.close()


def drive(port: int, key: str, *, run_id: bool, calls: int, concurrency: int) -> int:
    """``calls`` governed calls over ``concurrency`` connections; the number that failed."""
    failures: list[int] = []
    threads = [threading.Thread(target=_client, args=(port, key, run_id, calls // concurrency, n, failures))
               for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(failures)


def _stats(url: str) -> tuple[int, dict[str, tuple[int, float]]]:
    time.sleep(1.2)  # backends report their statistics at most once a second, when idle
    [row] = probe.fetch(url, _XID)
    return row["xid"], probe.function_stats(url)


def measure(pg: Postgres, proxy: services.Service, key: str, *, run_id: bool, calls: int,
            concurrency: int) -> dict[str, Any]:
    """One phase: CPU µs per call of the proxy and of Postgres, transactions and functions per call."""
    xacts0, funcs0 = _stats(pg.url)
    pg_pid = pg.postmaster_pid
    assert pg_pid is not None and proxy.port is not None
    proxy0, pg0 = CpuMeter._cpu(proxy.pid), CpuMeter._cpu(pg_pid)
    wall0 = time.perf_counter()
    failed = drive(proxy.port, key, run_id=run_id, calls=calls, concurrency=concurrency)
    wall = time.perf_counter() - wall0
    proxy1, pg1 = CpuMeter._cpu(proxy.pid), CpuMeter._cpu(pg_pid)
    done = calls // concurrency * concurrency
    xacts1, funcs1 = _stats(pg.url)
    return {"proxy_us": (proxy1 - proxy0) * 1e6 / done, "pg_us": (pg1 - pg0) * 1e6 / done,
            "wall_ms": wall * 1000 / done * concurrency, "failed": failed,
            "xacts_per_call": (xacts1 - xacts0 - 1) / done,  # the reading's own
            "functions": probe.function_delta(funcs0, funcs1)}


def _median(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out = {k: round(statistics.median(r[k] for r in rounds), 2)
           for k in ("proxy_us", "pg_us", "wall_ms", "xacts_per_call")}
    out["failed"] = sum(r["failed"] for r in rounds)
    out["rounds_proxy_us"] = [round(r["proxy_us"]) for r in rounds]
    out["rounds_pg_us"] = [round(r["pg_us"]) for r in rounds]
    out["functions"] = rounds[len(rounds) // 2]["functions"]
    return out


def pyspy(proxy: services.Service, key: str, calls: int, out: Path) -> None:
    """py-spy (native frames, 500 Hz) on the proxy while it serves ``calls`` lone calls with a run id."""
    exe = probe.pyspy_available()
    assert exe is not None, "py-spy is not installed"
    spy = subprocess.Popen([exe, "record", "--native", "-r", "500", "-o", str(out), "--format", "raw",
                            "-p", str(proxy.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    assert proxy.port is not None
    drive(proxy.port, key, run_id=True, calls=calls, concurrency=1)
    spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
    spy.wait(60)


def export(rev: str, into: Path) -> Path:
    """The tree of ``rev`` (git archive) under ``into``, as bench/run.py's --source exports it."""
    archive = subprocess.Popen(["git", "-C", str(services.ROOT), "archive", rev], stdout=subprocess.PIPE)
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, check=True, timeout=120)
    archive.wait(timeout=60)
    return into


def run(calls: int, rounds: int, spy_to: Path | None, sql: Path | None, against: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tollgate-ab-") as tmp, Services(Path(tmp)) as group:
        pg = Postgres(Path(tmp) / "pg")
        try:
            probe.fetch(pg.url, "ALTER DATABASE postgres SET track_functions = 'pl'")
            upstream = services.start_nginx_upstream(group)
            proxies = {"this tree": services.start_tollgate(group, "governed", pg.url, upstream.url)}
            key = services.create_key(proxies["this tree"])["key"]
            if sql is not None:  # the variant under test: function texts replaced after migrations ran
                probe.fetch(pg.url, sql.read_text())
            if against is not None:
                proxies[against] = services.start_tollgate(group, "against", pg.url, upstream.url,
                                                           source=export(against, Path(tmp) / "against"))
            for proxy in proxies.values():
                services.check_charge(proxy.url, "/stripe/v1/charges", key)
                drive(proxy.port or 0, key, run_id=True, calls=200, concurrency=8)  # warm caches and pools
            phases: dict[str, list[dict[str, Any]]] = {}
            for n in range(rounds):
                for label, proxy in (proxies.items() if n % 2 == 0 else reversed(proxies.items())):
                    for run_id in (False, True):
                        for c in (1, 8):
                            name = f"{label}: c={c} run_id={'on' if run_id else 'off'}"
                            phases.setdefault(name, []).append(
                                measure(pg, proxy, key, run_id=run_id, calls=calls * c, concurrency=c))
            if spy_to is not None:
                pyspy(proxies["this tree"], key, calls, spy_to)
            return {name: _median(rs) for name, rs in sorted(phases.items())}
        finally:
            group.close()
            pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per phase at c=1 (c=8: 8 times as many)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pyspy", type=Path, default=None, help="also py-spy a lone-call loop into this file")
    parser.add_argument("--sql", type=Path, default=None, help="SQL run after migrations (a variant's functions)")
    parser.add_argument("--against", metavar="REV", help="also serve REV on the same Postgres, phases alternated")
    args = parser.parse_args()
    result = run(args.calls, args.rounds, args.pyspy, args.sql, args.against)
    for name, r in result.items():
        print(f"{name:34} proxy {r['proxy_us']:7.0f} µs {r['rounds_proxy_us']}  pg {r['pg_us']:6.0f} µs "
              f"{r['rounds_pg_us']}  wall/call {r['wall_ms']:.2f} ms  writes/call {r['xacts_per_call']:.2f}"
              f"  failed {r['failed']}")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
