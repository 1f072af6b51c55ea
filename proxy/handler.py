"""The request path, top to bottom (DESIGN.md steps 1-10).

The core knows nothing vendor-specific: it asks the adapter to read credentials, parse
the request, estimate, parse the response and render errors. What it owns is the order
of things and the guarantees: nothing is forwarded without a committed gate decision,
and every request on which a key was identified leaves an audit row, except that of a
caller who never authenticated (unknown key, wrong secret) only the first per source and
minute does: the rest are counted in auth_refusals (proxy/refusals.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal

import structlog

from proxy import (
    answers,
    approvals,
    duplicates,
    estimate,
    halts,
    lookups,
    metrics,
    outcomes,
    paths,
    reasons,
    records,
    refusals,
    vaultkeys,
)
from proxy.asgi import Receive, Scope, Send, header_map, read_body, send_response
from proxy.auth import Authenticator
from proxy.call import SINGLE_HEADERS, TRACE_HEADERS, Call, Incoming, judge_run_id, run_id_of, via
from proxy.config import Settings
from proxy.errors import (
    AuthRefused,
    Refused,
    RequestRejected,
    Unavailable,
    UpstreamFailure,
)
from proxy.gate import Admission, Gate, PolicyRef
from proxy.hotdb import HotDB
from proxy.idempotency import Deriver
from proxy.keys import KeyRecord
from proxy.operations import OperationNames
from proxy.pricetables import PriceGuard
from proxy.redact import mask_secrets, mask_strings
from proxy.refusals import AuthRefusals
from proxy.rows import ApprovalRequest, AuditRow, SettlePatch
from proxy.upstream import Upstream
from vendors import pricebook
from vendors.base import (
    ParsedRequest,
    PriceScope,
    RecordedObject,
    RenderedResponse,
    VendorError,
)
from vendors.registry import Registry

log = structlog.get_logger("tollgate.request")


class ProxyHandler:
    def __init__(self, settings: Settings, db: HotDB, gate: Gate, auth: Authenticator, refused: AuthRefusals,
                 upstream: Upstream, vendors: Registry, deriver: Deriver):
        self._settings = settings
        self._deriver = deriver
        self._vendors = vendors
        self._single_headers = {a.name: SINGLE_HEADERS | a.decision_headers for a in vendors}
        self._upstream_bases = {a.name: lookups.upstream_bases(settings, a) for a in vendors}
        self._operations = OperationNames(list(vendors))
        for adapter in vendors:
            metrics.know(adapter.name, adapter.operations())
        self._db = db
        self._runs = halts.RunCounter(db)
        self._gate = gate
        self._auth = auth
        self._unauthenticated = refused
        self._upstream = upstream
        self._prices = PriceGuard(settings.price_max_age_s, settings.refuse_stale_prices)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        vendor, rest = paths.split_vendor(scope.get("raw_path") or scope["path"].encode())
        adapter = self._vendors.get(vendor)
        if adapter is None:
            await self._no_such_vendor(send, vendor)
            return
        client = scope.get("client")
        call = Call(Incoming(vendor, adapter, scope["method"], rest, scope.get("query_string", b""),
                             client[0] if client else None))
        response = await self.serve(call, scope, receive)
        headers = {**response.headers, "x-tollgate-request-id": call.request_id}
        await send_response(send, response.status, headers, response.body)

    async def serve(self, call: Call, scope: Scope, receive: Receive) -> RenderedResponse:
        """One call, whichever way it came: a vendor route, or an MCP tool (proxy/mcp/), which
        builds the request the vendor's SDK would have sent and hands it in here."""
        return await self._served(call, lambda: self._govern(call, scope, receive))

    async def refuse(self, call: Call, refusal: Refused) -> RenderedResponse:
        """A call refused before it could become a request (an MCP tool call whose arguments are
        not one): recorded and answered as every refusal is."""
        async def refused() -> RenderedResponse:
            raise refusal
        return await self._served(call, refused)

    async def _served(self, call: Call, work: Callable[[], Awaitable[RenderedResponse]]) -> RenderedResponse:
        structlog.contextvars.bind_contextvars(request_id=call.request_id)  # on every log line of this request
        try:
            response = await self._handle(call, work)
            await halts.judge(self._db, call)  # a refusal or vendor error may halt the run: before it hears
        finally:
            structlog.contextvars.clear_contextvars()
        return response

    async def _no_such_vendor(self, send: Send, vendor: str) -> None:
        served = ", ".join("/" + name for name in self._vendors.names())
        error = {"type": "invalid_request_error", "code": "unknown_vendor",
                 "message": f"No vendor route /{vendor[:40]}; Tollgate serves {served}."}
        await send_response(send, 404, {"content-type": "application/json"}, json.dumps({"error": error}).encode())

    async def _handle(self, call: Call, work: Callable[[], Awaitable[RenderedResponse]]) -> RenderedResponse:
        try:
            try:
                return await work()
            except Refused as refusal:
                return await self._refuse(call, refusal)  # records the refusal: may itself be Unavailable
        except Unavailable as exc:
            log.warning("failed_closed", vendor=call.vendor, reason=exc.reason)
            metrics.GATE_ERRORS.labels(exc.reason).inc()
            metrics.observe_request(call.vendor, call.endpoint, "error", exc.reason, call.elapsed_ms() / 1000)
            return _answer(call, VendorError(503, exc.reason, f"{exc.message} Nothing was sent to the vendor.",
                                             "unavailable", retryable=True, request_id=call.request_id))
        except Exception:  # a bug: answer in the vendor's shape and keep serving
            log.exception("internal_error", vendor=call.vendor)
            return _answer(call, VendorError(500, "internal_error",
                                             f"Tollgate failed on this request (id {call.request_id}).",
                                             "unavailable", retryable=False, request_id=call.request_id))

    async def _govern(self, call: Call, scope: Scope, receive: Receive) -> RenderedResponse:
        call.headers = header_map(scope["headers"], self._single_headers[call.vendor], self._settings.max_header_bytes)
        call.run_id = run_id_of(call.headers)
        structlog.contextvars.bind_contextvars(agent_run_id=call.run_id, traceparent=call.headers.get("traceparent"))
        call.body = await read_body(receive, self._settings.max_body_bytes)
        key = await self._authenticate(call)  # 2
        await self._runs.enter(call, key.id, key.policy.stops)  # a halted run is refused by every key
        parsed = await self._deriver.keyed(call, key, self._parse(call, key))  # 3
        admission = await self._admit(call, key, parsed)  # 4-6
        if not admission.forward:
            reason = admission.reason or "blocked"
            return self._render_refusal(call, reason, admission.message or "", reasons.get(reason).status,
                                        approval_id=admission.approval_id)
        return await self._forward(call, key, parsed, admission)  # 7-10

    async def _authenticate(self, call: Call) -> KeyRecord:
        presented = call.adapter.presented_credentials(call.headers)
        if not presented.vault_key:
            raise AuthRefused("missing_key",
                              "No vault key provided. Use your Tollgate vault key (tg_...) as the API key.")
        vault_key = vaultkeys.parse(presented.vault_key)  # MalformedKey: no key id to record it under
        call.key_id = vault_key.key_id
        structlog.contextvars.bind_contextvars(key_id=call.key_id)
        key = await self._auth.record(vault_key)  # forged keys refused here, without a look-up (proxy/auth.py)
        if key.vendor != call.vendor:
            raise AuthRefused("wrong_vendor", f"This vault key is for {key.vendor}, not {call.vendor}.", key_id=key.id)
        if key.credential.account and presented.account and presented.account != key.credential.account:
            raise AuthRefused("account_mismatch", "The account in the request does not match this vault key's.",
                              key_id=key.id, account=presented.account)
        call.secrets = (key.credential.secret, vault_key.secret)
        judge_run_id(call, key.id, key.run_id)
        return key

    def _parse(self, call: Call, key: KeyRecord) -> ParsedRequest:
        try:
            call.path = paths.normalise(call.incoming.raw_path)
            parsed = call.adapter.parse_request(call.incoming.method, call.path, call.incoming.query, call.headers,
                                                call.body)
        except RequestRejected as exc:
            exc.key_id = key.id  # the key is known: the refusal gets its audit row
            raise
        call.endpoint = parsed.endpoint
        bound = key.credential.account
        if bound and parsed.account and parsed.account != bound:
            raise AuthRefused("account_mismatch", f"This vault key is bound to account {bound}, not {parsed.account}.",
                              key_id=key.id, endpoint=parsed.endpoint, account=parsed.account)
        if not pricebook.covers(call.vendor):
            return parsed  # nobody has prices of their own: the shipped ones apply to every key
        return dataclasses.replace(parsed, price_scope=PriceScope(key.id, bound))  # whose own prices apply

    async def _admit(self, call: Call, key: KeyRecord, parsed: ParsedRequest) -> Admission:
        for _ in range(2):
            admission = await self._decide(call, key, parsed)
            if admission.decision != "stale":
                return admission
            # The key's policy changed since this process cached it: judge again with the new one.
            self._auth.forget(key.id)
            key = await self._authenticate(call)
        raise Unavailable("policy_churn", "The key's policy is changing too fast to decide; try again.")

    async def _decide(self, call: Call, key: KeyRecord, parsed: ParsedRequest) -> Admission:
        policy = key.policy
        cost = await estimate.estimate(call.adapter, key, parsed, self._records, self._upstream,  # 5
                                       self._upstream_bases[call.vendor])
        parsed, predicted = cost.parsed, cost.predicted
        verdict = policy.evaluate(parsed, predicted, call.run_id, cost.known)  # 4
        row = self._audit_row(call, key.id, parsed, key)
        row.request_summary = cost.summary(row.request_summary)
        converted = row.request_summary is not None and "fx" in row.request_summary
        stale = self._prices.refused(parsed.currency) if converted and parsed.moves_money else None
        guarded = not verdict.denial and policy.duplicate_window_s is not None and duplicates.guarded(parsed)
        needs_approval = verdict.approval is not None or policy.has_approval_caps
        acting_on: dict[str, object] = {}
        fingerprint = ""
        if guarded or needs_approval:  # what exactly the call is, for both; most calls need neither
            acting_on = approvals.acts_on(parsed.account or key.credential.account, call.headers,
                                          call.adapter.decision_headers)
            fingerprint = approvals.fingerprint(key.id, parsed, acting_on)
        held = None
        if verdict.denial:
            row.refuse("shadow_blocked" if policy.shadow else "blocked", verdict.denial.reason, verdict.denial.message)
        elif stale is not None:
            row.refuse("shadow_blocked" if policy.shadow else "blocked", "stale_price", stale.message())
        elif guarded:
            held = await self._claim(call, key, parsed, fingerprint, row)
        approval = None
        if needs_approval:
            approval = ApprovalRequest(
                fingerprint, verdict.approval is not None,
                verdict.approval.reason if verdict.approval else None,
                verdict.approval.message if verdict.approval else None,
                self._settings.approval_ttl_s, approvals.described_request(parsed, acting_on, call.secrets),
            )
        ref = PolicyRef(policy.id, policy.version, policy.mode, policy.gate_caps())
        call.predicted = predicted if predicted is not None else Decimal(0)  # None gets here only priced_after
        call.cost_known = predicted is not None
        try:
            admission = await self._gate.admit(key.id, ref, row.masked(call.secrets), call.predicted, approval)  # 6
        except BaseException:
            if held is not None:
                await duplicates.release(self._db, held)
            raise
        if held is not None and not admission.forward:  # never sent: its retry is no duplicate of it
            await duplicates.release(self._db, held)
        call.duplicate_claim = held if admission.forward else None
        return admission

    async def _claim(self, call: Call, key: KeyRecord, parsed: ParsedRequest, fingerprint: str,
                     row: AuditRow) -> duplicates.Claim | None:
        """The duplicate guard (proxy/duplicates.py): the claim this call holds, or None, with the
        row refused when the call repeats one already sent within the policy's window."""
        assert key.policy.duplicate_window_s is not None
        found = await duplicates.claim(
            self._db, key.id, fingerprint, call.request_id,
            parsed.idempotency_key, call.adapter.idempotency_header is not None and not call.derived_key,
            key.policy.duplicate_window_s)
        if found.first is not None and not found.replay:
            row.refuse("shadow_blocked" if key.policy.shadow else "blocked", "duplicate_call", found.message())
        return found if found.holds else None

    async def _records(self, key_id: str, object_ids: tuple[str, ...]) -> dict[str, RecordedObject]:
        if not object_ids:
            return {}
        try:
            return await records.lookup(self._db, key_id, object_ids)
        except Exception as exc:
            raise Unavailable("database_unavailable", "Tollgate cannot reach its database.") from exc

    async def _forward(
        self, call: Call, key: KeyRecord, parsed: ParsedRequest, admission: Admission
    ) -> RenderedResponse:
        adapter = call.adapter
        url = self._upstream_bases[call.vendor][parsed.host] + parsed.path
        if call.incoming.query:
            url += "?" + call.incoming.query.decode("latin-1")
        headers = {k: v for k, v in call.headers.items()
                   if k in adapter.forward_request_headers or k in TRACE_HEADERS}
        headers.update(adapter.upstream_auth_headers(key.credential))
        assert admission.audit_id is not None
        try:
            response = await self._upstream.send(call.incoming.method, url, headers, call.body)
        except UpstreamFailure as failure:
            return await self._upstream_failed(call, admission, failure)
        priced = adapter.parse_response(parsed, response.status, response.headers, response.body)
        call.upstream_seconds = response.elapsed_ms / 1000
        passed = {k: v for k, v in response.headers.items() if k in adapter.forward_response_headers}
        if priced.uncertain:  # the vendor's answer (a 5xx) does not say whether the call happened
            await self._settle_uncertain(call, admission, "upstream_server_error", outcomes.uncertain_answer(
                response.status), response.status, priced.vendor_request_id)
            self._log(call, "error", "upstream_server_error", response.status)
            return RenderedResponse(response.status, passed, response.body)
        withheld = await answers.withheld(key, parsed, priced, self._records)  # 9: and what the answer reveals
        enforced = withheld is not None and not key.policy.shadow
        # A conversion the vendor will settle later (settles_later) is an estimate until it does.
        parsed_as = "estimated" if priced.settles_later else "parsed"
        cost, source = ((priced.cost_usd, parsed_as) if priced.cost_usd is not None
                        else (call.predicted, "estimated" if call.cost_known else "none"))
        await self._gate.settle(admission, cost, SettlePatch(
            source, call.elapsed_ms(), decision=("blocked" if enforced else "shadow_blocked") if withheld else None,
            reason=withheld.reason if withheld else answers.outcome_reason(priced),
            message=withheld.message if withheld else None,
            currency=priced.currency, amount_minor=priced.amount_minor, object_id=priced.object_id,
            customer_id=priced.customer_id, upstream_status=response.status,
            upstream_request_id=priced.vendor_request_id, created=priced.created,
        ))
        metrics.observe_spend(call.vendor, cost)
        if priced.releases and not enforced:  # the answer says an earlier call will never be billed
            await outcomes.release(self._db, key.id, call.vendor, priced.releases)
        if withheld is not None and enforced:
            return self._render_refusal(call, withheld.reason, withheld.message, withheld.status)
        self._log(call, admission.decision, admission.reason, response.status)
        return RenderedResponse(response.status, passed, response.body)

    async def _upstream_failed(self, call: Call, admission: Admission, failure: UpstreamFailure) -> RenderedResponse:
        if call.duplicate_claim is not None and not failure.maybe_delivered:  # it never left: retrying is right
            await duplicates.release(self._db, call.duplicate_claim)
        # A call that may have reached the vendor may have moved money: keep its estimate on the books.
        cost = call.predicted if failure.maybe_delivered else Decimal(0)
        await self._gate.settle(admission, cost, SettlePatch(
            "estimated" if failure.maybe_delivered else "none", call.elapsed_ms(), decision="error",
            reason=failure.reason, message=failure.message, upstream_status=failure.upstream_status,
        ))
        self._log(call, "error", failure.reason, None)
        return _answer(call, VendorError(reasons.get(failure.reason).status, failure.reason, failure.message,
                                         "unavailable", retryable=not failure.maybe_delivered,
                                         request_id=call.request_id))

    async def _settle_uncertain(self, call: Call, admission: Admission, reason: str, message: str,
                                upstream_status: int | None = None, vendor_request_id: str | None = None) -> None:
        """Settle a call that may have happened at its estimate: it stays counted against every cap, as
        its reservation was, on a row that says why (decision 'error', cost_source 'estimated'), until
        proxy/outcomes.py asks the vendor what it did and reprices it to that, or to 0."""
        await self._gate.settle(admission, call.predicted, SettlePatch(
            "estimated", call.elapsed_ms(), decision="error", reason=reason, message=message,
            upstream_status=upstream_status, upstream_request_id=vendor_request_id,
        ))

    async def _refuse(self, call: Call, refusal: Refused) -> RenderedResponse:
        if refusal.key_id is None:
            return self._render_refusal(call, refusal.reason, refusal.message, refusal.status, refusal.param)
        claim = None
        if refusal.reason in refusals.UNAUTHENTICATED:  # one row per source and minute, the rest counted
            claim = self._unauthenticated.claim(call.incoming.client, call.vendor, refusal.reason, refusal.key_id)
            if claim is None:
                return self._render_refusal(call, refusal.reason, refusal.message, refusal.status, refusal.param)
        row = self._audit_row(call, refusal.key_id, None, None)
        row.refuse("blocked", refusal.reason, refusal.message)
        row.endpoint = refusal.endpoint or self._named_endpoint(call)
        row.vendor_account = refusal.account
        if claim is not None:
            row.request_summary = {"source": claim.source, **via(call.incoming.tool)}  # rows that count the rest
        try:
            admission = await self._gate.admit(refusal.key_id, None, row.masked(call.secrets), Decimal(0))
        except BaseException:
            if claim is not None:
                self._unauthenticated.release(claim)
            raise
        if claim is not None:
            self._unauthenticated.recorded(claim)
        if admission.reason in (None, refusal.reason):
            return self._render_refusal(call, refusal.reason, refusal.message, refusal.status, refusal.param)
        # The gate found more to say (the key was revoked meanwhile): its answer is the one given.
        reason = admission.reason
        return self._render_refusal(call, reason, admission.message or "", reasons.get(reason).status)

    def _named_endpoint(self, call: Call) -> str | None:
        """The operation a request refused before the adapter named it, from its method and path."""
        try:
            path = call.path or paths.normalise(call.incoming.raw_path)
        except Refused:
            return None
        return self._operations.of(call.vendor, call.incoming.method, path)

    def _render_refusal(
        self, call: Call, reason: str, message: str, status: int, param: str | None = None,
        approval_id: str | None = None,
    ) -> RenderedResponse:
        self._log(call, "blocked", reason, status)
        message = mask_secrets(message, call.secrets)  # a refusal may quote what the agent pasted
        return _answer(call, VendorError(status, reason, message, reasons.kind_of(reason), param,
                                         request_id=call.request_id, approval_id=approval_id))

    def _audit_row(self, call: Call, key_id: str, parsed: ParsedRequest | None, key: KeyRecord | None) -> AuditRow:
        path = call.path or _printable(call.incoming.raw_path)
        row = AuditRow(call.request_id, call.vendor, call.incoming.method, path, call.elapsed_ms(), key_id=key_id,
                       agent_run_id=call.run_id, idempotency_key=call.headers.get("idempotency-key"),
                       request_summary=via(call.incoming.tool) or None)
        if key is not None:
            row.policy_id, row.policy_version = key.policy.id, key.policy.version
        if parsed is not None:
            row.endpoint, row.customer_id, row.object_id = parsed.endpoint, parsed.customer_id, parsed.object_id
            row.vendor_account, row.currency, row.amount_minor = parsed.account, parsed.currency, parsed.amount_minor
            row.idempotency_key = parsed.idempotency_key
            row.request_summary = {**mask_strings(dict(parsed.summary)), **via(call.incoming.tool)}
        return row

    def _log(self, call: Call, decision: str, reason: str | None, status: int | None) -> None:
        elapsed = call.elapsed_ms()
        call.outcome = (decision, status)
        log.info("request", vendor=call.vendor, method=call.incoming.method, endpoint=call.endpoint,
                 decision=decision, reason=reason, status=status, latency_ms=elapsed)
        metrics.observe_request(call.vendor, call.endpoint, decision, reason, elapsed / 1000, call.upstream_seconds)


def _answer(call: Call, error: VendorError) -> RenderedResponse:
    call.error = error
    return call.adapter.render_error(error)


def _printable(raw: bytes) -> str:
    return raw[:512].decode("ascii", errors="backslashreplace")
