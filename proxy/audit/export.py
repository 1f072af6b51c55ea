"""Audit export: NDJSON (one audit row per line) or OpenTelemetry logs (OTLP/JSON, one
ExportLogsServiceRequest per line, as the collector's otlpjsonfile receiver reads them).
Every record carries ``agent_run_id``, so a run joins with LLM-gateway traces on that id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import __version__
from proxy.audit.chain import plain
from proxy.schema import audit_events

BATCH = 500
_SEVERITY = {"allowed": (9, "INFO"), "shadow_blocked": (13, "WARN"), "approval_required": (13, "WARN"),
             "blocked": (13, "WARN"), "error": (17, "ERROR")}


async def rows(conn: AsyncConnection, since: datetime, until: datetime | None) -> AsyncIterator[list[dict[str, Any]]]:
    query = select(audit_events).where(audit_events.c.ts >= since).order_by(audit_events.c.ts, audit_events.c.id)
    if until is not None:
        query = query.where(audit_events.c.ts < until)
    result = await conn.stream(query.execution_options(yield_per=BATCH))
    async for partition in result.partitions(BATCH):
        yield [{k: plain(v) for k, v in row._mapping.items()} for row in partition]


def write_ndjson(batch: list[dict[str, Any]], out: TextIO) -> None:
    for row in batch:
        out.write(json.dumps(row, separators=(",", ":")) + "\n")


def write_otlp(batch: list[dict[str, Any]], out: TextIO) -> None:
    out.write(json.dumps(otlp_logs(batch), separators=(",", ":")) + "\n")


def otlp_logs(batch: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceLogs": [{
        "resource": {"attributes": [_attribute("service.name", "tollgate")]},
        "scopeLogs": [{"scope": {"name": "tollgate.audit", "version": __version__},
                       "logRecords": [_record(row) for row in batch]}],
    }]}


def _record(row: dict[str, Any]) -> dict[str, Any]:
    number, text = _SEVERITY.get(row["decision"], (9, "INFO"))
    nanos = int(datetime.fromisoformat(row["ts"]).timestamp() * 1_000_000_000)
    body = f"{row['vendor']} {row['endpoint'] or row['method'] + ' ' + row['path']}: {row['decision']}"
    attributes = [_attribute(f"tollgate.{k}" if k != "agent_run_id" else k, v)
                  for k, v in row.items() if v is not None and k not in ("ts", "request_summary")]
    return {"timeUnixNano": str(nanos), "severityNumber": number, "severityText": text,
            "body": {"stringValue": body + (f" ({row['reason']})" if row["reason"] else "")},
            "attributes": attributes}


def _attribute(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}
