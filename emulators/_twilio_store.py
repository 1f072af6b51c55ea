"""Objects and builders for the Twilio emulator.

Every message and call starts as a deep copy of the example Twilio publishes in its
own OpenAPI description (``emulators/fixtures/twilio_api_v2010.json``, twilio/twilio-oai
``spec/json/twilio_api_v2010.json``): the ``create`` example of
``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` and of ``.../Calls.json``.
Builders then overwrite what the request and the object's state decide (sid,
account, to, from, body, segments, status, dates, uris). As at Twilio, a new
object has ``price: null``; tests play Twilio's later pricing with
``Store.set_price``.
"""

from __future__ import annotations

import copy
import functools
import json
import secrets
from email.utils import formatdate
from pathlib import Path
from typing import Any

from vendors import sms  # Twilio's own segment rules; vendors/sms.py is tested against known cases

SPEC_PATH = Path(__file__).resolve().parent / "fixtures" / "twilio_api_v2010.json"
API = "/2010-04-01"

Obj = dict[str, Any]


@functools.cache
def _spec() -> Obj:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def example(path: str, method: str, status: str, name: str) -> Obj:
    """A private deep copy of one of Twilio's published response examples."""
    operation = _spec()["paths"][API + path][method]
    examples = operation["responses"][status]["content"]["application/json"]["examples"]
    return copy.deepcopy(examples[name]["value"])


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def now() -> str:
    return formatdate(usegmt=False).replace("-0000", "+0000")  # Twilio's RFC 2822 dates


class TwilioApiError(Exception):
    """An error answer in Twilio's shape."""

    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> Obj:
        return {"code": self.code, "message": self.message,
                "more_info": f"https://www.twilio.com/docs/errors/{self.code}", "status": self.status}


class Store:
    """Messages, calls and bought numbers of one emulator instance, by sid (insertion ordered)."""

    def __init__(self) -> None:
        self.messages: dict[str, Obj] = {}
        self.calls: dict[str, Obj] = {}
        self.numbers: dict[str, Obj] = {}  # incoming phone numbers bought, by PN sid
        self.keys: dict[str, Obj] = {}  # API keys created (with their secrets), by SK sid

    def get(self, kind: str, sid: str, path: str) -> Obj:
        found = getattr(self, kind).get(sid)
        if found is None:
            raise TwilioApiError(404, 20404, f"The requested resource {path} was not found")
        return found

    def set_price(self, sid: str, price: str, price_unit: str = "USD", status: str | None = None) -> Obj:
        """What Twilio does once it has priced a message or call: later fetches return the price."""
        obj = self.messages.get(sid) or self.calls[sid]
        final = status or ("delivered" if sid[:2] in ("SM", "MM") else "completed")
        obj.update(price=price, price_unit=price_unit, status=final, date_updated=now())
        if "date_sent" in obj:
            obj["date_sent"] = obj["date_sent"] or obj["date_updated"]
        return obj

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> Obj:
        obj = self.messages.get(sid) or self.calls[sid]
        obj.update(status=status, date_updated=now())
        if "error_code" in obj:
            obj["error_code"] = error_code
        return obj


def new_message(account_sid: str, params: dict[str, Any]) -> Obj:
    media = params.get("MediaUrl", [])
    message = example("/Accounts/{AccountSid}/Messages.json", "post", "201", "create")
    sid = new_sid("MM" if media else "SM")
    body = params.get("Body", "")
    created = now()
    uri = f"{API}/Accounts/{account_sid}/Messages/{sid}.json"
    message.update(
        sid=sid,
        account_sid=account_sid,
        to=params["To"],
        **{"from": params.get("From")},
        messaging_service_sid=params.get("MessagingServiceSid"),
        body=body,
        num_segments=str(max(sms.segments(body)[1], 1)),
        num_media=str(len(media)),
        price=None,
        price_unit=None,
        status="queued",
        error_code=None,
        error_message=None,
        date_created=created,
        date_updated=created,
        date_sent=None,
        uri=uri,
        subresource_uris={"media": uri.replace(".json", "/Media.json")},
    )
    return message


def new_call(account_sid: str, params: dict[str, Any]) -> Obj:
    call = example("/Accounts/{AccountSid}/Calls.json", "post", "201", "create")
    sid = new_sid("CA")
    created = now()
    uri = f"{API}/Accounts/{account_sid}/Calls/{sid}.json"
    call.update(
        sid=sid,
        account_sid=account_sid,
        to=params["To"],
        to_formatted=params["To"],
        **{"from": params["From"]},
        from_formatted=params["From"],
        direction="outbound-api",
        status="queued",
        price=None,
        price_unit="USD",
        duration=None,
        start_time=None,
        end_time=None,
        answered_by=None,
        forwarded_from=None,
        phone_number_sid=None,
        queue_time="0",
        date_created=created,
        date_updated=created,
        uri=uri,
        subresource_uris={k: v.replace(call["sid"], sid).replace(call["account_sid"], account_sid)
                          for k, v in call["subresource_uris"].items()},
    )
    return call


def new_number(account_sid: str, params: dict[str, Any], variant: str) -> Obj:
    """A bought number, from the create example of its endpoint (``variant``: "", "/Local"...)."""
    number = example(f"/Accounts/{{AccountSid}}/IncomingPhoneNumbers{variant}.json", "post", "201", "create")
    sid = new_sid("PN")
    created = now()
    phone = params.get("PhoneNumber") or f"+1{params['AreaCode']}5550123"  # Twilio picks one in the area
    number.update(
        sid=sid, account_sid=account_sid, phone_number=phone, friendly_name=params.get("FriendlyName") or phone,
        date_created=created, date_updated=created, status="in-use",
        uri=f"{API}/Accounts/{account_sid}/IncomingPhoneNumbers/{sid}.json",
    )
    if variant:  # the variants' examples carry no type; the endpoint says it
        number["type"] = {"/Local": "local", "/Mobile": "mobile", "/TollFree": "tollfree"}[variant]
    return number


def page(kind: str, items: list[Obj], path: str, page_size: int) -> Obj:
    """A list answer shaped like Twilio's (first page only; the emulator never pages)."""
    uri = f"{path}?PageSize={page_size}&Page=0"
    return {
        "end": max(len(items) - 1, 0),
        "first_page_uri": uri,
        "next_page_uri": None,
        "page": 0,
        "page_size": page_size,
        "previous_page_uri": None,
        kind: items[:page_size],
        "start": 0,
        "uri": uri,
    }
