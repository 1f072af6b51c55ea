"""The admin API's OpenAPI 3.1 document, served at /admin/v1/openapi.json."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from proxy.admin import openapi_alerts


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json_response("Invalid input", _ref("Error")),
    "401": _json_response("Missing or wrong admin token", _ref("Error")),
    "503": _json_response("Database unavailable", _ref("Error")),
}
_NOT_FOUND = {"404": _json_response("No such key", _ref("Error"))}
_KEY_ID = [{"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_POLICY_ID = [{"name": "policy_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_APPROVAL_ID = [{"name": "approval_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_CONFLICT = {"409": _json_response("The approval is no longer pending", _ref("Error"))}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


# Every list that grows with use comes in pages (proxy/pages.py): newest first unless it says
# otherwise, ``limit`` rows at a time, and ``next`` to pass back as ``cursor`` for the following page.
PAGE_PARAMETERS: list[dict[str, Any]] = [
    {"name": "limit", "in": "query", "description": "Rows per page",
     "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"},
     "description": "The `next` of the previous page, unchanged; leave it out for the first page"},
]


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["data", "next"], "properties": {
        "data": {"type": "array", "items": item},
        "next": {"type": ["string", "null"],
                 "description": "The cursor of the following page (opaque); null on the last page"}}}


_CAP_USAGE = {"type": "object", "properties": {
    "window": {"type": "string"}, "action": {"type": "string"}, "bucket": {"type": "string"},
    "limit_usd": {"type": ["string", "null"]}, "limit_requests": {"type": ["integer", "null"]},
    "spent_usd": {"type": "string"}, "reserved_usd": {"type": "string"}, "requests": {"type": "integer"},
    "remaining": {"type": "string"}}}


_GOVERNANCE_PATHS: dict[str, Any] = {
    "/admin/v1/policies": {
        "post": {"summary": "Store a policy; it starts at version 1",
                 "requestBody": _body(_ref("PolicyCreate")),
                 "responses": {"201": _json_response("The policy", _ref("Policy")), **_ERRORS}},
        "get": {"summary": "A page of policies, newest first, each with its number of keys",
                "parameters": PAGE_PARAMETERS,
                "responses": {"200": _json_response("Policies", _page(_ref("Policy"))), **_ERRORS}},
    },
    "/admin/v1/policies/{policy_id}": {
        "get": {"summary": "A policy with every version", "parameters": _POLICY_ID,
                "responses": {"200": _json_response("The policy", _ref("Policy")), **_ERRORS, **_NOT_FOUND}},
    },
    "/admin/v1/policies/{policy_id}/versions": {
        "post": {"summary": "Add an immutable version; it becomes current for every key on this policy",
                 "parameters": _POLICY_ID, "requestBody": _body(_ref("PolicyVersionCreate")),
                 "responses": {"201": _json_response("The policy", _ref("Policy")), **_ERRORS, **_NOT_FOUND}},
    },
    "/admin/v1/keys/{key_id}/policy": {
        "post": {"summary": "Point a key at another policy of the same vendor", "parameters": _KEY_ID,
                 "requestBody": _body({"type": "object", "required": ["policy_id"],
                                       "properties": {"policy_id": {"type": "string"}}}),
                 "responses": {"200": _json_response("The key", _ref("Key")), **_ERRORS, **_NOT_FOUND}},
    },
    "/admin/v1/keys/{key_id}/spend": {
        "get": {"summary": "Spend against each cap of the key's current policy",
                "parameters": [*_KEY_ID, {"name": "agent_run_id", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": _json_response("Spend", _ref("Spend")), **_ERRORS, **_NOT_FOUND}},
    },
    "/admin/v1/approvals": {
        "get": {"summary": "A page of approvals, newest first",
                "parameters": [
                    {"name": "status", "in": "query",
                     "schema": {"type": "string", "enum": ["pending", "approved", "denied", "used", "expired"]}},
                    {"name": "key_id", "in": "query", "schema": {"type": "string"}},
                    *PAGE_PARAMETERS,
                ],
                "responses": {"200": _json_response("Approvals", _page(_ref("Approval"))), **_ERRORS}},
    },
    "/admin/v1/approvals/{approval_id}": {
        "get": {"summary": "One approval", "parameters": _APPROVAL_ID,
                "responses": {"200": _json_response("The approval", _ref("Approval")), **_ERRORS, **_NOT_FOUND}},
    },
    "/admin/v1/approvals/{approval_id}/approve": {
        "post": {"summary": "Approve: the agent's identical retry passes once", "parameters": _APPROVAL_ID,
                 "requestBody": _body(_ref("Decision"), required=False),
                 "responses": {"200": _json_response("The approval", _ref("Approval")), **_ERRORS, **_NOT_FOUND,
                               **_CONFLICT}},
    },
    "/admin/v1/approvals/{approval_id}/deny": {
        "post": {"summary": "Deny: the identical retry is refused until the approval expires",
                 "parameters": _APPROVAL_ID, "requestBody": _body(_ref("Decision"), required=False),
                 "responses": {"200": _json_response("The approval", _ref("Approval")), **_ERRORS, **_NOT_FOUND,
                               **_CONFLICT}},
    },
}

_GOVERNANCE_PATHS["/admin/v1/runs/{run_id}"] = {
    "get": {"summary": "A run's story: every call of one X-Agent-Run-Id in order, with running totals against caps",
            "parameters": [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json_response("The run", _ref("Run")), **_ERRORS,
                          "404": _json_response("No calls for this run", _ref("Error"))}},
}

_RUN_ID = [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_GOVERNANCE_PATHS["/admin/v1/runs/{run_id}/stop"] = {
    "post": {"summary": "Halt a run by hand (it need not have made a call yet): every key refuses its calls "
                        "as run_halted, quoting the reason, until it is resumed. A run halted already keeps its halt",
             "parameters": _RUN_ID,
             "requestBody": _body({"type": "object", "properties": {
                 "reason": {"type": ["string", "null"], "maxLength": 500,
                            "description": "Why; the refusals quote it"}}},
                 required=False),
             "responses": {"200": _json_response("The run's state", _ref("RunState")), **_ERRORS}},
}
_GOVERNANCE_PATHS["/admin/v1/runs/{run_id}/resume"] = {
    "post": {"summary": "Lift a run's halt: its calls count again from 0, its refusals and errors from now",
             "parameters": _RUN_ID,
             "responses": {"200": _json_response("The run's state", _ref("RunState")), **_ERRORS,
                           "404": _json_response("No such run", _ref("Error")),
                           "409": _json_response("The run is not halted", _ref("Error"))}},
}

_GOVERNANCE_PATHS["/admin/v1/halted-runs"] = {
    "get": {"summary": "A page of the runs halted now, the latest halt first (SQL: the halted_runs view)",
            "parameters": PAGE_PARAMETERS,
            "responses": {"200": _json_response("Halted runs", _page(_ref("RunState"))), **_ERRORS}},
}

_GOVERNANCE_PATHS["/admin/v1/spend/daily"] = {
    "get": {"summary": "Money moved per vendor per UTC day (forwarded calls), for the last `days` days",
            "parameters": [{"name": "days", "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 366, "default": 30}}],
            "responses": {"200": _json_response("Spend per day and vendor; days without calls are absent",
                                                _ref("DailySpend")), **_ERRORS}},
}

_GOVERNANCE_PATHS["/admin/v1/counts"] = {
    "get": {"summary": "How many keys there are (and how many are active) and how many approvals wait",
            "responses": {"200": _json_response("Counts", _ref("Counts")), **_ERRORS}},
}

_GOVERNANCE_SCHEMAS: dict[str, Any] = {
    "Counts": {"type": "object", "properties": {
        "keys": {"type": "object", "properties": {"active": {"type": "integer"}, "total": {"type": "integer"}}},
        "approvals": {"type": "object", "properties": {"pending": {"type": "integer"}}}}},
    "DailySpend": {"type": "object", "properties": {
        "days": {"type": "integer"},
        "data": {"type": "array", "items": {"type": "object", "properties": {
            "day": {"type": "string", "format": "date"}, "vendor": {"type": "string"},
            "usd": {"type": "string"}, "calls": {"type": "integer"}}}}}},
    "RunState": {"type": "object", "description": "A run's stop state (proxy/halts.py; SQL: the halted_runs view)",
                 "properties": {
        "agent_run_id": {"type": "string"}, "halted": {"type": "boolean"},
        "halted_at": {"type": ["string", "null"]},
        "condition": {"type": ["string", "null"],
                      "enum": ["max_calls", "max_refusals", "consecutive_errors", "operator", None]},
        "detail": {"type": ["string", "null"]}, "key_id": {"type": ["string", "null"],
                                                         "description": "the key whose policy halted it"},
        "calls_since_resume": {"type": "integer"}, "first_call_at": {"type": "string"},
        "last_call_at": {"type": "string"}, "resumed_at": {"type": ["string", "null"]},
        "message": {"type": ["string", "null"], "description": "what the run's refused calls are told"}}},
    "Run": {"type": "object", "properties": {
        "agent_run_id": {"type": "string"}, "total_usd": {"type": "string"},
        "halt": {"anyOf": [_ref("RunState"), {"type": "null"}]},
        "vendors": {"type": "array", "items": {"type": "string"}},
        "decisions": {"type": "object", "additionalProperties": {"type": "integer"}},
        "calls": {"type": "array", "items": {"type": "object", "properties": {
            "ts": {"type": "string"}, "vendor": {"type": "string"}, "endpoint": {"type": ["string", "null"]},
            "decision": {"type": "string"}, "reason": {"type": ["string", "null"]},
            "predicted_usd": {"type": ["string", "null"]}, "cost_usd": {"type": ["string", "null"]},
            "upstream_status": {"type": ["integer", "null"]}, "run_total_usd": {"type": "string"},
            "tool": {"type": ["string", "null"], "description": "the MCP tool it was called as; null: a vendor route"},
            "caps": {"type": "array", "items": {"type": "object", "properties": {
                "window": {"type": "string"}, "unit": {"type": "string"}, "limit": {"type": "string"},
                "used": {"type": "string"}}}}}}}}},
    "PolicyCreate": {"type": "object", "required": ["document"],
                     "properties": {"document": {"type": "object"}, "name": {"type": "string"}}},
    "PolicyVersionCreate": {"type": "object", "required": ["document"], "properties": {"document": {"type": "object"}}},
    "Policy": {"type": "object", "properties": {
        "id": {"type": "string"}, "vendor": {"type": "string"}, "name": {"type": ["string", "null"]},
        "current_version": {"type": "integer"}, "created_at": {"type": "string"},
        "keys": {"type": "integer", "description": "in listings: how many keys follow it"},
        "versions": {"type": "array", "items": {"type": "object", "properties": {
            "version": {"type": "integer"}, "created_at": {"type": "string"}, "document": {"type": "object"}}}}}},
    "Spend": {"type": "object", "properties": {
        "key_id": {"type": "string"}, "policy_id": {"type": "string"}, "policy_version": {"type": "integer"},
        "agent_run_id": {"type": ["string", "null"]},
        "caps": {"type": "array", "items": _CAP_USAGE}}},
    "Approval": {"type": "object", "properties": {
        "id": {"type": "string"}, "key_id": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "approved", "denied", "used", "expired"]},
        "reason": {"type": "string"}, "message": {"type": ["string", "null"]}, "method": {"type": "string"},
        "path": {"type": "string"}, "endpoint": {"type": ["string", "null"]},
        "agent_run_id": {"type": ["string", "null"]}, "predicted_usd": {"type": ["string", "null"]},
        "request": {"type": ["object", "null"], "description": "What would be sent, redacted: the parameters, "
                    "the account the call acts on and the headers that decide what it acts on",
                    "properties": {"params": {"type": "object"}, "account": {"type": ["string", "null"]},
                                   "headers": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "audit_id": {"type": ["integer", "null"]},
        "used_audit_id": {"type": ["integer", "null"]}, "created_at": {"type": "string"},
        "expires_at": {"type": "string"}, "decided_at": {"type": ["string", "null"]},
        "decided_by": {"type": ["string", "null"]}, "note": {"type": ["string", "null"]}}},
    "Decision": {"type": "object", "properties": {"by": {"type": "string"}, "note": {"type": "string"}}},
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Tollgate admin API", "version": "1"},
    "security": [{"adminToken": []}],
    "paths": {
        **_GOVERNANCE_PATHS,
        **openapi_alerts.paths(_ERRORS, PAGE_PARAMETERS),
        "/admin/v1/keys": {
            "post": {
                "summary": "Create a vault key bound to an upstream credential and a policy",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("KeyCreate")}}},
                "responses": {"201": _json_response("Created; `key` is shown only here", _ref("CreatedKey")),
                              **_ERRORS, **_NOT_FOUND},
            },
            "get": {
                "summary": "A page of keys, newest first",
                "parameters": [
                    {"name": "vendor", "in": "query", "schema": {"type": "string"}},
                    {"name": "policy_id", "in": "query", "schema": {"type": "string"},
                     "description": "Only the keys on this policy"},
                    {"name": "include", "in": "query", "schema": {"type": "string", "enum": ["spend"]},
                     "description": "spend: each key's spend against every cap of its current policy "
                                    "('run' caps for its latest run), read for the whole page at once"},
                    *PAGE_PARAMETERS,
                ],
                "responses": {"200": _json_response("Keys", _page(_ref("Key"))), **_ERRORS},
            },
        },
        "/admin/v1/keys/{key_id}": {
            "get": {"summary": "Show a key", "parameters": _KEY_ID,
                    "responses": {"200": _json_response("The key", _ref("Key")), **_ERRORS, **_NOT_FOUND}},
        },
        "/admin/v1/keys/{key_id}/revoke": {
            "post": {"summary": "Revoke a key; every later request with it is blocked", "parameters": _KEY_ID,
                     "responses": {"200": _json_response("The revoked key", _ref("Key")), **_ERRORS, **_NOT_FOUND}},
        },
        "/admin/v1/keys/{key_id}/children": {
            "post": {"summary": "Mint a child key bound to one run, for a TTL, with a policy that only narrows this "
                                "key's; its calls also count against this key's caps, and revoking this key revokes it",
                     "parameters": _KEY_ID, "requestBody": _body(_ref("ChildCreate")),
                     "responses": {"201": _json_response("The child and its token, shown once", _ref("CreatedKey")),
                                   **_ERRORS, **_NOT_FOUND,
                                   "403": _json_response("The key's chain is as deep as its policy allows",
                                                         _ref("Error")),
                                   "409": _json_response("The key is revoked or expired", _ref("Error"))}},
        },
        "/admin/v1/policies/validate": {
            "post": {
                "summary": "Validate a policy document against policy.schema.json",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": _json_response("Validation result", _ref("Validation")), **_ERRORS},
            },
        },
        "/admin/v1/audit": {
            "get": {
                "summary": "Audit rows, oldest first (or newest first), filtered by run id, key, vendor, decision",
                "parameters": [
                    {"name": "agent_run_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "key_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "vendor", "in": "query", "schema": {"type": "string"}},
                    {"name": "decision", "in": "query", "schema": {"type": "string", "enum": [
                        "allowed", "blocked", "shadow_blocked", "approval_required", "error"]}},
                    {"name": "after_id", "in": "query", "schema": {"type": "integer"},
                     "description": "only rows with a larger id (for polling)"},
                    {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"],
                                                                  "default": "asc"}},
                    *PAGE_PARAMETERS,
                ],
                "responses": {"200": _json_response("A page of rows", _page({"type": "object"})), **_ERRORS},
            },
        },
    },
    "components": {
        "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            **_GOVERNANCE_SCHEMAS,
            **openapi_alerts.SCHEMAS,
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                               "errors": {"type": "array", "items": {"type": "object"}}}}}},
            "KeyCreate": {
                "type": "object",
                "required": ["vendor", "upstream_secret"],
                "properties": {
                    "vendor": {"type": "string"},  # its enum: document()
                    "policy": {"type": "object", "description": "A policy document (policy.schema.json)"},
                    "policy_id": {"type": "string"},
                    "upstream_secret": {"type": "string", "writeOnly": True},
                    "upstream_account": {"type": "string"},
                    "label": {"type": "string"},
                    "expires_at": {"type": "string", "format": "date-time"},
                },
            },
            "Key": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"}, "vendor": {"type": "string"}, "label": {"type": ["string", "null"]},
                    "status": {"type": "string", "enum": ["active", "revoked"]},
                    "policy_id": {"type": "string"}, "policy_version": {"type": "integer"},
                    "upstream_account": {"type": ["string", "null"]},
                    "created_at": {"type": "string"}, "revoked_at": {"type": ["string", "null"]},
                    "expires_at": {"type": ["string", "null"]}, "policy": {"type": "object"},
                    "parent_key_id": {"type": ["string", "null"], "description": "the key it was delegated from"},
                    "depth": {"type": "integer", "description": "0: made by an operator; n: n delegations below"},
                    "agent_run_id": {"type": ["string", "null"], "description": "a child's run: on all its rows"},
                    "children": {"type": "array", "items": {"type": "object"},
                                 "description": "in show: the keys delegated from it"},
                    "last_call_at": {"type": ["string", "null"], "description": "in listings: the latest call"},
                    "last_run_id": {"type": ["string", "null"], "description": "in listings: its X-Agent-Run-Id"},
                    "spend": {"type": "object", "description": "in listings with include=spend",
                              "properties": {"agent_run_id": {"type": ["string", "null"]},
                                             "caps": {"type": "array", "items": _CAP_USAGE}}},
                },
            },
            "ChildCreate": {"type": "object", "properties": {
                "agent_run_id": {"type": "string", "description": "the one run the child's calls record; "
                                                                   "default: the parent's own run, if it has one"},
                "ttl_s": {"type": "integer", "minimum": 1, "description": "seconds it lives (default 900; at most "
                                                                          "the parent's delegation.max_ttl_s)"},
                "policy": {"type": "object", "description": "a narrowing of the parent's policy (any field of a "
                                                            "policy; what is left out is the parent's)"},
                "label": {"type": "string"}}},
            "CreatedKey": {"allOf": [_ref("Key"), {"type": "object", "required": ["id", "key"],
                                                    "properties": {"key": {"type": "string"}}}]},
            "Validation": {"type": "object", "properties": {
                "valid": {"type": "boolean"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "pointer": {"type": "string"}, "reason": {"type": "string"}}}},
                "warnings": {"type": "array", "items": {"type": "string"}, "description":
                             "What the policy allows that moves money unpriced or issues credentials"},
                "matches": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}},
                            "description": "Each allowed pattern and the operations it matches"}}},
        },
    },
}


def document(vendors: Iterable[str]) -> dict[str, Any]:
    """The served document: OPENAPI with the vendors this process serves as KeyCreate's enum."""
    served = copy.deepcopy(OPENAPI)
    served["components"]["schemas"]["KeyCreate"]["properties"]["vendor"]["enum"] = sorted(vendors)
    return served
