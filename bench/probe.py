"""Evidence for "where the time goes": a py-spy profile of the governed process under load,
Postgres' own per-function timings, the disk's flush cost, and the per-request log line.

Nothing here changes what is measured: py-spy samples a separate run, the function
timings come from ``track_functions = 'pl'`` (statistics only), and the log-line cost is
timed in a child process with its output sent to /dev/null.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

# Where a sample's CPU time goes. First the calls that enclose a whole step of the request
# path: if any frame of the stack is inside one of them, the sample is that step's (a JSON
# encode inside the gate call is gate time). Otherwise the innermost frame that belongs to a
# known layer decides. Samples with no Python frame above the event loop (uvloop's C code,
# asyncpg's and httptools' Cython callbacks) are "event loop and other".
STEPS: list[tuple[str, re.Pattern[str]]] = [  # py-spy names methods "Class.method (file:line)"
    ("log line (structlog JSON)", re.compile(r"\((structlog/|proxy/logs\.py)|(^|\.)_log \(proxy/handler")),
    ("settle call (Python side)", re.compile(r"(^|\.)settle \(proxy/gate\.py")),
    ("gate call (Python side)", re.compile(r"(^|\.)(admit|_drain|_decide) \(proxy/gate\.py")),
    ("key lookup / auth", re.compile(r"\(proxy/(keycache|vaultkeys|auth)\.py|(^|\.)_authenticate \(")),
    ("upstream client (httpx + transport)", re.compile(r"(^|\.)send \(proxy/upstream\.py")),
]
LAYERS: list[tuple[str, re.Pattern[str]]] = [
    ("upstream client (httpx + transport)",
     re.compile(r"\((httpx|httpx_aiohttp|aiohttp|httpcore|anyio|h11|yarl|multidict)/")),
    ("database driver (asyncpg, SQLAlchemy pool)", re.compile(r"\((asyncpg|sqlalchemy)/|\(proxy/hotdb\.py")),
    ("parse, policy, pricing", re.compile(r"\(vendors/|\(proxy/(policy|paths|scope)\.py")),
    ("HTTP server (uvicorn, httptools)", re.compile(r"\(uvicorn/(protocols|middleware)/|\(httptools/")),
    ("request path glue (handler, ASGI)", re.compile(r"\(proxy/(handler|asgi|app|bare)\.py")),
]
OTHER = "event loop and other"
CATEGORY_NAMES = list(dict.fromkeys([n for n, _ in STEPS] + [n for n, _ in LAYERS] + [OTHER]))


def classify(frames: list[str]) -> str:
    for name, pattern in STEPS:
        if any(pattern.search(f) for f in frames):
            return name
    for frame in reversed(frames):
        for name, pattern in LAYERS:
            if pattern.search(frame):
                return name
    return OTHER


def pyspy_available() -> str | None:
    return shutil.which("py-spy") or (str(Path(sys.executable).parent / "py-spy")
                                      if (Path(sys.executable).parent / "py-spy").exists() else None)


def pyspy_record(pid: int, seconds: float, out: Path, rate: int = 200) -> Path:
    exe = pyspy_available()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    argv = [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate),
            "--format", "raw", "--output", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed: {done.stderr.strip()[-400:]}")
    return out


def categorise(raw: Path) -> dict[str, Any]:
    """Share of on-CPU samples per category, and the hottest leaf functions."""
    totals: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        samples += count
        totals[classify(frames)] += count
        leaves[frames[-1]] += count
    share = {name: round(100 * totals[name] / samples, 1) for name in CATEGORY_NAMES} if samples else {}
    return {"samples": samples, "share_pct": share,
            "top_leaves": [(name, round(100 * n / samples, 1)) for name, n in leaves.most_common(15)]
            if samples else []}


def _short(frame: str) -> str:
    """'fn (/abs/site-packages/pkg/mod.py:12)' -> 'fn (pkg/mod.py:12)'; project files relative."""
    frame = re.sub(r"\(/[^()]*?/site-packages/", "(/", frame)
    frame = re.sub(r"\(/[^()]*?/(proxy|vendors|bench)/", r"(\1/", frame)
    frame = re.sub(r"\(/[^()]*?/lib/python3\.\d+/", "(stdlib/", frame)
    return frame.replace("(/", "(")


# -- Postgres function timings ------------------------------------------------------------------


async def _fetch(url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=30)
    try:
        return [dict(r) for r in await conn.fetch(query, *args)]
    finally:
        await conn.close()


def fetch(url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    return asyncio.run(_fetch(url, query, *args))


FUNCTION_STATS = ("SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions "
                  "WHERE schemaname = 'public' ORDER BY funcname")


def function_stats(url: str) -> dict[str, tuple[int, float]]:
    """Per PL/pgSQL function: (calls, total ms), as of the last stats flush."""
    fetch(url, "SELECT pg_stat_clear_snapshot()")
    return {r["funcname"]: (r["calls"], r["total_time"]) for r in fetch(url, FUNCTION_STATS)}


def function_delta(before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]]) -> dict[str, Any]:
    out = {}
    for name, (calls, total) in after.items():
        c0, t0 = before.get(name, (0, 0.0))
        if calls - c0 > 0:
            out[name] = {"calls": calls - c0, "mean_ms": round((total - t0) / (calls - c0), 4)}
    return out


# -- the disk's flush cost, the log line --------------------------------------------------------


def fsync_us(directory: Path, n: int = 300) -> float:
    """Median microseconds for an 8 kB write + fdatasync: the floor under every durable commit."""
    path = directory / "fsync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = os.urandom(8192)
        for _ in range(n):
            t = time.perf_counter()
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    times.sort()
    return round(times[len(times) // 2] * 1e6, 1)


_LOG_SNIPPET = r"""
import json, time, uuid
from proxy import logs
import structlog
logs.configure("json")
log = structlog.get_logger("tollgate.request")
fields = dict(request_id=uuid.uuid4().hex, vendor="stripe", method="POST", endpoint="POST /v1/charges",
              key_id="key_0123456789abcdef", agent_run_id="run_bench_0001", decision="allowed", reason=None,
              status=200, latency_ms=1.234)
for _ in range(2000):
    log.info("request", **fields)
n = 20000
t = time.perf_counter()
for _ in range(n):
    log.info("request", **fields)
per_call = (time.perf_counter() - t) / n
print("RESULT", json.dumps({"log_line_us": round(per_call * 1e6, 2)}))
"""


def log_line_us(root: Path) -> float | None:
    """CPU microseconds for one request log line (JSON, redaction), written to /dev/null."""
    done = subprocess.run([sys.executable, "-c", _LOG_SNIPPET], cwd=root, capture_output=False, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    return json.loads(line[7:])["log_line_us"] if line else None
