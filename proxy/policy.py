"""Policies: validated against policy-schemas/policy.schema.json, then evaluated in memory.

Evaluation here covers what one request can be judged on alone (endpoint allowlist,
customer scope, per-call limit, run id, expiry). Caps depend on shared counters and are
decided in the database by the gate; ``gate_caps`` hands them over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from jsonschema import Draft202012Validator, FormatChecker

from proxy.errors import InvalidInput
from vendors.base import ParsedRequest
from vendors.endpoints import pattern_matches

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "policy-schemas" / "policy.schema.json"


class PolicyInvalid(InvalidInput):
    """Raised with every schema error, each as (JSON pointer, reason)."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("invalid_policy", "; ".join(f"{pointer or '/'}: {reason}" for pointer, reason in errors))


@dataclass(frozen=True)
class Denial:
    reason: str  # stable code for the audit row
    message: str  # what the agent reads


@dataclass(frozen=True)
class Cap:
    window: str
    usd: Decimal | None = None
    requests: int | None = None

    def as_gate_json(self) -> dict[str, Any]:
        limit = {"usd": str(self.usd)} if self.usd is not None else {"requests": self.requests}
        return {"window": self.window, **limit}


@dataclass(frozen=True)
class Policy:
    id: str
    version: int
    vendor: str
    allow: tuple[str, ...]
    customers: frozenset[str] | None
    per_call_usd: Decimal | None
    caps: tuple[Cap, ...]
    require_run_id: bool
    expires_at: datetime | None

    @classmethod
    def from_document(cls, policy_id: str, version: int, document: Mapping[str, Any]) -> "Policy":
        customers = document.get("customers", {}).get("allow")
        per_call = document.get("per_call_usd")
        expires = document.get("expires_at")
        return cls(
            id=policy_id,
            version=version,
            vendor=document["vendor"],
            allow=tuple(document["endpoints"]["allow"]),
            customers=frozenset(customers) if customers is not None else None,
            per_call_usd=Decimal(str(per_call)) if per_call is not None else None,
            caps=tuple(
                Cap(c["window"], Decimal(str(c["usd"])) if "usd" in c else None, c.get("requests"))
                for c in document.get("caps", ())
            ),
            require_run_id=bool(document.get("require_run_id", False)),
            expires_at=_utc(expires) if expires else None,
        )

    def check(self, request: ParsedRequest, predicted_usd: Decimal, run_id: str | None) -> Denial | None:
        """The first rule this request breaks, or None. Order: cheapest and most basic first."""
        if self.expires_at is not None and self.expires_at <= datetime.now(timezone.utc):
            return Denial("policy_expired", "This key's policy has expired.")
        if self.require_run_id and not run_id:
            return Denial("run_id_required", "This key's policy requires an X-Agent-Run-Id header on every call.")
        if not any(pattern_matches(p, request.method, request.path) for p in self.allow):
            return Denial("endpoint_not_allowed", f"Endpoint {request.endpoint} is not in this key's allowlist.")
        denial = self._check_customer(request)
        if denial:
            return denial
        if self.per_call_usd is not None and predicted_usd > self.per_call_usd:
            return Denial(
                "per_call_limit",
                f"This call moves {predicted_usd:.2f} USD, over the per-call limit of {self.per_call_usd:.2f} USD.",
            )
        return None

    def _check_customer(self, request: ParsedRequest) -> Denial | None:
        if self.customers is None:
            return None
        if request.customer_id is None:
            if request.moves_money:
                return Denial(
                    "customer_not_identified",
                    "This key is limited to certain customers, and this call does not name one.",
                )
            return None
        if request.customer_id not in self.customers:
            return Denial("customer_not_allowed", f"Customer {request.customer_id} is outside this key's customer scope.")
        return None

    def gate_caps(self) -> str:
        return json.dumps([cap.as_gate_json() for cap in self.caps])


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    checker = FormatChecker()
    # jsonschema checks "date-time" only when the optional rfc3339-validator is installed, and it is not a
    # dependency: check with the parser Policy.from_document uses, so a document that validates also loads.
    checker.checks("date-time", raises=ValueError)(_is_datetime)
    return Draft202012Validator(schema, format_checker=checker)


def _is_datetime(value: Any) -> bool:
    if isinstance(value, str):
        datetime.fromisoformat(value)
    return True


def validate(document: Any) -> None:
    """Raise PolicyInvalid listing every error as (JSON pointer, reason)."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        raise PolicyInvalid([(_pointer(e.absolute_path), e.message) for e in errors])


def _pointer(path: Any) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)
