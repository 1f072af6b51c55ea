"""Emulators of Twilio's product hosts: lookups, verify, messaging and pricing (<product>.twilio.com).

twilio-python sends Lookups, Verify and Messaging-service calls to these hosts, not to
api.twilio.com; Tollgate forwards them there (``/twilio/<product>/...``), so the tests need one
emulator per host, each an ASGI app of its own on its own port, like the real hosts::

    app = create_app("lookups", "AC" + "0" * 32, "auth_token")

Bodies are deep copies of the examples in Twilio's OpenAPI documents
(``emulators/fixtures/twilio_lookups_v2.json``, ``twilio_verify_v2.json``,
``twilio_messaging_v1.json``, ``twilio_pricing_v1.json``), with what the request decides written over them:

* lookups: ``GET /v2/PhoneNumbers/{PhoneNumber}`` (the ``fetch`` example; each data package
  named in ``Fields`` filled from the example that has it; ``fetchInvalid`` for a number that
  is not E.164); its ``Overrides/{Field}`` (GET, POST, PUT: the spec's examples; DELETE: 204);
* verify: ``POST /v2/Services/{ServiceSid}/Verifications`` (201, ``createVerification`` or
  ``createVerificationEmail``), ``GET .../Verifications/{Sid}``, ``POST .../VerificationCheck``
  (``approved`` when Code is ``123456``, as a test code);
* messaging: ``POST /v1/Services`` (201), ``GET /v1/Services``, ``GET /v1/Services/{Sid}``;
* pricing (Pricing v1 and v2, ``twilio_pricing_v2.json`` too): ``GET /v1/PhoneNumbers/Countries/{IsoCountry}``
  (the ``fetch`` example, prices written over it from ``NUMBER_PRICES``: US as the spec's example
  has it, Canada, and Great Britain in GBP with every type), ``GET /v1/Messaging/Countries/{IsoCountry}``
  (outbound SMS per carrier and number type from ``MESSAGING_PRICES``), ``GET /v2/Voice/Countries/{IsoCountry}``
  (outbound voice per destination prefix from ``VOICE_PRICES``); 404 20404 for any other country.
  Each list (``GET /v1/Messaging/Countries``, ``/v2/Voice/Countries``, ``/v1/PhoneNumbers/Countries``)
  is the ``readFull`` example with the table's countries, paged by ``PageSize`` and ``Page``;
  and ``GET /v2/Voice/Numbers/{DestinationNumber}`` (its ``fetch`` example, for the number asked about).

Authentication, ``received`` and ``fail_next`` as in twilio_api: Basic auth with the account's
SID and auth token (a vault key there would be refused with 401 20003, and is searched for by
tests/test_e2e_twilio_hosts.py in everything every emulator received).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from ._received import record
from ._twilio_store import Obj, TwilioApiError, new_sid
from .twilio_api import _authenticated_account, _params

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SPECS = {"lookups": "twilio_lookups_v2.json", "verify": "twilio_verify_v2.json",
         "messaging": "twilio_messaging_v1.json", "pricing": "twilio_pricing_v1.json"}
_MORE_SPECS = {"pricing v2": "twilio_pricing_v2.json"}  # the pricing host serves Pricing v1 and v2
_E164 = re.compile(r"\+[1-9][0-9]{6,14}\Z")
TEST_CODE = "123456"
Handler = Callable[[Starlette, str, dict[str, Any], dict[str, str]], tuple[int, Obj]]


@functools.cache
def _spec(product: str) -> Obj:
    spec: Obj = json.loads((FIXTURES / {**SPECS, **_MORE_SPECS}[product]).read_text(encoding="utf-8"))
    return spec


def example(product: str, path: str, method: str, status: str, name: str) -> Obj:
    operation = _spec(product)["paths"][path][method]
    value: Obj = operation["responses"][status]["content"]["application/json"]["examples"][name]["value"]
    return copy.deepcopy(value)


def _examples(product: str, path: str, method: str, status: str) -> list[Obj]:
    operation = _spec(product)["paths"][path][method]
    return [e["value"] for e in operation["responses"][status]["content"]["application/json"]["examples"].values()]


# -- lookups ------------------------------------------------------------------------------


def _lookup(app: Starlette, account: str, params: dict[str, Any], ids: dict[str, str]) -> tuple[int, Obj]:
    number, path = ids["number"], "/v2/PhoneNumbers/{PhoneNumber}"
    if not _E164.match(number):
        answer = example("lookups", path, "get", "200", "fetchInvalid")
        answer.update(phone_number=number, url=f"https://lookups.twilio.com/v2/PhoneNumbers/{number}")
        return 200, answer
    answer = example("lookups", path, "get", "200", "fetch")
    country = "US" if number.startswith("+1") else "GB" if number.startswith("+44") else None
    answer.update(phone_number=number, country_code=country, url=f"https://lookups.twilio.com/v2/PhoneNumbers/{number}")
    for field in filter(None, str(params.get("Fields", "")).split(",")):
        if field not in answer:
            raise TwilioApiError(400, 60200, f"Invalid field: {field}")
        answer[field] = copy.deepcopy(next((e[field] for e in _examples("lookups", path, "get", "200") if e.get(field)),
                                           None))
    return 200, answer


_OVERRIDES = "/v2/PhoneNumbers/{PhoneNumber}/Overrides/{Field}"
_OVERRIDE_EXAMPLES = {"GET": ("200", "fetchOverrides"), "POST": ("201", "createOverrides"),
                      "PUT": ("200", "updateOverrides")}


def _override(app: Starlette, account: str, params: dict[str, Any], ids: dict[str, str]) -> tuple[int, Obj]:
    """An override of a data package's answer for a number: the spec's example per method (DELETE: 204)."""
    method = ids.pop("method")
    if method == "DELETE":
        return 204, {}
    status, name = _OVERRIDE_EXAMPLES[method]
    answer = example("lookups", _OVERRIDES, method.lower(), status, name)
    answer.update(phone_number=ids["number"], field=ids["field"], account_sid=account)
    return int(status), answer


# -- verify -------------------------------------------------------------------------------

_VERIFY = "/v2/Services/{ServiceSid}/Verifications"


def _verification(app: Starlette, account: str, params: dict[str, Any], ids: dict[str, str]) -> tuple[int, Obj]:
    channel, to = params.get("Channel"), params.get("To")
    if not to:
        raise TwilioApiError(400, 60200, "Invalid parameter: To")
    if channel not in ("sms", "call", "email", "whatsapp", "sna", "auto"):
        raise TwilioApiError(400, 60200, "Invalid parameter: Channel")
    answer = example("verify", _VERIFY, "post", "201",
                     "createVerificationEmail" if channel == "email" else "createVerification")
    sid = new_sid("VE")
    answer.update(sid=sid, service_sid=ids["service"], account_sid=account, to=to, channel=channel,
                  url=f"https://verify.twilio.com/v2/Services/{ids['service']}/Verifications/{sid}")
    answer["send_code_attempts"][0].update(channel=channel.upper(), attempt_sid=new_sid("VL"))
    app.state.verifications[sid] = answer
    return 201, answer


def _fetch_verification(app: Starlette, account: str, params: dict[str, Any], ids: dict[str, str]) -> tuple[int, Obj]:
    found = app.state.verifications.get(ids["sid"])
    if found is None or found["service_sid"] != ids["service"]:
        raise TwilioApiError(404, 20404, "The requested resource was not found")
    return 200, found


def _check(app: Starlette, account: str, params: dict[str, Any], ids: dict[str, str]) -> tuple[int, Obj]:
    pending = [v for v in app.state.verifications.values()
               if v["service_sid"] == ids["service"] and v["to"] == params.get("To")]
    if not pending:
        raise TwilioApiError(404, 20404, "The requested resource was not found")
    verification = pending[-1]
    if params.get("Code") == TEST_CODE:
        verification.update(status="approved", valid=True)
    answer = example("verify", "/v2/Services/{ServiceSid}/VerificationCheck", "post", "200", "verificationChecks200")
    answer.update({k: verification[k] for k in ("sid", "service_sid", "account_sid", "to", "channel", "status",
                                                 "valid")})
    return 200, answer


# -- messaging ----------------------------------------------------------------------------


def _create_service(app: Starlette, account: str, params: dict[str, Any], ids: dict[str, str]) -> tuple[int, Obj]:
    if not params.get("FriendlyName"):
        raise TwilioApiError(400, 21602, "FriendlyName is required")
    service = example("messaging", "/v1/Services", "post", "201", "create")
    sid = new_sid("MG")
    service.update(sid=sid, account_sid=account, friendly_name=params["FriendlyName"],
                   url=f"https://messaging.twilio.com/v1/Services/{sid}")
    app.state.services[sid] = service
    return 201, service


def _list_services(app: Starlette, account: str, params: dict[str, Any], ids: dict[str, str]) -> tuple[int, Obj]:
    answer = example("messaging", "/v1/Services", "get", "200", "readFull")
    answer["services"] = list(app.state.services.values())
    return 200, answer


def _fetch_service(app: Starlette, account: str, params: dict[str, Any], ids: dict[str, str]) -> tuple[int, Obj]:
    found = app.state.services.get(ids["sid"])
    if found is None:
        raise TwilioApiError(404, 20404, "The requested resource was not found")
    return 200, found


# -- pricing ------------------------------------------------------------------------------

# Monthly prices by country: (price unit, {number_type: (base_price, current_price)}).
NUMBER_PRICES: dict[str, tuple[str, str, dict[str, tuple[str, str]]]] = {
    "US": ("United States", "USD", {"local": ("1.00", "1.00"), "toll free": ("2.00", "2.00")}),
    "CA": ("Canada", "USD", {"local": ("1.00", "1.00"), "toll free": ("2.00", "2.00")}),
    "GB": ("United Kingdom", "GBP", {"local": ("1.00", "1.00"), "mobile": ("1.00", "0.80"),
                                     "national": ("1.00", "1.00"), "toll free": ("2.00", "2.00")}),
}


# Outbound SMS by country: (name, price unit, {carrier: {number_type: current_price}}). The US's
# dearest is a carrier's short code price; Canada has one carrier; Great Britain two.
MESSAGING_PRICES: dict[str, tuple[str, str, dict[str, dict[str, str]]]] = {
    "US": ("United States", "USD", {"att": {"local": "0.0079", "toll free": "0.0079", "shortcode": "0.0091"},
                                    "verizon": {"local": "0.0083", "toll free": "0.0083"}}),
    "CA": ("Canada", "USD", {"rogers": {"local": "0.0075", "toll free": "0.0075"}}),
    "GB": ("United Kingdom", "USD", {"ee": {"mobile": "0.0400", "local": "0.0400"},
                                     "vodafone": {"mobile": "0.0463", "local": "0.0463"}}),
}
# Outbound voice by country: (name, price unit, [(destination prefixes, friendly name, current_price)]).
VOICE_PRICES: dict[str, tuple[str, str, list[tuple[list[str], str, str]]]] = {
    "US": ("United States", "USD", [(["1907"], "United States - Alaska", "0.090"),
                                    (["1808"], "United States - Hawaii", "0.013"),
                                    (["1"], "United States & Canada", "0.013")]),
    "GB": ("United Kingdom", "USD", [(["44"], "United Kingdom", "0.0150"),
                                     (["447"], "United Kingdom - Mobile", "0.0300")]),
}
_PRICING = {"messaging": "/v1/Messaging/Countries", "voice": "/v2/Voice/Countries",
            "numbers": "/v1/PhoneNumbers/Countries"}


def _messaging_prices(app: Starlette, account: str, params: dict[str, Any], ids: dict[str, str]) -> tuple[int, Obj]:
    iso = ids["iso"].upper()
    found = app.state.messaging_prices.get(iso)
    if found is None:
        raise TwilioApiError(404, 20404, "The requested resource was not found")
    name, unit, carriers = found
    answer = example("pricing", "/v1/Messaging/Countries/{IsoCountry}", "get", "200", "fetch")
    template = answer["outbound_sms_prices"][0]
    answer.update(country=name, iso_country=iso, price_unit=unit,
                  url=f"https://pricing.twilio.com/v1/Messaging/Countries/{iso}",
                  outbound_sms_prices=[{**template, "carrier": carrier, "prices": [
                      {"number_type": kind, "base_price": price, "current_price": price}
                      for kind, price in by_type.items()]} for carrier, by_type in carriers.items()])
    return 200, answer


def _voice_prices(app: Starlette, account: str, params: dict[str, Any], ids: dict[str, str]) -> tuple[int, Obj]:
    iso = ids["iso"].upper()
    found = app.state.voice_prices.get(iso)
    if found is None:
        raise TwilioApiError(404, 20404, "The requested resource was not found")
    name, unit, groups = found
    answer = example("pricing v2", "/v2/Voice/Countries/{IsoCountry}", "get", "200", "fetch")
    answer.update(country=name, iso_country=iso, price_unit=unit,
                  url=f"https://pricing.twilio.com/v2/Voice/Countries/{iso}",
                  outbound_prefix_prices=[
                      {"base_price": price, "current_price": price, "destination_prefixes": prefixes,
                       "friendly_name": f"Programmable Outbound Minute - {friendly}", "origination_prefixes": ["ALL"]}
                      for prefixes, friendly, price in groups])
    return 200, answer


def _country_list(feed: str) -> Handler:
    """A list of the countries one price list has, paged as Twilio pages (PageSize, Page, meta)."""
    def answer(app: Starlette, account: str, params: dict[str, Any], ids: dict[str, str]) -> tuple[int, Obj]:
        table = {"messaging": app.state.messaging_prices, "voice": app.state.voice_prices,
                 "numbers": app.state.number_prices}[feed]
        size, page = int(params.get("PageSize", 50)), int(params.get("Page", 0))
        codes = sorted(table)[page * size:(page + 1) * size]
        product, path = ("pricing v2" if feed == "voice" else "pricing"), _PRICING[feed]
        listed = example(product, path, "get", "200", "readFull")
        base = f"https://pricing.twilio.com{path}"
        more = (page + 1) * size < len(table)
        listed["countries"] = [{"country": table[code][0], "iso_country": code, "url": f"{base}/{code}"}
                               for code in codes]
        listed["meta"].update(page=page, page_size=size, url=f"{base}?PageSize={size}&Page={page}",
                              first_page_url=f"{base}?PageSize={size}&Page=0",
                              next_page_url=f"{base}?PageSize={size}&Page={page + 1}" if more else None)
        return 200, listed
    return answer


def _number_prices(app: Starlette, account: str, params: dict[str, Any], ids: dict[str, str]) -> tuple[int, Obj]:
    found = app.state.number_prices.get(ids["iso"].upper())
    if found is None:
        raise TwilioApiError(404, 20404, "The requested resource was not found")
    name, unit, by_type = found
    answer = example("pricing", "/v1/PhoneNumbers/Countries/{IsoCountry}", "get", "200", "fetch")
    answer.update(country=name, iso_country=ids["iso"].upper(), price_unit=unit,
                  url=f"https://pricing.twilio.com/v1/PhoneNumbers/Countries/{ids['iso'].upper()}",
                  phone_number_prices=[{"number_type": kind, "base_price": base, "current_price": current}
                                       for kind, (base, current) in by_type.items()])
    return 200, answer


def _voice_number_price(app: Starlette, account: str, params: dict[str, Any], ids: dict[str, str]) -> tuple[int, Obj]:
    """Pricing v2's voice price to one number: the spec's example, for the number asked about."""
    answer = example("pricing v2", "/v2/Voice/Numbers/{DestinationNumber}", "get", "200", "fetch")
    answer.update(destination_number=ids["number"], origination_number=params.get("OriginationNumber"),
                  url=f"https://pricing.twilio.com/v2/Voice/Numbers/{ids['number']}")
    return 200, answer


_SID = "[A-Z]{2}[0-9a-f]{32}"
_SERVICE = r"/v2/Services/(?P<service>VA[0-9a-f]{32})"
ROUTES: dict[str, tuple[tuple[str, re.Pattern[str], Handler], ...]] = {
    product: tuple((method, re.compile(pattern + r"\Z"), handler) for method, pattern, handler in table)
    for product, table in {
        "lookups": (("GET", r"/v2/PhoneNumbers/(?P<number>[^/]+)", _lookup),
                    *((method, r"/v2/PhoneNumbers/(?P<number>[^/]+)/Overrides/(?P<field>[a-z_]+)", _override)
                      for method in ("GET", "POST", "PUT", "DELETE"))),
        "verify": (
            ("POST", _SERVICE + "/Verifications", _verification),
            ("GET", _SERVICE + rf"/Verifications/(?P<sid>{_SID})", _fetch_verification),
            ("POST", _SERVICE + "/VerificationCheck", _check),
        ),
        "messaging": (
            ("POST", r"/v1/Services", _create_service),
            ("GET", r"/v1/Services", _list_services),
            ("GET", r"/v1/Services/(?P<sid>MG[0-9a-f]{32})", _fetch_service),
        ),
        "pricing": (
            ("GET", r"/v1/PhoneNumbers/Countries/(?P<iso>[A-Za-z]{2})", _number_prices),
            ("GET", r"/v1/Messaging/Countries/(?P<iso>[A-Za-z]{2})", _messaging_prices),
            ("GET", r"/v2/Voice/Countries/(?P<iso>[A-Za-z]{2})", _voice_prices),
            ("GET", r"/v2/Voice/Numbers/(?P<number>[^/]+)", _voice_number_price),
            *(("GET", re.escape(path), _country_list(feed)) for feed, path in _PRICING.items()),
        ),
    }.items()
}


async def _endpoint(request: Request) -> Response:
    app, received = request.app, await record(request)
    status, body = _answer(app, received)
    headers = {"Twilio-Request-Id": "RQ" + secrets.token_hex(16)}
    if status == 204:  # a delete: no content
        return Response(None, status, headers)
    return Response(json.dumps(body), status, headers, media_type="application/json; charset=utf-8")


def _answer(app: Starlette, received: Any) -> tuple[int, Obj]:
    if app.state.fail_next is not None:
        (status, body), app.state.fail_next = app.state.fail_next, None
        return status, body
    account = _authenticated_account(app, received.headers.get("authorization"))
    if account is None:
        return 401, TwilioApiError(401, 20003, "Authenticate").body()
    try:
        json_body = received.headers.get("content-type", "").startswith("application/json")  # Lookups overrides
        for method, pattern, handler in ROUTES[app.state.product]:
            found = pattern.match(received.path)
            if found and method == received.method:
                params = json.loads(received.body or b"{}") if json_body else _params(received)
                return handler(app, account, params, {**found.groupdict(), "method": method})
        raise TwilioApiError(404, 20404, f"The requested resource {received.path} was not found")
    except TwilioApiError as exc:
        return exc.status, exc.body()


def create_app(product: str, account_sid: str = "AC" + "0" * 32, auth_token: str = "emulator_auth_token") -> Starlette:
    """A fresh emulator of one product host (``lookups``, ``verify``, ``messaging`` or ``pricing``) for one account."""
    app = Starlette(routes=[StarletteRoute("/{path:path}", _endpoint, methods=["GET", "POST", "DELETE", "PUT"])])
    app.state.product = product
    app.state.account_sid, app.state.auth_token, app.state.api_keys = account_sid, auth_token, {}
    app.state.received, app.state.fail_next = [], None
    app.state.verifications, app.state.services = {}, {}
    app.state.number_prices = copy.deepcopy(NUMBER_PRICES)  # a test may change a price
    app.state.messaging_prices, app.state.voice_prices = copy.deepcopy(MESSAGING_PRICES), copy.deepcopy(VOICE_PRICES)
    return app
