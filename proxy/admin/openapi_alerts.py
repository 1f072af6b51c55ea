"""The alert routes' part of the admin API's OpenAPI document (merged in proxy/admin/openapi.py)."""

from __future__ import annotations

from typing import Any

from proxy.alerts.events import KINDS
from proxy.alerts.subscriptions import DELIVERY_STATUSES, FORMATS


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def paths(errors: dict[str, Any], page_parameters: list[dict[str, Any]]) -> dict[str, Any]:
    not_found = {"404": _json("No such subscription", _ref("Error"))}
    return {
        "/admin/v1/alerts/subscriptions": {
            "post": {"summary": "Subscribe a webhook to alert events; the signing `secret` is shown only here",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _ref("AlertSubscriptionCreate")}}},
                     "responses": {"201": _json("The subscription, with its secret",
                                                _ref("CreatedAlertSubscription")), **errors}},
            "get": {"summary": "Alert subscriptions, oldest first",
                    "parameters": [{"name": "include", "in": "query", "schema": {"type": "string", "enum": ["removed"]},
                                    "description": "removed: list removed subscriptions too"}],
                    "responses": {"200": _json("Subscriptions", {"type": "object", "properties": {
                        "data": {"type": "array", "items": _ref("AlertSubscription")}}}), **errors}},
        },
        "/admin/v1/alerts/subscriptions/{subscription_id}": {
            "delete": {"summary": "Remove a subscription: no further events; its pending deliveries are cancelled",
                       "parameters": [{"name": "subscription_id", "in": "path", "required": True,
                                       "schema": {"type": "string"}}],
                       "responses": {"200": _json("The removed subscription", _ref("AlertSubscription")),
                                     **errors, **not_found}},
        },
        "/admin/v1/alerts/deliveries": {
            "get": {"summary": "A page of deliveries (one per event and subscription), newest first, "
                               "each with its latest attempt",
                    "parameters": [{"name": "subscription_id", "in": "query", "schema": {"type": "string"}},
                                   {"name": "status", "in": "query",
                                    "schema": {"type": "string", "enum": list(DELIVERY_STATUSES)}},
                                   *page_parameters],
                    "responses": {"200": _json("Deliveries", {"type": "object", "required": ["data", "next"],
                                                              "properties": {
                        "data": {"type": "array", "items": _ref("AlertDelivery")},
                        "next": {"type": ["string", "null"]}}}), **errors}},
        },
    }


_FILTER = {"type": "string", "description": "An event kind (" + ", ".join(KINDS) + "), or kind:detail: "
           "refusal:<reason code>, cap_threshold:<percent>"}
_SUBSCRIPTION: dict[str, Any] = {"type": "object", "properties": {
    "id": {"type": "string"}, "url": {"type": "string", "description": "shortened: a webhook URL can be a credential"},
    "events": {"type": "array", "items": _FILTER}, "format": {"type": "string", "enum": list(FORMATS)},
    "created_at": {"type": "string"}, "removed_at": {"type": ["string", "null"]}}}

SCHEMAS: dict[str, Any] = {
    "AlertSubscriptionCreate": {"type": "object", "required": ["url", "events"], "properties": {
        "url": {"type": "string", "description": "http(s) URL the events are POSTed to"},
        "events": {"type": "array", "items": _FILTER, "minItems": 1},
        "format": {"type": "string", "enum": list(FORMATS), "default": "json",
                   "description": "json: the event; slack: {\"text\": ...} for a Slack incoming webhook"}}},
    "AlertSubscription": _SUBSCRIPTION,
    "CreatedAlertSubscription": {"allOf": [_ref("AlertSubscription"), {
        "type": "object", "required": ["id", "secret"], "properties": {"secret": {
            "type": "string", "description": "whsec_...: verifies Tollgate-Signature; shown only here"}}}]},
    "AlertDelivery": {"type": "object", "properties": {
        "id": {"type": "integer"}, "event_id": {"type": "string"}, "subscription_id": {"type": "string"},
        "kind": {"type": "string"}, "detail": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": list(DELIVERY_STATUSES)}, "attempts": {"type": "integer"},
        "next_attempt_at": {"type": "string"}, "delivered_at": {"type": ["string", "null"]},
        "created_at": {"type": "string"}, "status_code": {"type": ["integer", "null"]},
        "error": {"type": ["string", "null"]}, "last_attempt_at": {"type": ["string", "null"]}}},
}
