"""Every reason code Tollgate gives, in one catalogue: its kind, HTTP status and meaning.

Reason codes are a public interface: they are ``audit_events.reason``, the ``code`` of a
vendor-shaped refusal and of an admin API error, and users write SQL and alerts against them.
So a code is never renamed, and every code the proxy, the adapters and the SQL functions
give is here (tests/test_errors.py finds each literal and requires it). The README's table of
reason codes is generated from this module: ``python -m proxy.reasons``.

``kind`` is what the adapters render a refusal as (``VendorError.kind``):

- ``auth``: the vault key is missing, wrong, revoked or for another vendor (401);
- ``policy``: the key's policy refuses the call or holds it for approval (403);
- ``invalid_request``: the request cannot be read unambiguously (400 and its neighbours; an
  adapter may answer with its vendor's own status for these, such as Resend's 422);
- ``unavailable``: Tollgate or the vendor could not do its part; nothing moved unrecorded;

and, off the request path: ``admin`` (admin API and CLI input, 400/404/409), ``config``
(the process cannot start as configured; the CLI exits 2), and ``outcome`` (recorded on an
audit row that was not refused: what happened instead).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    code: str
    kind: str
    status: int
    description: str


def _kind(kind: str, status: int, entries: dict[str, str]) -> list[Reason]:
    return [Reason(code, kind, status, description) for code, description in entries.items()]


_AUTH = _kind("auth", 401, {
    "missing_key": "No vault key in the request's auth header.",
    "malformed_key": "The presented key is not shaped like a vault key (tg_<id>_<secret>).",
    "bad_checksum": "The vault key's checksum does not match: a typo or a truncated key.",
    "unknown_key": "No vault key has this id, or the key is not one this installation issued (its tag does "
                   "not verify). Repeats from one source are counted in auth_refusals, not each recorded.",
    "invalid_secret": "The vault key's id exists but its secret is wrong. Repeats from one source are counted "
                      "in auth_refusals, not each recorded.",
    "key_revoked": "The vault key was revoked; every later request is refused.",
    "key_expired": "The vault key is past its expiry.",
    "wrong_vendor": "The vault key belongs to another vendor's route.",
    "account_mismatch": "The request names an account other than the one the key is bound to.",
})

_POLICY = _kind("policy", 403, {
    "endpoint_not_allowed": "The endpoint is not in the policy's allow list (deny by default).",
    "endpoint_requires_approval": "The endpoint is in the policy's approval list: held until an operator approves.",
    "customer_not_allowed": "The call acts on a customer outside the policy's customer scope.",
    "customer_not_identified": "A money-moving call whose customer cannot be established, under a customer scope.",
    "object_not_created_through_key": "The call acts on an object this key did not create (created_through_key).",
    "recipient_not_allowed": "A recipient is outside the policy's recipient rules.",
    "country_not_allowed": "A recipient's country is outside the policy's countries.",
    "sender_not_allowed": "The sender is not in the policy's senders.",
    "too_many_recipients": "More recipients than the policy's max_recipients.",
    "per_call_limit": "The call's predicted cost is over the policy's per-call limit.",
    "answer_withheld": "The vendor's answer names a customer outside the key's scope; Tollgate kept it back "
                       "(the call itself happened: its cost stands).",
    "credential_withheld": "The vendor's answer hands out a credential (a new API key's secret) and the policy does "
                           "not list the endpoint in credentials.hand_out; Tollgate kept the answer back (the "
                           "credential was issued: the message names it, to revoke at the vendor).",
    "cost_unknown": "The call may move money or reach people and its cost cannot be known before it is sent "
                    "(no amount, no object to read it from, or no USD rate for its currency), and the policy does not "
                    "list it in priced_after.",
    "stale_price": "The call moves money in another currency and the exchange rate its USD price would be "
                   "converted at is older than TOLLGATE_PRICE_MAX_AGE_S, with TOLLGATE_REFUSE_STALE_PRICES set; "
                   "`tollgate prices sync --fx` refreshes the rates.",
    "operation_not_served": "An operation Tollgate knows and never forwards, whatever the policy says (one whose "
                            "answer is a credential the agent would use without Tollgate, or that cannot be checked "
                            "against the key's scope); the message says why.",
    "cap_exceeded": "The call would take a cap (USD or requests, over its window) past its limit.",
    "cap_requires_approval": "The call would pass a cap whose action is require_approval: held for an operator.",
    "approval_required": "The call is held until an operator approves it.",
    "approval_denied": "An operator denied the approval for this exact call.",
    "duplicate_call": "The same money-moving or message-sending call (key, endpoint, parameters) was sent already "
                      "within the policy's duplicates window; the message names the first call's request id. A "
                      "retry with the first call's Idempotency-Key is the vendor's replay and is forwarded.",
    "run_halted": "The call's run (its X-Agent-Run-Id) is halted: it reached a policy's stop condition (max_calls, "
                  "max_refusals, consecutive_errors) or an operator stopped it; every key refuses it until "
                  "`tollgate runs resume RUN_ID`. The message names the condition and when it was reached.",
    "run_id_required": "The policy requires an X-Agent-Run-Id header and the request has none.",
    "run_id_mismatch": "The key is bound to one run (a delegated key) and the request's X-Agent-Run-Id names "
                       "another; a request without the header is recorded under the key's run.",
    "delegation_not_allowed": "The key's policy does not let the agent mint child keys itself (delegation.allowed); "
                              "an operator still can, through the admin API or the CLI.",
    "delegation_too_deep": "The key is as deep in its delegation chain as its policy allows (delegation.max_depth).",
    "policy_expired": "The policy's expires_at has passed.",
    "policy_changed": "The key's policy changed while the call was judged; the proxy judges it again.",
    "blocked": "Refused by the policy (the rule's own code was not given).",
    "shadow_blocked": "The policy, in shadow mode, would have refused the call; it was forwarded.",
})

_INVALID = _kind("invalid_request", 400, {
    "malformed_form": "The form-encoded body cannot be parsed.",
    "malformed_multipart": "The multipart/form-data body cannot be read one way only (its boundary, a part's "
                           "headers or Content-Disposition, a preamble or epilogue, the boundary inside a part).",
    "invalid_utf8": "The body or a parameter is not valid UTF-8.",
    "invalid_json": "The JSON body cannot be parsed, or holds duplicate keys or out-of-range numbers.",
    "duplicate_parameter": "A parameter appears twice: two values would be two different answers.",
    "ambiguous_parameter": "A parameter's name can be read two ways (k[] beside k[0], or mixed nesting).",
    "too_many_parameters": "More parameters than Tollgate reads in one request.",
    "unknown_parameter": "A parameter the endpoint does not take.",
    "invalid_parameter": "A parameter's value is not what the endpoint takes.",
    "unsupported_content_type": "The body's content type is not the vendor's.",
    "unexpected_body": "A request that carries no body (a GET) came with one.",
    "invalid_amount": "The amount is not a whole number of minor units within range.",
    "unknown_currency": "The vendor does not support the currency (it is not in the vendor's published list "
                        "of currencies that Tollgate carries); the message says how many are known and where.",
    "invalid_recipient": "A recipient is not a valid phone number or address.",
    "invalid_sender": "The sender is not a valid phone number, service id or address.",
    "too_many_to_addresses": "More To addresses than the vendor takes in one email.",
    "batch_too_large": "More emails in a batch than the vendor takes.",
    "invalid_batch": "A batch is not a non-empty JSON array of emails.",
    "invalid_path": "The path has empty or dot segments, escapes or characters that are not allowed (404 when it "
                    "names no endpoint).",
    "duplicate_header": "A header Tollgate decides on appears twice.",
    "invalid_run_id": "X-Agent-Run-Id is empty, too long, not printable ASCII, or looks like a secret.",
    "client_disconnected": "The client went away before its request body arrived.",
    "invalid_tool_arguments": "A tool call's arguments (MCP) do not fit the tool's input schema (a required one "
                              "missing, one it does not take, a value of the wrong type, a path argument that is "
                              "not one segment, a file to upload that is not given as its text)."
})
_INVALID += [
    Reason("unknown_operation", "invalid_request", 404,
           "The vendor's SDKs and API description send no such operation, so Tollgate cannot tell what it does "
           "or costs: it is refused, never forwarded at $0."),
    Reason("body_too_large", "invalid_request", 413, "The body is larger than TOLLGATE_MAX_BODY_BYTES."),
    Reason("path_too_long", "invalid_request", 414, "The path is longer than Tollgate reads."),
    Reason("headers_too_large", "invalid_request", 431,
           "The headers together are larger than TOLLGATE_MAX_HEADER_BYTES."),
]

_UNAVAILABLE = [
    Reason("database_unavailable", "unavailable", 503,
           "Postgres cannot be reached: fail closed, nothing was forwarded."),
    Reason("gate_conflict", "unavailable", 503, "The budget gate could not decide this call; nothing was forwarded."),
    Reason("policy_churn", "unavailable", 503, "The key's policy changed on every try; nothing was forwarded."),
    Reason("reservation_expired", "unavailable", 503,
           "Recorded by the reconciler: the process handling the call died; its estimate was charged."),
    Reason("upstream_unreachable", "unavailable", 502, "The vendor could not be reached."),
    Reason("upstream_error", "unavailable", 502, "The vendor's connection failed mid-answer."),
    Reason("upstream_timeout", "unavailable", 504, "The vendor did not answer in time; the call may have happened."),
    Reason("upstream_server_error", "unavailable", 500,
           "The vendor answered a call that moves money or reaches people with a server error (5xx), which "
           "does not say whether it happened: its estimate stays counted until the vendor can be asked."),
    Reason("upstream_too_large", "unavailable", 502,
           "The vendor's answer is larger than TOLLGATE_UPSTREAM_MAX_BODY_BYTES: not relayed; the call happened, "
           "so its estimate stands."),
    Reason("fx_source_unreachable", "unavailable", 502,
           "tollgate prices sync --fx: the exchange-rate reference could not be fetched; nothing was stored."),
    Reason("fx_source_invalid", "unavailable", 502,
           "tollgate prices sync --fx: the reference is not the expected format (or has a DOCTYPE or entity); "
           "refused whole, nothing was stored."),
    Reason("internal_error", "unavailable", 500, "A bug in Tollgate; the process keeps serving."),
    Reason("database_stop_failed", "unavailable", 500,
           "tollgate db stop: pg_ctl did not stop the embedded Postgres; it is still running."),
]

_ADMIN = _kind("admin", 400, {
    "invalid_body": "The request body is not the JSON object the operation takes.",
    "invalid_field": "A field has the wrong type or value.",
    "missing_field": "A required field is missing.",
    "invalid_policy": "The policy document does not validate against policy.schema.json.",
    "invalid_days": "days is not a whole number in range.",
    "invalid_order": "order is neither asc nor desc.",
    "invalid_after_id": "after_id is not an integer.",
    "invalid_cursor": "cursor is not the next of a page of this list (pass it back unchanged).",
    "unknown_vendor": "No vendor of that name is served (404 on the proxy's routes).",
    "vendor_mismatch": "The policy is for another vendor than the key.",
    "policy_required": "A key needs exactly one of a policy document or a policy_id.",
    "missing_upstream_secret": "A key needs the vendor secret.",
    "missing_upstream_account": "This vendor's keys need the upstream account (such as an Account SID).",
    "unsealed_rows": "The month still has rows the audit chain has not sealed.",
    "no_price_sync": "tollgate prices sync --vendor: Tollgate cannot read this vendor's price list.",
    "no_unit_price": "tollgate prices set: this vendor has no per-unit rate to set (its prices are synced).",
    "invalid_rate": "tollgate prices set: the rate is not a positive USD amount.",
    "unknown_price_kind": "tollgate prices set: the vendor has no settable price of that kind, or has several "
                          "and none was named (`tollgate prices kinds VENDOR` lists them).",
    "invalid_events": "An alert subscription names an unknown event, or a detail its kind does not take.",
    "invalid_url": "An alert subscription's URL is not http(s)://host/... (no user or password, no spaces).",
    "invalid_format": "An alert subscription's format is neither json nor slack.",
    "invalid_delegation": "A child key's request is not one its parent can grant (another vendor, no recipient "
                          "left, a run id other than the parent's own run).",
    "invalid_ttl": "A child key's TTL is not a whole number of seconds from 1 to its parent's delegation.max_ttl_s.",
})
_ADMIN += [
    Reason(code, "admin", 404, description) for code, description in {
        "unknown_policy": "No policy has this id.",
        "unknown_approval": "No approval has this id.",
        "unknown_run": "No audit row has this run id.",
        "partition_not_found": "No audit partition of that name or month.",
        "unknown_subscription": "No alert subscription has this id.",
    }.items()
] + [
    Reason("approval_not_pending", "admin", 409, "The approval was already decided or has expired."),
    Reason("run_not_halted", "admin", 409, "tollgate runs resume: the run is not halted."),
    Reason("parent_inactive", "admin", 409, "A child key cannot be minted from a revoked or expired key."),
    Reason("partition_in_use", "admin", 409, "The partition holds rows that are not final yet."),
    Reason("database_in_use", "admin", 409,
           "tollgate db stop: a running tollgate serve uses the embedded Postgres (--force stops it anyway)."),
]

_CONFIG = _kind("config", 2, {
    "missing_signing_key": "The command needs TOLLGATE_SIGNING_KEY.",
    "unreadable_policy": "The policy file cannot be read.",
    "invalid_policy_json": "The policy file is not JSON.",
    "invalid_time": "A time is not ISO 8601.",
    "missing_master_key": "TOLLGATE_MASTER_KEY is required with DATABASE_URL.",
    "bad_master_key": "TOLLGATE_MASTER_KEY is not base64 of 32 bytes, or opens no stored secret.",
    "bad_workers": "tollgate serve --workers (TOLLGATE_WORKERS) is negative; 0 is one worker per core.",
    "port_in_use": "tollgate serve --workers: the address is taken by another process; pick another --port.",
})

_OUTCOME = _kind("outcome", 200, {
    "idempotent_replay": "The vendor answered from its idempotency cache: nothing happened again, nothing counted.",
    "credential_handed_out": "The vendor's answer handed the agent a credential (a new API key's secret), as the "
                             "policy's credentials.hand_out allows; the agent can use it without Tollgate.",
})

CATALOGUE: dict[str, Reason] = {r.code: r for r in [*_AUTH, *_POLICY, *_INVALID, *_UNAVAILABLE, *_ADMIN,
                                                      *_CONFIG, *_OUTCOME]}


def get(code: str) -> Reason:
    """The catalogue's entry; a code missing from it is a bug (the tests find every literal)."""
    return CATALOGUE[code]


def kind_of(code: str) -> str:
    reason = CATALOGUE.get(code)
    return reason.kind if reason else "policy"


def markdown_table() -> str:
    """The README's table of reason codes."""
    lines = ["| code | kind | status | meaning |", "|---|---|---|---|"]
    lines += [f"| `{r.code}` | {r.kind} | {r.status if r.kind != 'config' else 'exit 2'} | {r.description} |"
              for r in CATALOGUE.values()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
