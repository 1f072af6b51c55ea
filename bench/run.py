"""The benchmark: ``.venv/bin/python -m bench.run [--quick] [--scale]`` (``make bench``).

Starts everything on 127.0.0.1 (a fake Stripe, nginx, the bare pass-through, real
``tollgate serve`` processes against a Postgres of its own), drives them with wrk, and
writes ``bench/REPORT.md`` (and ``bench/results.json``). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench import probe, report, scale, services, wrk
from bench.services import CpuMeter, Postgres, Service, Services

BENCH_DIR = Path(__file__).resolve().parent
QUICK_REPORT = Path(tempfile.gettempdir()) / "tollgate-bench-quick" / "REPORT.md"


@dataclass(frozen=True)
class Plan:
    duration_s: float = 10.0
    warmup_s: float = 3.0
    repeats: int = 3
    moderate: int = 8
    saturation: int = 64
    slow_connections: int = 256
    slow_delay_ms: float = 100.0
    pool_sizes: tuple[int, ...] = (10, 32)
    profile_s: float = 10.0
    diagnostics: bool = True  # also: governed with its log lines sent to /dev/null
    think_ms: float = 1000.0  # scenario 2 again with agents that think between calls (0: skip)
    other_transports: tuple[str, ...] = ("httpx-aiohttp", "httpx")  # bare pass-through, besides aiohttp
    scale: bool = False
    scale_rows: int = 10_000_000
    wrk_timeout_s: float = 10.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(duration_s=2.0, warmup_s=1.0, repeats=1, profile_s=0.0, diagnostics=False, pool_sizes=(10,),
                   think_ms=0.0, scale_rows=200_000)


@dataclass
class Target:
    """Something wrk can load: a URL, and the processes whose CPU use is worth reporting."""

    name: str
    service: Service
    path: str
    key: str | None
    cpu: dict[str, int | None] = field(default_factory=dict)
    script: Path | None = None
    unique: bool = False  # a body of its own per request (bench/wrk.py)


def say(message: str) -> None:
    print(message, flush=True)


# -- measuring -----------------------------------------------------------------------------------


def load_once(target: Target, connections: int, seconds: float, plan: Plan, log: Path) -> dict[str, Any]:
    """One wrk run with CPU accounting for the target's processes, wrk itself and the whole machine."""
    assert target.script is not None
    meter = CpuMeter(target.cpu)
    meter.start()
    machine = psutil.cpu_times()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = wrk.run(target.service.url, target.script, connections=connections, duration_s=seconds,
                     timeout_s=plan.wrk_timeout_s, log=log)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = meter.stop()
    busy = _busy_pct(machine, psutil.cpu_times(), result.duration_s)
    cpu["wrk"] = round(100 * ((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime))
                       / max(result.duration_s, 1e-9), 1)
    other = round(max(0.0, busy - sum(cpu.values())), 1)  # CPU used by anything not measured here
    return {**result.as_dict(), "cpu_pct": cpu, "machine_busy_pct": busy, "other_pct": other}


def _busy_pct(t0: Any, t1: Any, wall: float) -> float:
    """Whole-machine CPU use over the run, in percent of one core (200 = both cores busy)."""
    idle = (t1.idle + getattr(t1, "iowait", 0)) - (t0.idle + getattr(t0, "iowait", 0))
    total = sum(t1) - sum(t0)
    return round(100 * psutil.cpu_count() * (1 - idle / total), 1) if total > 0 else 0.0


def measure(targets: list[Target], connections: int, plan: Plan, workdir: Path, label: str) -> dict[str, Any]:
    """Warm each target up, then ``repeats`` rounds over all targets (order reversed on odd
    rounds, so no target always runs first): same-round ratios are taken from the same noise."""
    log = workdir / "wrk.log"
    for t in targets:
        say(f"  [{label}] warm-up {t.name} c={connections} {plan.warmup_s:g}s")
        wrk.run(t.service.url, t.script, connections=connections, duration_s=plan.warmup_s,  # type: ignore[arg-type]
                timeout_s=plan.wrk_timeout_s, log=log)
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    for r in range(plan.repeats):
        order = targets if r % 2 == 0 else list(reversed(targets))
        for t in order:
            result = load_once(t, connections, plan.duration_s, plan, log)
            runs[t.name].append({**result, "round": r})
            flag = f"  FAILED {result['failed']}" if result["failed"] else ""
            say(f"  [{label}] round {r + 1}/{plan.repeats} {t.name:<28} c={connections:<4} "
                f"{result['rps']:>9,.0f} req/s  p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms{flag}")
    return {"connections": connections, "runs": runs, "summary": {n: summarise(rs) for n, rs in runs.items()}}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    cpu_names = sorted({n for r in runs for n in r["cpu_pct"]})
    return {
        "rps": round(med("rps"), 1), "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"), "p999_ms": med("p999_ms"),
        "rps_all": [r["rps"] for r in runs], "failed": sum(r["failed"] for r in runs),
        "cpu_pct": {n: statistics.median(r["cpu_pct"].get(n, 0.0) for r in runs) for n in cpu_names},
        "machine_busy_pct": med("machine_busy_pct"), "other_pct": med("other_pct"),
        "other_pct_max": max(r["other_pct"] for r in runs),
    }


def same_round_ratio(block: dict[str, Any], num: str, den: str, key: str = "rps") -> float | None:
    """Median over rounds of num/den, each ratio from one round."""
    a, b = block["runs"].get(num), block["runs"].get(den)
    if not a or not b:
        return None
    ratios = [x[key] / y[key] for x, y in zip(a, b, strict=False) if y[key]]
    return round(statistics.median(ratios), 3) if ratios else None


def same_round_delta(block: dict[str, Any], num: str, den: str, key: str) -> float | None:
    a, b = block["runs"].get(num), block["runs"].get(den)
    if not a or not b:
        return None
    return round(statistics.median(x[key] - y[key] for x, y in zip(a, b, strict=False)), 3)


def prepare(target: Target, workdir: Path, think_ms: float = 0) -> Target:
    target.script = wrk.write_script(workdir / f"wrk-{_slug(target.name)}.lua", url_path=target.path,
                                     key=target.key or "", think_ms=think_ms, unique=target.unique)
    services.check_charge(target.service.url, target.path, target.key)
    return target


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


# -- scenarios ----------------------------------------------------------------------------------


def scenario_fast(group: Services, pg: Postgres, plan: Plan, workdir: Path, out: dict[str, Any]) -> dict[str, Any]:
    """Scenario 1: fast upstream (nginx answering a static charge); direct, nginx, bare, governed."""
    up = services.start_nginx_upstream(group)
    ngx = services.start_nginx_proxy(group, up.port)  # type: ignore[arg-type]
    bare = services.start_bare(group, up.url, "aiohttp")
    gov = services.start_tollgate(group, "governed", pg.url, up.url, log_to=workdir / "governed.log.jsonl")
    key = services.create_key(gov)
    out["key"] = {"id": key["id"], "policy": services.POLICY}
    pgpid = pg.postmaster_pid
    targets = [
        Target("direct", up, "/v1/charges", None, {"upstream": up.pid}),
        Target("nginx", ngx, "/stripe/v1/charges", None, {"proxy": ngx.pid, "upstream": up.pid}),
        Target("bare (aiohttp)", bare, "/stripe/v1/charges", None, {"proxy": bare.pid, "upstream": up.pid}),
    ]
    for transport in plan.other_transports:
        other = services.start_bare(group, up.url, transport)
        targets.append(Target(f"bare ({transport})", other, "/stripe/v1/charges", None,
                              {"proxy": other.pid, "upstream": up.pid}))
    targets.append(Target("governed", gov, "/stripe/v1/charges", key["key"],
                          {"proxy": gov.pid, "upstream": up.pid, "postgres": pgpid}))
    if plan.diagnostics:
        gov_null = services.start_tollgate(group, "governed-devnull", pg.url, up.url, log_to=None)
        targets.append(Target("governed (log to /dev/null)", gov_null, "/stripe/v1/charges", key["key"],
                              {"proxy": gov_null.pid, "upstream": up.pid, "postgres": pgpid}))
    targets.append(_workers(group, pg, up, key["key"], workdir))
    if plan.diagnostics:
        targets += _guarded(gov, key["key"], services.create_key(gov, services.GUARDED_POLICY)["key"], pg, up)
    for t in targets:
        prepare(t, workdir)
    result: dict[str, Any] = {"upstream": "nginx static charge (1 worker)", "blocks": {}, "key_id": key["id"]}
    for c in (plan.moderate, plan.saturation):
        block = measure(targets, c, plan, workdir, f"fast c={c}")
        block["ratios"] = {
            "governed/bare": same_round_ratio(block, "governed", "bare (aiohttp)"),
            "governed/nginx": same_round_ratio(block, "governed", "nginx"),
            "bare/nginx": same_round_ratio(block, "bare (aiohttp)", "nginx"),
            "bare httpx-aiohttp/aiohttp": same_round_ratio(block, "bare (httpx-aiohttp)", "bare (aiohttp)"),
            "bare httpx/aiohttp": same_round_ratio(block, "bare (httpx)", "bare (aiohttp)"),
            "governed devnull/file": same_round_ratio(block, "governed (log to /dev/null)", "governed"),
            f"{WORKERS}/governed": same_round_ratio(block, WORKERS, "governed"),
            f"{WORKERS}/bare": same_round_ratio(block, WORKERS, "bare (aiohttp)"),
            f"{GUARDED}/{UNIQUE}": same_round_ratio(block, GUARDED, UNIQUE),
        }
        block["added_ms"] = {
            f"{name} - direct": {k: same_round_delta(block, name, "direct", k) for k in ("p50_ms", "p99_ms", "p999_ms")}
            for name in ("nginx", "bare (aiohttp)", "governed")
        }
        result["blocks"][str(c)] = block
    result["targets"] = {t.name: t for t in targets}  # for the profile step; dropped before saving
    return result


WORKERS = "governed, 2 workers"
UNIQUE = "governed, unique bodies"
GUARDED = "guarded, unique bodies"


def _guarded(gov: Service, key: str, guarded_key: str, pg: Postgres, up: Service) -> list[Target]:
    """What the runaway-agent guards cost: the same process, one key without them and one with
    them (services.GUARDED_POLICY), each request a body of its own so no guard refuses it."""
    cpu = {"proxy": gov.pid, "upstream": up.pid, "postgres": pg.postmaster_pid}
    return [Target(UNIQUE, gov, "/stripe/v1/charges", key, dict(cpu), unique=True),
            Target(GUARDED, gov, "/stripe/v1/charges", guarded_key, dict(cpu), unique=True)]


def _workers(group: Services, pg: Postgres, up: Service, key: str, workdir: Path) -> Target:
    """``tollgate serve --workers 2`` on the same Postgres: every core of this machine used, one
    port (proxy/workers.py). Its "proxy" CPU is the supervisor's process tree, both workers."""
    served = services.start_tollgate(group, "governed-2-workers", pg.url, up.url, workers=2,
                                     log_to=workdir / "governed-2-workers.log.jsonl")
    deadline = time.monotonic() + 60  # /readyz answered from one worker; the banner says both serve
    while "workers serving" not in served.log.read_text(errors="replace"):
        if time.monotonic() > deadline or served.process.poll() is not None:
            raise RuntimeError(f"{served.name}: not every worker serves; see {served.log}")
        time.sleep(0.1)
    return Target(WORKERS, served, "/stripe/v1/charges", key,
                  {"proxy": served.pid, "upstream": up.pid, "postgres": pg.postmaster_pid})


def scenario_profile(fast: dict[str, Any], pg: Postgres, plan: Plan, workdir: Path) -> dict[str, Any]:
    """Evidence: py-spy on bare and governed at saturation, Postgres per-function timings,
    the serial cost of governance at one connection, the log line, the disk flush."""
    targets: dict[str, Target] = fast["targets"]
    out: dict[str, Any] = {"fsync_us": probe.fsync_us(workdir), "log_line_us": probe.log_line_us(services.ROOT)}
    log = workdir / "wrk.log"
    one = {}
    for name in ("direct", "bare (aiohttp)", "governed"):
        t = targets[name]
        before_c1 = probe.function_stats(pg.url)
        wrk.run(t.service.url, t.script, connections=1, duration_s=1, log=log)  # type: ignore[arg-type]
        one[name] = load_once(t, 1, max(3.0, plan.duration_s / 2), plan, log)
        say(f"  [profile] {name} c=1: {one[name]['rps']:,.0f} req/s p50 {one[name]['p50_ms']:.3f} ms")
        if name == "governed":
            time.sleep(1.0)  # Postgres flushes function statistics about once a second
            out["pg_functions_c1"] = probe.function_delta(before_c1, probe.function_stats(pg.url))
    out["c1"] = one
    if plan.profile_s > 0:
        out["db_path"] = {}
        for c in (1, plan.moderate, plan.saturation):
            out["db_path"][str(c)] = _guard(lambda c=c: db_path(pg, fast["key_id"], c, max(3.0, plan.duration_s / 2)))
            say(f"  [profile] database path alone c={c}: {out['db_path'][str(c)]}")
    before = probe.function_stats(pg.url)
    profile = plan.profile_s > 0 and probe.pyspy_available() is not None
    if not profile:
        out["pyspy"] = "skipped (py-spy not installed, or --quick)"
    for name in ("bare (aiohttp)", "governed") if plan.profile_s > 0 else ():
        t = targets[name]
        raw = workdir / f"pyspy-{_slug(name)}.txt"
        load = subprocess.Popen(["wrk", "-t1", f"-c{plan.saturation}", f"-d{plan.profile_s + 4:g}s",
                                 "-s", str(t.script), t.service.url],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.5)
            if profile:
                probe.pyspy_record(t.service.pid, plan.profile_s, raw)
            load.wait(timeout=plan.profile_s + 30)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
        if profile:
            out[f"pyspy {name}"] = probe.categorise(raw)
            say(f"  [profile] py-spy {name}: {out[f'pyspy {name}']['share_pct']}")
    time.sleep(1.0)  # Postgres flushes function statistics about once a second
    out["pg_functions"] = probe.function_delta(before, probe.function_stats(pg.url))
    if plan.profile_s > 0:
        out["sustained"] = _guard(lambda: sustained(targets["governed"], pg, plan, workdir))
    out["pg_functions_note"] = f"calls during the governed c={plan.saturation} profile run"
    return out


def db_path(pg: Postgres, key_id: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """bench/dbpath.py in a child process: gate + settle only; its CPU and Postgres' CPU."""
    meter = CpuMeter({"postgres": pg.postmaster_pid})
    meter.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bench.dbpath", pg.url, key_id, services.MASTER_KEY,
                           "--concurrency", str(concurrency), "--seconds", str(seconds)],
                          cwd=services.ROOT, capture_output=True, text=True, timeout=seconds + 120)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = meter.stop()
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"bench.dbpath failed: {done.stderr.strip()[-300:]}")
    result = json.loads(line[7:])
    client = 100 * ((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)) / wall
    return {**result, "cpu_pct": {"postgres": cpu.get("postgres"), "client (Python, incl. start-up)": round(client, 1)}}


def scenario_slow(pg: Postgres, plan: Plan, workdir: Path) -> dict[str, Any]:
    """Scenario 2: upstream answering after 100 ms, 256 connections: direct vs governed (pool sizes)."""
    with Services(workdir) as group:
        alone = services.start_python_upstream(group, 0.0, name="upstream-py-nodelay")
        t_alone = prepare(Target("python upstream, no delay", alone, "/v1/charges", None, {"upstream": alone.pid}),
                          workdir)
        capacity = load_once(t_alone, plan.saturation, plan.duration_s, plan, workdir / "wrk.log")
        say(f"  [slow] python upstream alone, no delay, c={plan.saturation}: {capacity['rps']:,.0f} req/s")
        group.stop(alone)

        slow = services.start_python_upstream(group, plan.slow_delay_ms, name="upstream-py-slow")
        targets = [Target("direct", slow, "/v1/charges", None, {"upstream": slow.pid}),
                   Target("bare (aiohttp)", services.start_bare(group, slow.url, "aiohttp", name="bare-slow"),
                          "/stripe/v1/charges", None)]
        targets[1].cpu = {"proxy": targets[1].service.pid, "upstream": slow.pid}
        key = None
        for size in plan.pool_sizes:
            gov = services.start_tollgate(group, f"governed-pool{size}", pg.url, slow.url, pool_size=size,
                                          log_to=workdir / f"governed-pool{size}.log.jsonl")
            key = key or services.create_key(gov)["key"]
            targets.append(Target(f"governed pool={size}", gov, "/stripe/v1/charges", key,
                                  {"proxy": gov.pid, "upstream": slow.pid, "postgres": pg.postmaster_pid}))
        for t in targets:
            prepare(t, workdir)
        block = measure(targets, plan.slow_connections, plan, workdir, f"slow c={plan.slow_connections}")
        block["added_ms"] = {
            f"{t.name} - direct": {k: same_round_delta(block, t.name, "direct", k)
                                   for k in ("p50_ms", "p99_ms", "p999_ms")}
            for t in targets[1:]
        }
        block["ceiling_rps"] = round(plan.slow_connections / (plan.slow_delay_ms / 1000), 1)
        blocks = {str(plan.slow_connections): block}
        if plan.think_ms > 0:
            thinking = [Target(f"{t.name}, {plan.think_ms:g} ms think", t.service, t.path, t.key, t.cpu)
                        for t in targets
                        if t.name in ("direct", "bare (aiohttp)", f"governed pool={plan.pool_sizes[0]}")]
            for t in thinking:
                prepare(t, workdir, think_ms=plan.think_ms)
            think = measure(thinking, plan.slow_connections, plan, workdir,
                            f"slow+think c={plan.slow_connections}")
            think["added_ms"] = {
                f"{t.name} - direct": {k: same_round_delta(think, t.name, thinking[0].name, k)
                                       for k in ("p50_ms", "p99_ms", "p999_ms")} for t in thinking[1:]}
            think["ceiling_rps"] = round(plan.slow_connections / ((plan.slow_delay_ms + plan.think_ms) / 1000), 1)
            think["think_ms"] = plan.think_ms
            blocks[f"{plan.slow_connections} thinking"] = think
        return {"upstream": f"python asyncio, {plan.slow_delay_ms:g} ms delay", "upstream_alone": capacity,
                "blocks": blocks}


def scenario_scale(pg: Postgres, plan: Plan, workdir: Path) -> dict[str, Any]:
    """Scenario 3: governed throughput and run-id lookups with an empty vs a 10M-row audit table."""
    with Services(workdir) as group:
        up = services.start_nginx_upstream(group)
        gov_service = services.start_tollgate(group, "governed-scale", pg.url, up.url,
                                              log_to=workdir / "governed-scale.log.jsonl")
        key = services.create_key(gov_service)
        gov = prepare(Target("governed", gov_service, "/stripe/v1/charges", key["key"],
                             {"proxy": gov_service.pid, "upstream": up.pid, "postgres": pg.postmaster_pid}), workdir)
        probe.fetch(pg.url, "TRUNCATE audit_events")
        _clean_slate(pg)
        out: dict[str, Any] = {"rows_target": plan.scale_rows, "blocks": {}}
        for c in (plan.moderate, plan.saturation):
            block = measure([gov], c, plan, workdir, f"scale empty c={c}")
            out["blocks"][f"empty c={c}"] = {**block, "rows": _count(pg)}
        say(f"  [scale] filling audit_events to {plan.scale_rows:,} rows (this takes minutes)")
        out["fill"] = scale.fill(pg.url, plan.scale_rows, chunk=min(1_000_000, max(plan.scale_rows // 10, 10_000)),
                                 progress=say)
        say(f"  [scale] {out['fill']}")
        _clean_slate(pg)
        out["lookups"] = scale.lookups(pg.url, out["fill"]["n_param"], samples=50 if plan.repeats == 1 else 300)
        say(f"  [scale] run-id lookup: {out['lookups']['execution_ms']} ms (server), "
            f"{out['lookups']['client_round_trip_ms']} ms (client)")
        for c in (plan.moderate, plan.saturation):
            block = measure([gov], c, plan, workdir, f"scale full c={c}")
            out["blocks"][f"full c={c}"] = {**block, "rows": _count(pg)}
        return out


def _clean_slate(pg: Postgres) -> None:
    """The same starting state on both sides of a comparison: every table vacuumed, no dirty pages."""
    probe.fetch(pg.url, "VACUUM ANALYZE")
    probe.fetch(pg.url, "CHECKPOINT")


def sustained(target: Target, pg: Postgres, plan: Plan, workdir: Path, windows: int = 6,
              window_s: float = 20.0) -> dict[str, Any]:
    """Back-to-back windows of load on one process: is throughput flat, or does it drift with the
    state of the hot tables (dead row versions, autovacuum)?"""
    _clean_slate(pg)
    # audit_events is partitioned: its row versions live in the current month's partition.
    stats_sql = ("SELECT CASE WHEN relname LIKE 'audit_events_%' THEN 'audit_events' ELSE relname END AS relname, "
                 "sum(n_dead_tup)::bigint AS n_dead_tup, sum(autovacuum_count)::bigint AS autovacuum_count "
                 "FROM pg_stat_user_tables WHERE relname IN ('budget_counters', 'reservations') "
                 "OR relname LIKE 'audit_events_%' GROUP BY 1 ORDER BY 1")
    out = []
    for i in range(windows):
        result = load_once(target, plan.saturation, window_s, plan, workdir / "wrk.log")
        tables = {r["relname"]: {"dead": r["n_dead_tup"], "autovacuums": r["autovacuum_count"]}
                  for r in probe.fetch(pg.url, stats_sql)}
        out.append({"window": i, "rps": result["rps"], "p99_ms": result["p99_ms"], "failed": result["failed"],
                    "other_pct": result["other_pct"], "tables": tables})
        say(f"  [sustained] window {i + 1}/{windows}: {result['rps']:,.0f} req/s p99 {result['p99_ms']:.1f} ms "
            f"{tables}")
    return {"connections": plan.saturation, "window_s": window_s, "windows": out}


def _count(pg: Postgres) -> int:
    return int(probe.fetch(pg.url, "SELECT count(*) AS n FROM audit_events")[0]["n"])


# -- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run (short, one round)")
    parser.add_argument("--scale", action="store_true", help="also scenario 3: the audit table at 10M rows")
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 10)")
    parser.add_argument("--repeats", type=int, help="rounds per scenario (default 3)")
    parser.add_argument("--scale-rows", type=int, help="rows for scenario 3 (default 10,000,000)")
    parser.add_argument("--report", type=Path, help="where to write the report "
                        "(default bench/REPORT.md; with --quick, the work directory)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, wrk scripts)")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="MIN",
                        help="first wait up to MIN minutes for the machine to be idle (shared machines)")
    parser.add_argument("--source", metavar="REV", help="benchmark this git revision (e.g. HEAD), exported to a "
                        "temporary directory, instead of the working tree (which others may be editing)")
    args = parser.parse_args(argv)
    if args.source:
        return _run_from_revision(args.source, argv if argv is not None else sys.argv[1:], args.report)

    plan = Plan.quick() if args.quick else Plan()
    overrides = {k: v for k, v in (("duration_s", args.duration), ("repeats", args.repeats),
                                   ("scale_rows", args.scale_rows)) if v is not None}
    plan = Plan(**{**plan.__dict__, **overrides, "scale": args.scale})
    missing = [tool for tool in ("wrk", "nginx") if shutil.which(tool) is None]
    if missing:
        print(f"bench: {' and '.join(missing)} not found; install with: apt-get install -y wrk nginx", file=sys.stderr)
        return 2

    signal.signal(signal.SIGTERM, _interrupt)
    if args.wait_quiet > 0:
        _wait_quiet(args.wait_quiet)
    workdir = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    os.chmod(workdir, 0o755)  # pgserver runs Postgres as its own user when we are root
    command = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    results: dict[str, Any] = {"plan": plan.__dict__, "command": command.strip(), "started": time.time(),
                               "machine": report.machine(), "workdir": str(workdir)}
    say(f"bench: work directory {workdir}")
    pg: Postgres | None = None
    ok = False
    try:
        pg = Postgres(workdir / "pg")
        probe.fetch(pg.url, "ALTER DATABASE postgres SET track_functions = 'pl'")  # statistics only
        results["postgres"] = report.postgres_facts(pg.url)
        results["versions"] = report.versions(pg.url)
        # Each scenario stops its processes before the next starts: idle proxies keep their pooled
        # connections, and Postgres' default max_connections (100) is shared by all of them.
        with Services(workdir) as group:
            say("scenario 1: fast upstream")
            fast = scenario_fast(group, pg, plan, workdir, results)
            results["fast"] = fast
            say("evidence: profiles and probes")
            results["profile"] = _guard(lambda: scenario_profile(fast, pg, plan, workdir))  # type: ignore[arg-type]
            fast.pop("targets", None)
        say("scenario 2: slow upstream")
        results["slow"] = scenario_slow(pg, plan, workdir)
        if plan.scale:
            say("scenario 3: audit table at scale")
            results["scale"] = scenario_scale(pg, plan, workdir)
        ok = True
    except KeyboardInterrupt:
        print("bench: interrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        if pg is not None:
            try:
                pg.stop()
            except Exception as exc:  # keep cleaning up
                print(f"bench: stopping Postgres: {exc}", file=sys.stderr)
        shutil.rmtree(workdir / "pg", ignore_errors=True)
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            print(f"bench: logs kept in {workdir}", file=sys.stderr)
    results["finished"] = time.time()
    target = args.report or (QUICK_REPORT if args.quick else BENCH_DIR / "REPORT.md")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(report.render(results))
    target.with_name(target.stem.replace("REPORT", "results") + ".json").write_text(
        json.dumps(results, indent=1, default=_json_default))
    say(f"bench: report written to {target}")
    return 0


def _run_from_revision(rev: str, argv: list[str], report_path: Path | None) -> int:
    """git archive REV into a temporary directory, add this bench/ to it, run the harness there."""
    root = services.ROOT
    sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                         capture_output=True, text=True, timeout=30)
    if sha.returncode != 0:
        print(f"bench: unknown revision {rev!r}: {sha.stderr.strip()}", file=sys.stderr)
        return 2
    commit = sha.stdout.strip()
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-src-") as src:
        archive = subprocess.Popen(["git", "-C", str(root), "archive", commit], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", src], stdin=archive.stdout, check=True, timeout=120)
        archive.wait(timeout=60)
        shutil.rmtree(Path(src) / "bench", ignore_errors=True)
        shutil.copytree(BENCH_DIR, Path(src) / "bench", ignore=shutil.ignore_patterns("__pycache__"))
        rest, skip = [], False
        for a in argv:  # drop --source/--report and their values; the report path is made absolute below
            if skip:
                skip = False
            elif a in ("--source", "--report"):
                skip = True
            elif not a.startswith(("--source=", "--report=")):
                rest.append(a)
        target = (report_path.resolve() if report_path
                  else QUICK_REPORT if "--quick" in rest else BENCH_DIR / "REPORT.md")
        rest += ["--report", str(target)]
        say(f"bench: running revision {commit[:12]} from {src}")
        env = {**os.environ, "BENCH_SOURCE": f"{rev} = {commit[:12]} (exported with git archive)"}
        return subprocess.run([sys.executable, "-m", "bench.run", *rest], cwd=src, env=env).returncode


def _wait_quiet(minutes: float, threshold_pct: float = 10.0) -> None:
    """Wait until the whole machine is below threshold_pct busy for 3 samples of 5 s in a row."""
    deadline, calm = time.monotonic() + minutes * 60, 0
    while time.monotonic() < deadline and calm < 3:
        busy = psutil.cpu_percent(interval=5)
        calm = calm + 1 if busy < threshold_pct else 0
        if calm == 0:
            say(f"bench: machine {busy:.0f} % busy; waiting for it to be idle")
    say("bench: machine idle" if calm >= 3 else "bench: still busy; measuring anyway (see the noise notes)")


def _guard(step: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Evidence steps must not lose a run's measurements: record their failure instead."""
    try:
        return step()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        say(f"  evidence step failed: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Target):
        return value.name
    return str(value)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
