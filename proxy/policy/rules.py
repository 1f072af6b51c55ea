"""Policies: validated against policy-schemas/policy.schema.json, then evaluated in memory.

Evaluation here covers what one request can be judged on alone (expiry, run id, endpoint
allowlist and approval list, customer and record scope, recipients and senders, per-call
limit). Caps depend on counters shared by every proxy process, so the gate decides them
inside Postgres; ``gate_caps`` hands them over.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from proxy.errors import Denial, InvalidInput
from proxy.policy.scope import (
    Recipients,
    check_answer_scope,
    check_created_objects,
    check_messaging_scope,
    check_record_scope,
    customers_to_check,
)
from vendors.base import ParsedRequest, RecordedObject
from vendors.endpoints import PathPattern

# Inside the package in an installed wheel (pyproject.toml force-includes it), at the top of
# the repository in a checkout and an editable install.
SCHEMA_PATH = next(path for path in (Path(__file__).resolve().parent / "schemas" / "policy.schema.json",
                                     Path(__file__).resolve().parents[2] / "policy-schemas" / "policy.schema.json")
                   if path.exists())


class PolicyInvalid(InvalidInput):
    """Raised with every schema error, each as (JSON pointer, reason)."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("invalid_policy", "; ".join(f"{pointer or '/'}: {reason}" for pointer, reason in errors))


@dataclass(frozen=True)
class Verdict:
    """The policy's view of one request before caps: a refusal and/or a need for approval."""

    denial: Denial | None = None
    approval: Denial | None = None  # why an operator must approve (endpoint in require_approval)


@dataclass(frozen=True)
class Cap:
    window: str
    usd: Decimal | None = None
    requests: int | None = None
    action: str = "block"

    def as_gate_json(self) -> dict[str, Any]:
        limit = {"usd": str(self.usd)} if self.usd is not None else {"requests": self.requests}
        return {"window": self.window, "action": self.action, **limit}


@dataclass(frozen=True)
class Stops:
    """A policy's stop conditions for the runs its key serves (proxy/halts.py applies them)."""

    max_calls: int | None = None
    max_refusals: int | None = None
    refusal_window_s: int = 0
    consecutive_errors: int | None = None

    @classmethod
    def from_document(cls, document: Mapping[str, Any] | None, mode: str) -> Stops | None:
        if not document or mode == "shadow":  # shadow mode observes: it halts nothing
            return None
        refusals = document.get("max_refusals") or {}
        return cls(document.get("max_calls"), refusals.get("count"), refusals.get("window_s", 0),
                   document.get("consecutive_errors"))

    @property
    def after_calls(self) -> bool:
        """Conditions judged after a call's outcome (a refusal, a vendor error)."""
        return self.max_refusals is not None or self.consecutive_errors is not None


@dataclass(frozen=True)
class Policy:
    id: str
    version: int
    vendor: str
    mode: str
    allow: tuple[str, ...]
    require_approval: tuple[str, ...]
    customers: frozenset[str] | None
    created_through_key: bool
    recipients: Recipients
    senders: frozenset[str] | None
    max_recipients: int | None
    per_call_usd: Decimal | None
    caps: tuple[Cap, ...]
    require_run_id: bool
    expires_at: datetime | None
    # Endpoints the operator lets through when their cost cannot be known before the call;
    # the vendor's answer prices them (a cap can be passed by one such call).
    priced_after: tuple[str, ...] = ()
    # The duplicate guard's window (proxy/duplicates.py); None: repeats are not checked.
    duplicate_window_s: int | None = None
    # Derive an Idempotency-Key for a run's money-moving call that has none (proxy/idempotency.py).
    derive_idempotency: bool = False
    # Endpoints whose answer may hand the agent a credential the vendor issues (a new API key's
    # secret); any other such answer is withheld (credential_withheld).
    hand_out: tuple[str, ...] = ()
    # objects.created_through_key: an existing object a call names (of a kind the key records) must
    # be one the key created; unlike customers.created_through_key, says nothing about customers.
    objects_created_through_key: bool = False
    # The run's stop conditions (``stop``); None: this key halts no run, though it refuses a halted one.
    stops: Stops | None = None
    # A delegated key's ancestors' caps, each with the ancestor that owns its counter
    # (proxy/delegation.py): the gate counts the key's calls against them too.
    inherited_caps: tuple[tuple[str, Cap], ...] = ()

    @classmethod
    def from_document(cls, policy_id: str, version: int, document: Mapping[str, Any]) -> Policy:
        customers = document.get("customers", {})
        per_call = document.get("per_call_usd")
        expires = document.get("expires_at")
        senders = document.get("senders")
        return cls(
            id=policy_id,
            version=version,
            vendor=document["vendor"],
            mode=document.get("mode", "enforce"),
            allow=tuple(document["endpoints"]["allow"]),
            require_approval=tuple(document["endpoints"].get("require_approval", ())),
            customers=frozenset(customers["allow"]) if "allow" in customers else None,
            created_through_key=bool(customers.get("created_through_key", False)),
            recipients=Recipients.from_document(document.get("recipients", {})),
            senders=frozenset(senders) if senders is not None else None,
            max_recipients=document.get("max_recipients"),
            per_call_usd=Decimal(str(per_call)) if per_call is not None else None,
            caps=tuple(
                Cap(c["window"], Decimal(str(c["usd"])) if "usd" in c else None, c.get("requests"),
                    c.get("action", "block"))
                for c in document.get("caps", ())
            ),
            require_run_id=bool(document.get("require_run_id", False)),
            expires_at=_utc(expires) if expires else None,
            priced_after=tuple(document["endpoints"].get("priced_after", ())),
            duplicate_window_s=document.get("duplicates", {}).get("window_s"),
            derive_idempotency=bool(document.get("idempotency", {}).get("derive", False)),
            hand_out=tuple(document.get("credentials", {}).get("hand_out", ())),
            objects_created_through_key=bool(document.get("objects", {}).get("created_through_key", False)),
            stops=Stops.from_document(document.get("stop"), document.get("mode", "enforce")),
        )

    @property
    def shadow(self) -> bool:
        return self.mode == "shadow"

    @property
    def has_approval_caps(self) -> bool:
        return any(cap.action == "require_approval" for cap in (*self.caps, *(c for _, c in self.inherited_caps)))

    def objects_to_look_up(self, request: ParsedRequest) -> tuple[str, ...]:
        """Ids whose records (created through this key) the evaluation or the estimate needs."""
        wanted = []
        if self.created_through_key or self.customers is not None:
            wanted += [request.customer_id, *request.customers, request.object_id, *request.objects]
        if self.objects_created_through_key:
            wanted += request.objects
        if request.moves_money and (request.amount_minor is None or request.currency is None):
            wanted.append(request.object_id)
        return tuple(dict.fromkeys(i for i in wanted if i))

    def evaluate(
        self, request: ParsedRequest, predicted_usd: Decimal | None, run_id: str | None,
        known: Mapping[str, RecordedObject],
    ) -> Verdict:
        """The first rule this request breaks, and whether it needs approval. Cheapest rules first."""
        if self.expires_at is not None and self.expires_at <= datetime.now(UTC):
            return Verdict(Denial("policy_expired", "This key's policy has expired."))
        if self.require_run_id and not run_id:
            return Verdict(Denial("run_id_required",
                                  "This key's policy requires an X-Agent-Run-Id header on every call."))
        approval = None
        segments, template = _segments(request), _template(request)
        if not any(p.matches(request.method, segments, template) for p in self._allow_patterns):
            if not any(p.matches(request.method, segments, template) for p in self._approval_patterns):
                return Verdict(Denial("endpoint_not_allowed",
                                      f"Endpoint {request.endpoint} is not in this key's allowlist."))
            approval = Denial("endpoint_requires_approval",
                              f"Endpoint {request.endpoint} needs an operator's approval.")
        denial = (
            check_record_scope(request, self.customers, self.created_through_key, known)
            or (check_created_objects(request, known) if self.objects_created_through_key else None)
            or check_messaging_scope(request, self.recipients, self.senders, self.max_recipients)
            or self._check_priced(request, segments, predicted_usd)
        )
        return Verdict(denial, approval)

    def customers_to_check(self, revealed: tuple[str, ...]) -> tuple[str, ...]:
        """What an answer names that the customer list does not admit: to be found in the key's records."""
        return customers_to_check(revealed, self.customers, self.created_through_key)

    def check_answer(self, unlisted: tuple[str, ...], known: Mapping[str, RecordedObject]) -> Denial | None:
        return check_answer_scope(unlisted, self.created_through_key, known)

    def hands_out(self, request: ParsedRequest) -> bool:
        """The operator named the endpoint in credentials.hand_out: the credential its answer carries
        goes to the agent, which can then use it without Tollgate."""
        segments, template = _segments(request), _template(request)
        return any(p.matches(request.method, segments, template) for p in self._hand_out_patterns)

    def admits_endpoint(self, request: ParsedRequest) -> bool:
        """Allowed or held for approval: worth a look-up of what it would cost."""
        segments, template = _segments(request), _template(request)
        patterns = self._allow_patterns + self._approval_patterns
        return any(p.matches(request.method, segments, template) for p in patterns)

    def offers(self, method: str, path: str, kind: str, priced: str) -> bool:
        """Worth offering an agent as a tool (proxy/mcp/): the operation is allowed or held for
        approval, issues no credential, and is not refused as unpriced whatever its arguments
        ("after" without endpoints.priced_after). An operation "set" stays: its prices may be."""
        if kind == "issues_credentials":
            return False
        if priced == "after" and not any(p.matches_operation(method, path) for p in self._priced_after_patterns):
            return False
        return any(p.matches_operation(method, path) for p in self._allow_patterns + self._approval_patterns)

    def check(self, request: ParsedRequest, predicted_usd: Decimal | None, run_id: str | None,
              known: Mapping[str, RecordedObject] | None = None) -> Denial | None:
        """Just the refusal, if any (approval needs aside)."""
        return self.evaluate(request, predicted_usd, run_id, known or {}).denial

    def _check_priced(
        self, request: ParsedRequest, segments: list[str], predicted_usd: Decimal | None
    ) -> Denial | None:
        template = _template(request)
        if predicted_usd is not None:
            return self._check_per_call(predicted_usd)
        if any(p.matches(request.method, segments, template) for p in self._priced_after_patterns):
            return None  # the operator chose: priced from the vendor's answer
        if request.unpriced:
            fix = request.unpriced_fix or "Add a rate to the table"
            return Denial("cost_unknown", f"{request.unpriced}: {request.endpoint} is refused before it is sent. "
                          f"{fix}, or list the endpoint in the key's policy under "
                          "endpoints.priced_after to have it priced from the answer.")
        return Denial(
            "cost_unknown",
            f"Tollgate cannot tell what {request.endpoint} would cost before it is sent: the call names no "
            "amount and no object Tollgate can read it from. Name the amount (and currency), or list the "
            "endpoint in the key's policy under endpoints.priced_after to have it priced from the answer.",
        )

    def _check_per_call(self, predicted_usd: Decimal) -> Denial | None:
        if self.per_call_usd is not None and predicted_usd > self.per_call_usd:
            return Denial(
                "per_call_limit",
                f"This call moves {predicted_usd:.2f} USD, over the per-call limit of {self.per_call_usd:.2f} USD.",
            )
        return None

    def gate_caps(self) -> str:
        return self._gate_caps_json

    # Derived once per policy version (a Policy is immutable and cached with its key), not per call.
    @cached_property
    def _gate_caps_json(self) -> str:
        inherited = [{**cap.as_gate_json(), "owner": owner} for owner, cap in self.inherited_caps]
        return json.dumps([cap.as_gate_json() for cap in self.caps] + inherited)

    @cached_property
    def _allow_patterns(self) -> tuple[PathPattern, ...]:
        return tuple(PathPattern.parse(p) for p in self.allow)

    @cached_property
    def _approval_patterns(self) -> tuple[PathPattern, ...]:
        return tuple(PathPattern.parse(p) for p in self.require_approval)

    @cached_property
    def _priced_after_patterns(self) -> tuple[PathPattern, ...]:
        return tuple(PathPattern.parse(p) for p in self.priced_after)

    @cached_property
    def _hand_out_patterns(self) -> tuple[PathPattern, ...]:
        return tuple(PathPattern.parse(p) for p in self.hand_out)


def _template(request: ParsedRequest) -> list[str]:
    """The request's operation as the adapter named it (``GET /v1/charges/{id}``), split."""
    return request.endpoint.partition(" ")[2].strip("/").split("/")


def _segments(request: ParsedRequest) -> list[str]:
    segments = request.path.strip("/").split("/")
    if request.host is not None:  # patterns name a vendor's other host by its route prefix
        segments.insert(0, request.host)
    return segments


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@lru_cache(maxsize=8)
def _validator(vendors: tuple[str, ...] | None = None) -> Draft202012Validator:
    """The schema as written, or with ``vendors`` (the names a process serves, plug-ins included)
    as the enum of ``vendor`` in place of the file's, which lists the built-in vendors."""
    schema = json.loads(SCHEMA_PATH.read_text())
    if vendors is not None:
        schema["properties"]["vendor"] = {**schema["properties"]["vendor"], "enum": list(vendors)}
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


def validate(document: Any, vendors: Iterable[str] | None = None) -> None:
    """Raise PolicyInvalid listing every error as (JSON pointer, reason). ``vendors``: the vendor
    names allowed (default: the schema file's)."""
    served = tuple(sorted(vendors)) if vendors is not None else None
    errors = sorted(_validator(served).iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        raise PolicyInvalid([(_pointer(e.absolute_path), e.message) for e in errors])


def _pointer(path: Any) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)
