"""The admin API's OpenAPI 3.1 document, served at /admin/v1/openapi.json."""

from __future__ import annotations

from typing import Any


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

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Tollgate admin API", "version": "1"},
    "security": [{"adminToken": []}],
    "paths": {
        "/admin/v1/keys": {
            "post": {
                "summary": "Create a vault key bound to an upstream credential and a policy",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("KeyCreate")}}},
                "responses": {"201": _json_response("Created; `key` is shown only here", _ref("CreatedKey")),
                              **_ERRORS, **_NOT_FOUND},
            },
            "get": {
                "summary": "List keys",
                "parameters": [{"name": "vendor", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": _json_response("Keys", {"type": "object", "properties": {
                    "data": {"type": "array", "items": _ref("Key")}}}), **_ERRORS},
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
        "/admin/v1/policies/validate": {
            "post": {
                "summary": "Validate a policy document against policy.schema.json",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": _json_response("Validation result", _ref("Validation")), **_ERRORS},
            },
        },
        "/admin/v1/audit": {
            "get": {
                "summary": "Audit rows, oldest first, by run id and/or key",
                "parameters": [
                    {"name": "agent_run_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "key_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                ],
                "responses": {"200": _json_response("Rows", {"type": "object", "properties": {
                    "data": {"type": "array", "items": {"type": "object"}}}}), **_ERRORS},
            },
        },
    },
    "components": {
        "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                               "errors": {"type": "array", "items": {"type": "object"}}}}}},
            "KeyCreate": {
                "type": "object",
                "required": ["vendor", "upstream_secret"],
                "properties": {
                    "vendor": {"type": "string", "enum": ["stripe", "twilio", "resend"]},
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
                },
            },
            "CreatedKey": {"allOf": [_ref("Key"), {"type": "object", "required": ["id", "key"],
                                                    "properties": {"key": {"type": "string"}}}]},
            "Validation": {"type": "object", "properties": {
                "valid": {"type": "boolean"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "pointer": {"type": "string"}, "reason": {"type": "string"}}}}}},
        },
    },
}
