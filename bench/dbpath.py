"""The governed path's database work alone: gate then settle, as the proxy calls them, without
HTTP, parsing or the upstream. Its ceiling is the most the governed proxy could do on this
machine if its Python side cost nothing.

It drives the product's own ``proxy.gate.Gate`` (and the key's cached policy, as the handler
does), so it follows changes to the SQL functions; if that API changes shape, the step fails
and the report says so instead of the numbers.

    python -m bench.dbpath DATABASE_URL KEY_ID MASTER_KEY --concurrency 8 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from decimal import Decimal
from typing import Any


async def _run(url: str, key_id: str, master_key: str, concurrency: int, seconds: float) -> dict[str, Any]:
    from proxy import config, db, secretbox
    from proxy.gate import Gate, PolicyRef
    from proxy.hotdb import HotDB
    from proxy.keycache import KeyCache
    from proxy.rows import AuditRow, SettlePatch

    settings = config.Settings(database_url=url)  # the request path's pools, default size
    engine = db.create_engine(url, settings)
    hot = await HotDB.open(url, settings)
    try:
        box = secretbox.SecretBox(secretbox.decode_master_key(master_key))
        key = await KeyCache(engine, box, 60.0).get(key_id)
        assert key is not None, f"no key {key_id}"
        policy = key.policy
        ref = PolicyRef(policy.id, policy.version, policy.mode, policy.gate_caps())
        gate = Gate(hot, settings.reservation_ttl_s)
        gate_ms: list[float] = []
        settle_ms: list[float] = []
        deadline = time.monotonic() + seconds

        async def agent(n: int) -> None:
            i = 0
            while time.monotonic() < deadline:
                row = AuditRow(uuid.uuid4().hex, "stripe", "POST", "/v1/charges", 1.0, key_id=key.id,
                               agent_run_id=f"run_bench_{(n + i) % 32:04d}", endpoint="POST /v1/charges",
                               currency="usd", amount_minor=100, policy_id=policy.id, policy_version=policy.version,
                               request_summary={"amount": "100", "currency": "usd"})
                t0 = time.perf_counter()
                admission = await gate.admit(key.id, ref, row, Decimal("1.00"))
                t1 = time.perf_counter()
                await gate.settle(admission, Decimal("1.00"), SettlePatch(
                    "parsed", 1.0, currency="usd", amount_minor=100, upstream_status=200,
                    upstream_request_id="req_bench"))
                t2 = time.perf_counter()
                gate_ms.append((t1 - t0) * 1000)
                settle_ms.append((t2 - t1) * 1000)
                i += 1

        started = time.perf_counter()
        await asyncio.gather(*(agent(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await hot.close()
        await engine.dispose()
    return {"concurrency": concurrency, "per_s": round(len(gate_ms) / elapsed, 1),
            "gate_ms": _dist(gate_ms), "settle_ms": _dist(settle_ms)}


def _dist(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50": round(statistics.median(values), 3), "p99": round(values[int(0.99 * (len(values) - 1))], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("key_id")
    parser.add_argument("master_key")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    result = asyncio.run(_run(args.url, args.key_id, args.master_key, args.concurrency, args.seconds))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
