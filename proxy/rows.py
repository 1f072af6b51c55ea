"""The records the request path hands to Postgres, typed: the audit row the gate inserts, the
patch the settle applies, and the approval request a held call files.

Each field is a column of ``audit_events`` (or, for the approval, of ``approvals``) under the
same name: the SQL functions read them by name (``jsonb_populate_record`` for the row, the
patch key by key), so a misspelt field would be a silently empty column. tests/test_rows.py
holds the fields to the table. They reach SQL as one JSON document per batch (proxy/gate.py):
orjson renders dataclasses directly, without an intermediate dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.redact import mask_personal_path, mask_secrets, mask_strings
from vendors.base import RecordedObject


@dataclass(slots=True)
class AuditRow:
    """One request's row, as the gate inserts it (pending when forwarded, final otherwise).
    Built in steps as the pipeline learns about the call, so it is not frozen."""

    request_id: str
    vendor: str
    method: str
    path: str
    latency_ms: float
    decision: str = "allowed"
    reason: str | None = None
    message: str | None = None
    key_id: str | None = None
    agent_run_id: str | None = None
    idempotency_key: str | None = None
    policy_id: str | None = None
    policy_version: int | None = None
    endpoint: str | None = None
    customer_id: str | None = None
    object_id: str | None = None
    vendor_account: str | None = None
    currency: str | None = None
    amount_minor: int | None = None
    request_summary: Mapping[str, Any] | None = None

    def refuse(self, decision: str, reason: str, message: str) -> None:
        self.decision, self.reason, self.message = decision, reason, message

    def masked(self, known: tuple[str, ...] = ()) -> AuditRow:
        """Every text an agent chose (a path, an id, a header, a message quoting them) with anything
        shaped like a credential, or beginning like one of the ``known`` secrets, masked before the
        row is written (guarantee 5); and the path's phone numbers and email addresses masked, as the
        endpoint template never holds them (personal data has no place in a column users query)."""
        self.path = mask_personal_path(self.path)
        for name in _AGENT_TEXT:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, mask_secrets(value, known))
        if known and self.request_summary:  # shapes were masked when it was made
            self.request_summary = mask_strings(self.request_summary, known)
        return self


_AGENT_TEXT = ("path", "endpoint", "idempotency_key", "customer_id", "object_id", "vendor_account", "message",
               "agent_run_id")


@dataclass(frozen=True, slots=True)
class SettlePatch:
    """What the vendor's answer (or its absence) says about a forwarded call. ``None`` keeps
    the pending row's value, except ``cost_source``, ``upstream_status`` and the request id."""

    cost_source: str  # parsed | estimated | none
    latency_ms: float
    decision: str | None = None  # 'error' when the vendor could not be reached
    reason: str | None = None
    message: str | None = None
    currency: str | None = None
    amount_minor: int | None = None
    object_id: str | None = None
    customer_id: str | None = None
    upstream_status: int | None = None
    upstream_request_id: str | None = None
    created: RecordedObject | None = None  # becomes a key_objects row, not a column


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A held call's claim to an operator's approval; the gate files it, or finds it decided."""

    fingerprint: str  # what exactly would be sent (proxy/approvals.py): the retry must match it
    required: bool  # False: only an approval cap may hold it, if the call would pass it
    reason: str | None
    message: str | None
    ttl_seconds: int
    request: Mapping[str, Any] = field(default_factory=dict)  # params, account, headers: shown to the approver
