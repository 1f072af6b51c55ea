"""The request path, top to bottom (DESIGN.md steps 1-10).

The core knows nothing vendor-specific: it asks the adapter to read credentials, parse
the request, estimate, parse the response and render errors. What it owns is the order
of things and the guarantees: nothing is forwarded without a committed gate decision,
and every request on which a key was identified leaves an audit row.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any

import structlog

from proxy import approvals, metrics, paths, records, vaultkeys
from proxy.asgi import Receive, Scope, Send, header_map, read_body, send_response
from proxy.config import Settings
from proxy.errors import Unavailable
from proxy.gate import Admission, Gate, PolicyRef
from proxy.hotdb import HotDB
from proxy.keycache import KeyCache
from proxy.keys import KeyRecord
from proxy.redact import looks_secret, mask_strings, redact_content
from proxy.upstream import Upstream, UpstreamFailure
from vendors.base import (
    ParsedRequest,
    RecordedObject,
    RenderedResponse,
    RequestRejected,
    VendorAdapter,
    VendorError,
)
from vendors.registry import Registry

log = structlog.get_logger("tollgate.request")

RUN_ID_HEADER = "x-agent-run-id"
MAX_RUN_ID = 200
# Headers read for decisions: two copies of one would be two different answers. Each adapter
# adds its own (``decision_headers``).
SINGLE_HEADERS = frozenset(
    {"authorization", RUN_ID_HEADER, "idempotency-key", "content-type", "content-length", "host"}
)
# W3C trace context crosses Tollgate untouched, whatever the vendor, so a trace spans the hop.
TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
AUTH_REASONS = frozenset(
    {"missing_key", "malformed_key", "bad_checksum", "unknown_key", "invalid_secret", "key_revoked",
     "key_expired", "wrong_vendor", "account_mismatch"}
)


class Refusal(Exception):
    """Stop the request with a vendor-shaped error; ``key_id`` set means record it in the audit table."""

    def __init__(self, reason: str, message: str, status: int, key_id: str | None = None, param: str | None = None):
        super().__init__(message)
        self.error = VendorError(status=status, reason=reason, message=message, kind=_kind(reason), param=param)
        self.key_id = key_id


@dataclass
class Call:
    """One request in flight."""

    vendor: str
    adapter: VendorAdapter
    method: str
    raw_path: bytes
    query: bytes
    headers: dict[str, str]
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)
    body: bytes = b""
    run_id: str | None = None
    path: str | None = None
    predicted: Decimal = Decimal(0)
    key_id: str | None = None
    endpoint: str | None = None
    upstream_seconds: float | None = None

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)


class ProxyHandler:
    def __init__(self, settings: Settings, db: HotDB, gate: Gate, keycache: KeyCache, upstream: Upstream,
                 vendors: Registry):
        self._settings = settings
        self._vendors = vendors
        self._single_headers = {a.name: SINGLE_HEADERS | a.decision_headers for a in vendors}
        self._upstream_bases = {a.name: settings.upstream_for(a.name, a.default_upstream) for a in vendors}
        self._db = db
        self._gate = gate
        self._keys = keycache
        self._upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        vendor, rest = paths.split_vendor(scope.get("raw_path") or scope["path"].encode())
        adapter = self._vendors.get(vendor)
        if adapter is None:
            message = f"No vendor route /{vendor[:40]}; Tollgate serves {', '.join('/' + n for n in self._vendors.names())}."
            await send_response(send, 404, {"content-type": "application/json"},
                                json.dumps({"error": {"type": "invalid_request_error", "code": "unknown_vendor",
                                                      "message": message}}).encode())
            return
        call = Call(vendor, adapter, scope["method"], rest, scope.get("query_string", b""), {})
        structlog.contextvars.bind_contextvars(request_id=call.request_id)  # on every log line of this request
        try:
            response = await self._handle(call, scope, receive)
        finally:
            structlog.contextvars.clear_contextvars()
        headers = {**response.headers, "x-tollgate-request-id": call.request_id}
        await send_response(send, response.status, headers, response.body)

    async def _handle(self, call: Call, scope: Scope, receive: Receive) -> RenderedResponse:
        try:
            try:
                return await self._govern(call, scope, receive)
            except Refusal as refusal:
                return await self._refuse(call, refusal)  # records the refusal: may itself be Unavailable
        except Unavailable as exc:
            log.warning("failed_closed", vendor=call.vendor, reason=exc.reason)
            metrics.GATE_ERRORS.labels(exc.reason).inc()
            metrics.observe_request(call.vendor, call.endpoint, "error", exc.reason, call.elapsed_ms() / 1000)
            return call.adapter.render_error(
                VendorError(503, exc.reason, f"{exc.message} Nothing was sent to the vendor.", "unavailable",
                            retryable=True, request_id=call.request_id)
            )
        except Exception:  # a bug: answer in the vendor's shape and keep serving
            log.exception("internal_error", vendor=call.vendor)
            return call.adapter.render_error(
                VendorError(500, "internal_error", f"Tollgate failed on this request (id {call.request_id}).",
                            "unavailable", retryable=False, request_id=call.request_id)
            )

    async def _govern(self, call: Call, scope: Scope, receive: Receive) -> RenderedResponse:
        try:
            call.headers = header_map(scope["headers"], self._single_headers[call.vendor], self._settings.max_header_bytes)
            call.run_id = _run_id(call.headers)
            structlog.contextvars.bind_contextvars(agent_run_id=call.run_id, traceparent=call.headers.get("traceparent"))
            call.body = await read_body(receive, self._settings.max_body_bytes)
        except RequestRejected as exc:
            raise Refusal(exc.reason, exc.message, exc.status) from None
        key = await self._authenticate(call)  # 2
        parsed = self._parse(call, key)  # 3
        admission = await self._admit(call, key, parsed)  # 4-6
        if not admission.forward:
            return self._render_refusal(call, admission.reason or "blocked", admission.message or "", 403,
                                        approval_id=admission.approval_id)
        return await self._forward(call, key, parsed, admission)  # 7-10

    async def _authenticate(self, call: Call) -> KeyRecord:
        presented = call.adapter.presented_credentials(call.headers)
        if not presented.vault_key:
            raise Refusal("missing_key", "No vault key provided. Use your Tollgate vault key (tg_...) as the API key.", 401)
        try:
            vault_key = vaultkeys.parse(presented.vault_key)
        except vaultkeys.MalformedKey as exc:
            raise Refusal(exc.reason, str(exc), 401) from None
        call.key_id = vault_key.key_id
        structlog.contextvars.bind_contextvars(key_id=call.key_id)
        try:
            key = await self._keys.get(vault_key.key_id)
        except Exception as exc:
            raise Unavailable("database_unavailable", "Tollgate cannot reach its database.") from exc
        if key is None:
            raise Refusal("unknown_key", "Invalid API key: this vault key does not exist.", 401, vault_key.key_id)
        if not vaultkeys.secret_matches(vault_key.secret, key.secret_hash):
            raise Refusal("invalid_secret", "Invalid API key: the vault key's secret is wrong.", 401, key.id)
        if key.vendor != call.vendor:
            raise Refusal("wrong_vendor", f"This vault key is for {key.vendor}, not {call.vendor}.", 401, key.id)
        if key.credential.account and presented.account and presented.account != key.credential.account:
            raise Refusal("account_mismatch", "The account in the request does not match this vault key's.", 401, key.id)
        return key

    def _parse(self, call: Call, key: KeyRecord) -> ParsedRequest:
        try:
            call.path = paths.normalise(call.raw_path)
            parsed = call.adapter.parse_request(call.method, call.path, call.query, call.headers, call.body)
        except RequestRejected as exc:
            raise Refusal(exc.reason, exc.message, exc.status, key.id, exc.param) from None
        call.endpoint = parsed.endpoint
        bound = key.credential.account
        if bound and parsed.account and parsed.account != bound:
            raise Refusal("account_mismatch", f"This vault key is bound to account {bound}, not {parsed.account}.",
                          401, key.id)
        return parsed

    async def _admit(self, call: Call, key: KeyRecord, parsed: ParsedRequest) -> Admission:
        for _ in range(2):
            admission = await self._decide(call, key, parsed)
            if admission.decision != "stale":
                return admission
            # The key's policy changed since this process cached it: judge again with the new one.
            self._keys.forget(key.id)
            key = await self._authenticate(call)
        raise Unavailable("policy_churn", "The key's policy is changing too fast to decide; try again.")

    async def _decide(self, call: Call, key: KeyRecord, parsed: ParsedRequest) -> Admission:
        policy = key.policy
        known = await self._records(key.id, policy.objects_to_look_up(parsed))
        predicted = call.adapter.estimate_usd(parsed, known.get(parsed.object_id or ""))  # 5
        verdict = policy.evaluate(parsed, predicted, call.run_id, known)  # 4
        row = self._audit_row(call, key.id, parsed, key)
        if verdict.denial:
            row.update(decision="shadow_blocked" if policy.shadow else "blocked",
                       reason=verdict.denial.reason, message=verdict.denial.message)
        else:
            row.update(decision="allowed")
        approval = None
        if verdict.approval or policy.has_approval_caps:
            approval = {
                "fingerprint": approvals.fingerprint(key.id, parsed), "required": verdict.approval is not None,
                "reason": verdict.approval.reason if verdict.approval else None,
                "message": verdict.approval.message if verdict.approval else None,
                "ttl_seconds": self._settings.approval_ttl_s, "request": redact_content(parsed.params),
            }
        ref = PolicyRef(policy.id, policy.version, policy.mode, policy.gate_caps())
        call.predicted = predicted
        return await self._gate.admit(key.id, ref, row, predicted, approval)  # 6

    async def _records(self, key_id: str, object_ids: tuple[str, ...]) -> dict[str, RecordedObject]:
        if not object_ids:
            return {}
        try:
            return await records.lookup(self._db, key_id, object_ids)
        except Exception as exc:
            raise Unavailable("database_unavailable", "Tollgate cannot reach its database.") from exc

    async def _forward(self, call: Call, key: KeyRecord, parsed: ParsedRequest, admission: Admission) -> RenderedResponse:
        adapter = call.adapter
        url = self._upstream_bases[call.vendor] + parsed.path
        if call.query:
            url += "?" + call.query.decode("latin-1")
        headers = {k: v for k, v in call.headers.items()
                   if k in adapter.forward_request_headers or k in TRACE_HEADERS}
        headers.update(adapter.upstream_auth_headers(key.credential))
        assert admission.audit_id is not None
        try:
            response = await self._upstream.send(call.method, url, headers, call.body)
        except UpstreamFailure as failure:
            return await self._upstream_failed(call, admission, failure)
        priced = adapter.parse_response(parsed, response.status, response.headers, response.body)
        cost, source = (priced.cost_usd, "parsed") if priced.cost_usd is not None else (call.predicted, "estimated")
        await self._gate.settle(admission, cost, {
            "reason": "idempotent_replay" if priced.replayed else None,
            "cost_source": source, "currency": priced.currency, "amount_minor": priced.amount_minor,
            "object_id": priced.object_id, "customer_id": priced.customer_id,
            "upstream_status": response.status, "upstream_request_id": priced.vendor_request_id,
            "latency_ms": call.elapsed_ms(), "created": _recorded(priced.created),
        })
        call.upstream_seconds = response.elapsed_ms / 1000
        metrics.observe_spend(call.vendor, cost)
        self._log(call, admission.decision, admission.reason, response.status)
        passed = {k: v for k, v in response.headers.items() if k in adapter.forward_response_headers}
        return RenderedResponse(response.status, passed, response.body)

    async def _upstream_failed(self, call: Call, admission: Admission, failure: UpstreamFailure) -> RenderedResponse:
        # A call that may have reached the vendor may have moved money: keep its estimate on the books.
        cost = call.predicted if failure.maybe_delivered else Decimal(0)
        await self._gate.settle(admission, cost, {
            "decision": "error", "reason": failure.reason, "message": failure.message,
            "cost_source": "estimated" if failure.maybe_delivered else "none", "latency_ms": call.elapsed_ms(),
        })
        self._log(call, "error", failure.reason, None)
        status = 504 if failure.reason == "upstream_timeout" else 502
        return call.adapter.render_error(
            VendorError(status, failure.reason, failure.message, "unavailable",
                        retryable=not failure.maybe_delivered, request_id=call.request_id)
        )

    async def _refuse(self, call: Call, refusal: Refusal) -> RenderedResponse:
        error = refusal.error
        if refusal.key_id is None:
            self._log(call, "blocked", error.reason, error.status)
            return call.adapter.render_error(replace(error, request_id=call.request_id))
        row = self._audit_row(call, refusal.key_id, None, None)
        row.update(decision="blocked", reason=error.reason, message=error.message)
        admission = await self._gate.admit(refusal.key_id, None, row, Decimal(0))
        return self._render_refusal(call, admission.reason or error.reason, admission.message or error.message,
                                    error.status, error.param)

    def _render_refusal(
        self, call: Call, reason: str, message: str, status: int, param: str | None = None,
        approval_id: str | None = None,
    ) -> RenderedResponse:
        status = 401 if reason in AUTH_REASONS else status
        self._log(call, "blocked", reason, status)
        return call.adapter.render_error(VendorError(
            status, reason, message, _kind(reason), param, request_id=call.request_id, approval_id=approval_id))

    def _audit_row(
        self, call: Call, key_id: str, parsed: ParsedRequest | None, key: KeyRecord | None
    ) -> dict[str, Any]:
        row: dict[str, Any] = {
            "request_id": call.request_id, "agent_run_id": call.run_id, "key_id": key_id, "vendor": call.vendor,
            "method": call.method, "path": call.path or _printable(call.raw_path), "latency_ms": call.elapsed_ms(),
            "idempotency_key": call.headers.get("idempotency-key"),
        }
        if key is not None:
            row.update(policy_id=key.policy.id, policy_version=key.policy.version)
        if parsed is not None:
            row.update(
                endpoint=parsed.endpoint, customer_id=parsed.customer_id, object_id=parsed.object_id,
                vendor_account=parsed.account, currency=parsed.currency, amount_minor=parsed.amount_minor,
                idempotency_key=parsed.idempotency_key, request_summary=mask_strings(dict(parsed.summary)),
            )
        return row

    def _log(self, call: Call, decision: str, reason: str | None, status: int | None) -> None:
        elapsed = call.elapsed_ms()
        log.info("request", vendor=call.vendor, method=call.method, endpoint=call.endpoint, decision=decision,
                 reason=reason, status=status, latency_ms=elapsed)
        metrics.observe_request(call.vendor, call.endpoint, decision, reason, elapsed / 1000, call.upstream_seconds)


def _run_id(headers: dict[str, str]) -> str | None:
    value = headers.get(RUN_ID_HEADER)
    if value is None:
        return None
    if not value or len(value) > MAX_RUN_ID or not value.isprintable() or not value.isascii():
        raise RequestRejected("invalid_run_id", f"X-Agent-Run-Id must be 1-{MAX_RUN_ID} printable ASCII characters.")
    if looks_secret(value):  # it would be stored in every audit row of the run
        raise RequestRejected("invalid_run_id", "X-Agent-Run-Id looks like an API secret; use an opaque run id.")
    return value


def _recorded(created: RecordedObject | None) -> dict[str, Any] | None:
    """dataclasses.asdict without its deep copy: RecordedObject's fields are all plain values."""
    if created is None:
        return None
    return {name: getattr(created, name) for name in _RECORDED_FIELDS}


_RECORDED_FIELDS = tuple(f.name for f in fields(RecordedObject))


def _kind(reason: str) -> str:
    return "auth" if reason in AUTH_REASONS else "policy"


def _printable(raw: bytes) -> str:
    return raw[:512].decode("ascii", errors="backslashreplace")
