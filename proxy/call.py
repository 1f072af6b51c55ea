"""One request in flight: the request as it arrived (``Incoming``), what the pipeline learns
about it (``Call``), and the checks of the headers every vendor's calls share (the run id).
Kept apart from proxy/handler.py, which is the order of things, so that reads top to bottom.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from proxy.redact import looks_secret, mask_secrets
from vendors.base import Refused, RequestRejected, VendorAdapter, VendorError

RUN_ID_HEADER = "x-agent-run-id"
MAX_RUN_ID = 200
# Headers read for decisions: two copies of one would be two different answers. Each adapter
# adds its own (``decision_headers``).
SINGLE_HEADERS = frozenset(
    {"authorization", RUN_ID_HEADER, "idempotency-key", "content-type", "content-length", "host"}
)
# W3C trace context crosses Tollgate untouched, whatever the vendor, so a trace spans the hop.
TRACE_HEADERS = frozenset({"traceparent", "tracestate"})


@dataclass(frozen=True, slots=True)
class Incoming:
    """The request as it arrived: what the pipeline never changes."""

    vendor: str
    adapter: VendorAdapter
    method: str
    raw_path: bytes
    query: bytes
    client: str | None  # the peer's address as the server saw it
    tool: str | None = None  # the MCP tool the call came as (proxy/mcp/); None: a vendor route
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)


@dataclass(slots=True)
class Call:
    """One request in flight: what it arrived as, and what the pipeline learns about it."""

    incoming: Incoming
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    run_id: str | None = None
    path: str | None = None  # normalised
    key_id: str | None = None
    endpoint: str | None = None
    predicted: Decimal = Decimal(0)
    cost_known: bool = True  # False: forwarded unpriced because the policy said so (priced_after)
    secrets: tuple[str, ...] = ()  # the key's upstream and vault secrets, masked by value wherever the call writes
    upstream_seconds: float | None = None
    # The duplicate guard's claim (proxy/duplicates.py), given back if the call surely never reached
    # the vendor: the agent is told to retry, and its retry must not be refused as a duplicate.
    duplicate_claim: Any = None
    # Tollgate derived the call's idempotency key (proxy/idempotency.py): the agent did not send
    # it, so a repeat carrying it is a blind retry, not a request for the vendor's replay.
    derived_key: bool = False
    # The key id and stop conditions to judge the call's run by once its outcome is known
    # (proxy/halts.py), and that outcome: the decision logged and the status answered.
    halting: Any = None
    outcome: tuple[str, int | None] | None = None
    # The refusal or failure the agent was answered with, in words (an MCP tool result says it).
    error: VendorError | None = None

    @property
    def vendor(self) -> str:
        return self.incoming.vendor

    @property
    def adapter(self) -> VendorAdapter:
        return self.incoming.adapter

    @property
    def request_id(self) -> str:
        return self.incoming.request_id

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.incoming.started) * 1000, 3)


def via(tool: str | None) -> dict[str, str]:
    """What a row's request_summary says of how the call came (``via``, ``tool``): the audit
    table's columns are hashed by the seal as they are, so provenance is a value, not a column."""
    return {"via": "mcp", "tool": tool} if tool is not None else {}


def run_id_of(headers: dict[str, str]) -> str | None:
    value = headers.get(RUN_ID_HEADER)
    if value is None:
        return None
    if not value or len(value) > MAX_RUN_ID or not value.isprintable() or not value.isascii():
        raise RequestRejected("invalid_run_id", f"X-Agent-Run-Id must be 1-{MAX_RUN_ID} printable ASCII characters.")
    if looks_secret(value):  # it would be stored in every audit row of the run
        raise RequestRejected("invalid_run_id", "X-Agent-Run-Id looks like an API secret; use an opaque run id.")
    return value


def refuse_secret_run_id(call: Call, key_id: str) -> None:
    """A run id holding the key's own secret, which has no shape to be refused by earlier: it
    would be on every row and log line of the run. Neither the refusal's row nor its log line
    carries it."""
    if call.run_id is None or (masked := mask_secrets(call.run_id, call.secrets)) == call.run_id:
        return
    call.run_id = masked
    structlog.contextvars.bind_contextvars(agent_run_id=masked)
    raise RequestRejected("invalid_run_id", "X-Agent-Run-Id holds this key's secret; use an opaque run id.",
                          key_id=key_id)


def judge_run_id(call: Call, key_id: str, bound: str | None) -> None:
    """Once the key is known: the header's run id may not hold its secret, and a delegated key's
    calls are its own run's (``bind_run``)."""
    refuse_secret_run_id(call, key_id)
    bind_run(call, key_id, bound)


def bind_run(call: Call, key_id: str, bound: str | None) -> None:
    """A delegated key's calls are its run's, whatever the SDK sends: stripe-python drops per-call
    headers on auto_paging_iter()'s later pages, and twilio-python and resend-python cannot send
    them at all. No header: the key's run is filled in. Another run: refused, on the key's run."""
    if bound is None:
        return
    sent, call.run_id = call.run_id, bound
    structlog.contextvars.bind_contextvars(agent_run_id=bound)
    if sent is not None and sent != bound:
        raise Refused("run_id_mismatch", f"This key is bound to run {bound}; the request's X-Agent-Run-Id "
                                         f"names {sent[:64]}. Send this key's run id, or none.", key_id=key_id)
