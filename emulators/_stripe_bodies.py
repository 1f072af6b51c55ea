"""The Stripe emulator's other bodies and hosts: /v2 JSON, file uploads, the meter event stream.

stripe-python 16 sends /v2 requests as JSON and file uploads as multipart/form-data to the files
host (files.stripe.com); the meter event stream goes to meter-events.stripe.com. One emulator app
answers all of them, so a test serves one instance per host and sees which host got what.

Read independently of the proxy's own readers (this package imports nothing from ``vendors``):
JSON with :func:`json.loads`, multipart with the standard library's email parser. Answers are
shaped from Stripe's own definitions:

* ``POST /v2/money_management/outbound_payments``: the attributes of stripe-python's
  ``stripe.v2.money_management.OutboundPayment`` (fixtures3.json has no v2 object), every one of
  them, amounts as ``stripe.v2.Amount`` (``{"value": int, "currency": str}``);
* ``POST /v1/files``: fixtures3.json's ``file``, with the upload's name, size and purpose;
* ``POST /v2/billing/meter_event_stream``: ``{}`` (stripe-python's ``create`` returns None). Stripe
  wants a meter event session's token there; this emulator takes the secret key like any route.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
from datetime import UTC, datetime
from typing import Any

from . import _stripe_store as objects
from ._stripe_params import StripeApiError, decode_pairs
from ._stripe_store import Obj, Store

Params = dict[str, Any]
_FILE_TYPES = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "pdf": "pdf", "csv": "csv", "gif": "gif"}


def json_params(body: bytes) -> Params:
    try:
        params = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StripeApiError(400, f"Invalid request: the JSON body could not be parsed ({exc}).") from exc
    if not isinstance(params, dict):
        raise StripeApiError(400, "Invalid request: the JSON body must be an object.")
    return params


def multipart_params(content_type: str, body: bytes) -> Params:
    """Text parts by their bracket names (as a form), file parts as {"filename", "content"}."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
    if not message.is_multipart():
        raise StripeApiError(400, "Invalid request: the multipart body could not be parsed.")
    pairs: list[tuple[str, str]] = []
    files: Params = {}
    for part in message.get_payload():
        name = part.get_param("name", header="content-disposition")
        content = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files[name] = {"filename": part.get_filename(), "content": content}
        else:
            pairs.append((name, content.decode("utf-8")))
    return {**decode_pairs(pairs), **files}


def rfc3339(moment: int) -> str:
    """v2 timestamps: RFC 3339 in UTC with milliseconds (stripe-python's v2 docstrings)."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def amount(params: Params, name: str) -> dict[str, Any]:
    """A /v2 ``Amount`` parameter, checked as Stripe does."""
    given = params.get(name)
    if not isinstance(given, dict) or "value" not in given or "currency" not in given:
        raise StripeApiError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
    value, currency = given["value"], given["currency"]
    if type(value) is not int or value < 1 or not isinstance(currency, str):
        raise StripeApiError(400, f"Invalid {name}: value must be a positive integer, currency a string.",
                             code="parameter_invalid", param=name)
    return {"value": value, "currency": currency.lower()}


def required_object(params: Params, name: str) -> Params:
    value = params.get(name)
    if not isinstance(value, dict):
        raise StripeApiError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
    return value


def create_outbound_payment(store: Store, params: Params) -> Obj:
    moved = amount(params, "amount")
    source, destination = required_object(params, "from"), required_object(params, "to")
    created = rfc3339(objects.now())
    payment = {
        "id": objects.new_id("obp"),
        "object": "v2.money_management.outbound_payment",
        "amount": moved,
        "cancelable": True,
        "created": created,
        "description": params.get("description"),
        "expected_arrival_date": created,
        "from": {"debited": dict(moved), "financial_account": source.get("financial_account")},
        "livemode": False,
        "metadata": params.get("metadata") or {},
        "payout_intent": None,
        "recipient_notification": params.get("recipient_notification") or {"setting": "configured"},
        "recipient_verification": params.get("recipient_verification"),
        "statement_descriptor": params.get("statement_descriptor") or "STRIPE",
        "status": "processing",
        "status_details": None,
        "status_transitions": {"canceled_at": None, "failed_at": None, "posted_at": None, "returned_at": None},
        "to": {"credited": dict(moved), "payout_method": destination.get("payout_method"),
               "payout_method_options": None, "recipient": destination.get("recipient")},
        "tracking_details": None,
    }
    return store.add(payment)


def create_file(store: Store, params: Params) -> Obj:
    upload = params.get("file")
    if not isinstance(upload, dict):
        raise StripeApiError(400, "Missing required param: file.", code="parameter_missing", param="file")
    purpose = params.get("purpose")
    if not isinstance(purpose, str) or not purpose:
        raise StripeApiError(400, "Missing required param: purpose.", code="parameter_missing", param="purpose")
    file = objects.fixture("file")
    file_id = objects.new_id("file")
    extension = upload["filename"].rpartition(".")[2].lower()
    file.update(
        id=file_id,
        created=objects.now(),
        expires_at=objects.now() + 365 * 86400,
        filename=upload["filename"],
        purpose=purpose,
        size=len(upload["content"]),
        title=None,
        type=_FILE_TYPES.get(extension, extension or None),
        url=f"https://files.stripe.com/v1/files/{file_id}/contents",
        links=objects.empty_list(f"/v1/file_links?file={file_id}"),
    )
    return store.add(file)


def create_meter_event_stream(store: Store, params: Params) -> Obj:
    if not isinstance(params.get("events"), list) or not params["events"]:
        raise StripeApiError(400, "Missing required param: events.", code="parameter_missing", param="events")
    return {}
