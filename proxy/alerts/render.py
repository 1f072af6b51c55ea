"""What a receiver gets: the event as JSON, or a Slack incoming webhook's ``{"text": ...}``.

The JSON body is ``{"id": "evt_<n>", "type": kind, "created": ISO 8601, "data": {...}}``; ``id``
is stable across retries, so a receiver that must never act twice (a crash between its 2xx and
our commit resends) can keep the ids it has seen. An approval's data carries ``console_url``,
the console page where it is decided.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from proxy.alerts.events import payload_json

Facts = Mapping[str, Any]


def event_id(outbox_id: int) -> str:
    return f"evt_{outbox_id}"


def body(outbox_id: int, kind: str, created: datetime, payload: Facts, fmt: str, console_base: str) -> bytes:
    data = dict(payload)
    if kind == "approval_waiting":
        data["console_url"] = f"{console_base.rstrip('/')}/console/approvals#approval-{data.get('approval_id', '')}"
    if fmt == "slack":
        return json.dumps({"text": sentence(kind, data)}).encode()
    return payload_json({"id": event_id(outbox_id), "type": kind, "created": created, "data": data}).encode()


def sentence(kind: str, data: Facts) -> str:
    """The event in words, with Slack's link markup where there is something to open."""
    return _SENTENCES.get(kind, _generic)(kind, data)


def _who(data: Facts) -> str:
    run = f" (run {data['agent_run_id']})" if data.get("agent_run_id") else ""
    return f"key {data.get('key_id') or 'unknown'}{run}"


def _refusal(kind: str, data: Facts) -> str:
    call = f"{data.get('method', '')} {data.get('endpoint') or ''}".strip() or "a call"
    return (f":no_entry: Tollgate refused {call} to {data.get('vendor', '?')} on {_who(data)}: "
            f"`{data.get('reason')}`. {data.get('message') or ''}").strip()


def _threshold(kind: str, data: Facts) -> str:
    scope = f" for run {data['agent_run_id']}" if data.get("agent_run_id") else ""
    if data.get("unit") == "usd":
        amounts = f"${Decimal(str(data.get('used'))):.2f} of ${Decimal(str(data.get('limit'))):.2f}"
    else:
        amounts = f"{data.get('used')} of {data.get('limit')} requests"
    return f":warning: Key {data.get('key_id')} reached {data.get('threshold')}% of its {data.get('window')} cap" \
           f"{scope}: {amounts}."


def _revoked(kind: str, data: Facts) -> str:
    label = f" ({data['label']})" if data.get("label") else ""
    return f":lock: Key {data.get('key_id')}{label} for {data.get('vendor')} was revoked at {data.get('revoked_at')}."


def _approval(kind: str, data: Facts) -> str:
    usd = f", ${data['predicted_usd']}" if data.get("predicted_usd") else ""
    call = f"{data.get('method', '')} {data.get('endpoint') or ''}".strip()
    return (f":hourglass: Approval {data.get('approval_id')} waits: {call} on {_who(data)}{usd}. "
            f"<{data.get('console_url')}|Review it in the console>")


def _halted(kind: str, data: Facts) -> str:
    why = data.get("condition") or data.get("reason") or "stopped"
    detail = f" ({data['detail']})" if data.get("detail") else ""
    return (f":octagonal_sign: Run {data.get('agent_run_id')} was halted: {why}{detail}; every key refuses it "
            f"until `tollgate runs resume {data.get('agent_run_id')}`.")


def _generic(kind: str, data: Facts) -> str:
    return f"Tollgate {kind}: {payload_json(data)}"


_SENTENCES: dict[str, Callable[[str, Facts], str]] = {
    "refusal": _refusal, "cap_threshold": _threshold, "key_revoked": _revoked,
    "approval_waiting": _approval, "run_halted": _halted,
}
