"""Tollgate refusals in Twilio's error shape, with Tollgate's own integer codes.

Twilio answers errors as ``{"code": int, "message": str, "more_info": url,
"status": int}``. twilio-python (twilio/base/version.py, ``Version.exception``)
turns any such body into ``TwilioRestException(status=<HTTP status>, msg="Unable
to <verb> record: <message>", code=<code>)``; a body that also has ``type`` and
``title`` would become a ``TwilioServiceException`` instead, so those keys are
never sent.

Twilio's codes are integers of five digits (20003, 21211, ...). Tollgate's codes
are six digits, ``99xxxx``, so they can never be mistaken for one of Twilio's.
The hundreds digit says what kind of refusal it is; a reason not in the table
gets the kind's ``99x000`` code. The stable reason string travels too: in the
message as ``[tollgate:<reason>]`` and in an extra ``tollgate_reason`` field
(``tollgate_param`` and ``approval_id`` too, when set).

====================  ======  ===========================================
kind                  code    reasons
====================  ======  ===========================================
auth                  991000  missing_key 991001, malformed_key 991002,
                              bad_checksum 991003, unknown_key 991004,
                              invalid_secret 991005, key_revoked 991006,
                              key_expired 991007, wrong_vendor 991008,
                              account_mismatch 991009
policy                992000  endpoint_not_allowed 992001, customer_not_allowed
                              992002, customer_not_identified 992003,
                              recipient_not_allowed 992004,
                              country_not_allowed 992005, sender_not_allowed
                              992006, too_many_recipients 992007,
                              per_call_limit 992008, cap_exceeded 992009,
                              cap_requires_approval 992010, approval_required
                              992011, approval_denied 992012, run_id_required
                              992013, policy_expired 992014, policy_changed
                              992015, shadow_blocked 992016, blocked 992017,
                              object_not_created_through_key 992018,
                              endpoint_requires_approval 992019, cost_unknown
                              992020, credential_withheld 992021
invalid request       993000  malformed_form 993001, invalid_utf8 993002,
                              duplicate_parameter 993003, ambiguous_parameter
                              993004, unsupported_content_type 993005,
                              too_many_parameters 993006, invalid_parameter
                              993007, invalid_recipient 993008, invalid_sender
                              993009, invalid_path 993010, path_too_long 993011,
                              body_too_large 993012, duplicate_header 993013,
                              invalid_run_id 993014, client_disconnected 993015,
                              invalid_amount 993016, unknown_currency 993017,
                              invalid_json 993018, unexpected_body 993019,
                              too_many_to_addresses 993020, batch_too_large
                              993021, invalid_batch 993022, unknown_operation
                              993023
not found             994000
unavailable           995000  database_unavailable 995001, gate_conflict
                              995002, policy_churn 995003, upstream_error
                              995004, upstream_timeout 995005,
                              upstream_unreachable 995006,
                              reservation_expired 995007
====================  ======  ===========================================
"""

from __future__ import annotations

import json

from vendors.base import RenderedResponse, VendorError

KIND_CODES = {"auth": 991000, "policy": 992000, "invalid_request": 993000, "not_found": 994000, "unavailable": 995000}

_BY_KIND: dict[str, tuple[str, ...]] = {
    "auth": ("missing_key", "malformed_key", "bad_checksum", "unknown_key", "invalid_secret", "key_revoked",
             "key_expired", "wrong_vendor", "account_mismatch"),
    "policy": ("endpoint_not_allowed", "customer_not_allowed", "customer_not_identified", "recipient_not_allowed",
               "country_not_allowed", "sender_not_allowed", "too_many_recipients", "per_call_limit", "cap_exceeded",
               "cap_requires_approval", "approval_required", "approval_denied", "run_id_required", "policy_expired",
               "policy_changed", "shadow_blocked", "blocked", "object_not_created_through_key",
               "endpoint_requires_approval", "cost_unknown", "credential_withheld"),
    "invalid_request": ("malformed_form", "invalid_utf8", "duplicate_parameter", "ambiguous_parameter",
                        "unsupported_content_type", "too_many_parameters", "invalid_parameter", "invalid_recipient",
                        "invalid_sender", "invalid_path", "path_too_long", "body_too_large", "duplicate_header",
                        "invalid_run_id", "client_disconnected", "invalid_amount", "unknown_currency",
                        "invalid_json", "unexpected_body", "too_many_to_addresses", "batch_too_large",
                        "invalid_batch", "unknown_operation"),
    "unavailable": ("database_unavailable", "gate_conflict", "policy_churn", "upstream_error", "upstream_timeout",
                    "upstream_unreachable", "reservation_expired"),
}

# Append-only: a code, once published, keeps its meaning.
REASON_CODES: dict[str, int] = {
    reason: KIND_CODES[kind] + index
    for kind, reasons in _BY_KIND.items()
    for index, reason in enumerate(reasons, start=1)
}

# A URI, as Twilio's field is, that names the reason; Twilio's own docs say nothing about 99xxxx codes.
MORE_INFO = "urn:tollgate:error:{reason}"


def code_for(error: VendorError) -> int:
    """The integer code for a refusal: the reason's own, else one for its kind."""
    if error.reason in REASON_CODES:
        return REASON_CODES[error.reason]
    # The core marks every non-auth refusal "policy", so the HTTP status decides first.
    if error.status == 401 or error.kind == "auth":
        return KIND_CODES["auth"]
    if error.status == 404 or error.kind == "not_found":
        return KIND_CODES["not_found"]
    if error.status >= 500 or error.kind == "unavailable":
        return KIND_CODES["unavailable"]
    if error.status in (403, 429):
        return KIND_CODES["policy"]
    return KIND_CODES["invalid_request"] if 400 <= error.status < 500 else KIND_CODES["policy"]


def render(error: VendorError) -> RenderedResponse:
    code = code_for(error)
    body = {
        "code": code,
        "message": f"[tollgate:{error.reason}] {error.message}",
        "more_info": MORE_INFO.format(reason=error.reason),
        "status": error.status,
        "tollgate_reason": error.reason,
    }
    if error.param:
        body["tollgate_param"] = error.param
    if error.approval_id:  # the call is held for an operator: retrying it after approval goes through
        body["approval_id"] = error.approval_id
    headers = {"content-type": "application/json; charset=utf-8"}
    if error.request_id:
        headers["twilio-request-id"] = error.request_id
    return RenderedResponse(error.status, headers, json.dumps(body).encode())
