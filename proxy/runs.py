"""A run's story: every call of one X-Agent-Run-Id across vendors, in order, with how close
each one brought its key to every cap, and whether the run is halted (proxy/halts.py). The
same answer for the CLI, the API and the console."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import halts, lineage
from proxy.errors import NotFound

# For each call and each cap of the policy version that decided it: what the key had used in
# that cap's window up to and including this call (money for USD caps, calls for request caps).
# Every admitted call counts, as it does in the gate's counters: a forwarded one, and an
# 'error' one (the vendor failed or timed out: its estimate stays counted, proxy/outcomes.py).
_STORY = text("""
SELECT a.id, a.ts, a.vendor, a.method, a.endpoint, a.customer_id, a.object_id, a.decision, a.reason, a.message,
       a.predicted_usd, a.cost_usd, a.cost_source, a.upstream_status, a.key_id, a.policy_id, a.policy_version,
       a.request_id, a.request_summary->>'tool' AS tool, c.cap,
       (SELECT CASE WHEN c.cap ? 'usd' THEN coalesce(sum(b.cost_usd), 0) ELSE count(*) END
          FROM audit_events b
         WHERE b.key_id = a.key_id AND b.id <= a.id AND b.decision IN ('allowed', 'shadow_blocked', 'error')
           AND CASE c.cap->>'window'
                 WHEN 'run' THEN b.agent_run_id = a.agent_run_id
                 WHEN 'total' THEN true
                 ELSE b.ts >= date_trunc(c.cap->>'window', a.ts, 'UTC') END) AS used
  FROM audit_events a
  LEFT JOIN policy_versions v ON v.policy_id = a.policy_id AND v.version = a.policy_version
  LEFT JOIN LATERAL jsonb_array_elements(v.document->'caps') c(cap) ON true
 WHERE a.agent_run_id = :run_id
 ORDER BY a.ts, a.id
""")

_CALL_FIELDS = ("id", "ts", "vendor", "method", "endpoint", "customer_id", "object_id", "decision", "reason",
                "message", "predicted_usd", "cost_usd", "cost_source", "upstream_status", "key_id", "policy_id",
                "policy_version", "request_id", "tool")


async def run_story(conn: AsyncConnection, run_id: str) -> dict[str, Any]:
    calls: list[dict[str, Any]] = []
    running = Decimal(0)
    for row in await conn.execute(_STORY, {"run_id": run_id}):
        if not calls or calls[-1]["id"] != row.id:
            running += row.cost_usd or 0
            calls.append({**{f: getattr(row, f) for f in _CALL_FIELDS}, "run_total_usd": running, "caps": []})
        if row.cap is not None:
            limit = row.cap.get("usd", row.cap.get("requests"))
            calls[-1]["caps"].append({"window": row.cap["window"], "unit": "usd" if "usd" in row.cap else "requests",
                                      "limit": str(limit), "used": str(row.used)})
    halt = await halts.state(conn, run_id)
    if not calls and halt is None:
        raise NotFound("unknown_run", f"No calls recorded for run {run_id}.")
    return {
        "agent_run_id": run_id,
        "halt": halt,
        "calls": calls,
        "total_usd": running,
        "vendors": sorted({c["vendor"] for c in calls}),
        "decisions": {d: sum(1 for c in calls if c["decision"] == d) for d in sorted({c["decision"] for c in calls})},
        # Who delegated this spend to whom: each key of the run, with the chain up to the operator's key.
        "delegation": await lineage.run_chains(conn, run_id),
    }


def render_timeline(story: dict[str, Any]) -> str:
    """The story as a terminal table."""
    lines = [f"run {story['agent_run_id']}: {len(story['calls'])} calls, {story['total_usd']:.2f} USD, "
             f"vendors {', '.join(story['vendors'])}"]
    halt = story.get("halt") or {}
    if halt.get("halted"):
        lines.append(f"HALTED: {halt['message']}")
    header = (f"{'TIME':<12} {'VENDOR':<7} {'ENDPOINT':<38} {'OBJECT':<28} {'DECISION':<18} "
              f"{'USD':>9} {'RUN USD':>9} {'HTTP':>4}  CAPS")
    lines.append(header)
    for call in story["calls"]:
        decision = call["decision"] + (f" ({call['reason']})" if call["reason"] else "")
        caps = "  ".join(f"{c['window']} {_short(c['used'])}/{_short(c['limit'])}" for c in call["caps"])
        lines.append(
            f"{call['ts'].strftime('%H:%M:%S.%f')[:12]:<12} {call['vendor']:<7} {(call['endpoint'] or '')[:38]:<38} "
            f"{(call['object_id'] or call['customer_id'] or '')[:28]:<28} {decision[:40]:<18} "
            f"{(call['cost_usd'] or 0):>9.2f} {call['run_total_usd']:>9.2f} {call['upstream_status'] or '-':>4}  {caps}"
        )
    delegated = {key: chain for key, chain in story.get("delegation", {}).items() if len(chain) > 1}
    if delegated:
        lines.append("delegation (each key that spent in this run, from the key an operator made):")
        for key, chain in sorted(delegated.items()):
            spent = sum((c["cost_usd"] or 0) for c in story["calls"] if c["key_id"] == key)
            path = " -> ".join(k["id"] + (f" ({k['label']})" if k["label"] else "") for k in reversed(chain))
            lines.append(f"  {path}: {spent:.2f} USD")
    return "\n".join(lines)


def _short(number: str) -> str:
    value = Decimal(number)
    return f"{value:.2f}" if value != value.to_integral() else str(int(value))
