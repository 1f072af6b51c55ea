"""Voice calls (create, and update of a live call): every leg they dial, and what that costs (pure).

A call reaches more than its ``To``. Its TwiML can dial further numbers, SIP URIs and clients,
or hand the call to a URL whose answer Tollgate never sees. So:

* **Inline TwiML** (``Twiml``) is read strictly (vendors.twilio.twiml): each leg it dials is a
  recipient beside ``To``, held to the policy's recipient rules as ``To`` is, and priced at its
  destination's per-minute rate for the same minutes as ``To``. A SIP URI or a client is no
  number and has no country: its country is "ZZ" (unknown), so a policy that restricts
  countries or numbers refuses it unless it lists "ZZ", and it is priced at the table's
  default voice rate, which is deliberately high. ``<Dial callerId>`` is a sender.
* **TwiML by URL** (``Url``, ``FallbackUrl``, ``<Redirect>`` or an action/url attribute inside
  inline TwiML) and ``ApplicationSid`` (an Application's own URL) are ``instruction_sources``:
  their hosts, or ``application:AP...``. The core refuses them when the policy restricts
  recipients, unless ``recipients.twiml_urls`` names the host. Priced as one more leg at the
  highest voice rate Tollgate knows for ``TimeLimit``: sequential legs of one call cannot
  outlast the call, and of parallel ``<Dial>`` legs only the one that answers is billed. Twilio's
  API description documents no default for ``TimeLimit`` ("constraints depend on account and
  configuration"), so without one the cost is unknown (``cost_unknown`` unless ``priced_after``).
* Minutes: ``TimeLimit`` (it caps the call) rounded up, else the price table's estimate.
* ``Twiml`` with ``Url`` or ``ApplicationSid`` is refused (``ambiguous_parameter``): Twilio
  ignores one of them, and Tollgate would judge the one it ignores.

An update (``calls(CA...).update(...)``) is priced and scoped by the legs its new instructions
add; one that only ends the call or changes callbacks dials nobody and costs 0. Its legs' sender is
``<Dial callerId>``: under a ``senders`` rule, an update that dials without one names no sender and is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from vendors import money
from vendors.base import ParsedRequest, PriceScope, RequestRejected
from vendors.twilio import twiml
from vendors.twilio.messages import Facts, _optional_text, _put, _sender, _senders, destination
from vendors.twilio.pricing import UNKNOWN_COUNTRY, highest_voice_usd, prices, voice_usd

MAX_CALL_SECONDS = 14_400  # the largest TimeLimit Tollgate prices (4 hours)
UPDATE_RULE = "voice_update"  # the catalogue's price rule of Calls/{Sid}.json updates
URL_SOURCES = ("Url", "FallbackUrl")  # parameters whose URL answers with the call's TwiML


def create_facts(params: Mapping[str, Any]) -> Facts:
    channel, number = destination(params.get("To"))
    if channel != "sms":
        raise RequestRejected("invalid_recipient", "Calls go to E.164 phone numbers only.", param="To")
    sender, _ = _senders(params, services=False)
    legs, sources = _instructions(params)
    return _facts(params, [number, *legs.dialled], sources, [sender, *legs.caller_ids], to=number)


def update_facts(params: Mapping[str, Any]) -> Facts:
    legs, sources = _instructions(params)
    return _facts(params, legs.dialled, sources, legs.caller_ids, to=None)


def estimate_usd(request: ParsedRequest) -> Decimal | None:
    """Each leg at its country's rate, plus one unseen leg at the highest rate per instruction URL."""
    scope = request.price_scope
    minutes = max(request.units, 1)
    total = sum((voice_usd(scope, country) for country in request.recipient_countries), Decimal(0)) * minutes
    if request.instruction_sources:
        if not request.summary.get("time_limited"):
            return None  # what the URL's TwiML dials, for how long, is unseen: no bound without TimeLimit
        total += highest_voice_usd(scope) * minutes
    return total.quantize(money.MICRO)


def highest_rate() -> Decimal:
    return highest_voice_usd(PriceScope())


def _facts(params: Mapping[str, Any], recipients: Sequence[str], sources: Sequence[str],
           senders: Sequence[str | None], *, to: str | None) -> Facts:
    table = prices()
    countries = tuple(table.country_of(r) if r.startswith("+") else UNKNOWN_COUNTRY for r in recipients)
    minutes = _minutes(params.get("TimeLimit"))
    summary: dict[str, Any] = {"channel": "voice", "minutes": minutes, "units": minutes, "legs": len(recipients),
                               "time_limited": params.get("TimeLimit") is not None}
    if to is not None:
        summary["country"] = countries[0]
    if sources:
        summary["instruction_sources"] = list(dict.fromkeys(sources))
    _put(summary, to=to, from_=senders[0] if to is not None else None)
    moves = bool(recipients or sources)
    return Facts(moves, tuple(recipients), countries, tuple(dict.fromkeys(s for s in senders if s)), minutes,
                 summary, tuple(dict.fromkeys(sources)))


def _instructions(params: Mapping[str, Any]) -> tuple[twiml.Legs, list[str]]:
    """The legs inline TwiML dials, and the sources of TwiML Tollgate cannot read."""
    document = _optional_text(params, "Twiml")
    application = _optional_text(params, "ApplicationSid")
    given = [name for name, value in (("Twiml", document), ("Url", params.get("Url")),
                                      ("ApplicationSid", application)) if value is not None]
    if len(given) > 1:
        raise RequestRejected("ambiguous_parameter", f"{' and '.join(given)} both say what the call does; Twilio "
                              "follows one and ignores the other, so Tollgate refuses the pair.", param=given[1])
    legs = twiml.read(document) if document is not None else twiml.Legs()
    legs.caller_ids[:] = [_sender(c) for c in legs.caller_ids]
    sources = [_host(url, "Twiml") for url in legs.urls]
    for name in URL_SOURCES:
        url = _optional_text(params, name)
        if url is not None:
            sources.append(_host(url, name))
    if application is not None:
        sources.append(f"application:{application[:34]}")
    return legs, sources


def _host(url: str, param: str) -> str:
    """The host of an absolute http(s) URL, lower case: what ``recipients.twiml_urls`` names."""
    try:
        parts = urlsplit(url.strip())
        scheme, host = parts.scheme.lower(), parts.hostname
    except ValueError:  # a malformed port or bracketed host
        scheme, host = "", None
    if scheme not in ("http", "https") or not host:
        raise RequestRejected("invalid_parameter", f"{param!r} names TwiML at {url[:60]!r}, not an absolute http(s) "
                              "URL.", param=param)
    return host.lower().rstrip(".")


def _minutes(value: Any) -> int:
    """Minutes to price each leg at: from TimeLimit when given, else the table's estimate."""
    if value is None:
        return prices().voice_minutes
    digits = isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 6
    if not digits or not 0 < int(value) <= MAX_CALL_SECONDS:
        raise RequestRejected("invalid_parameter", f"'TimeLimit' must be 1-{MAX_CALL_SECONDS} seconds.",
                              param="TimeLimit")
    return math.ceil(int(value) / 60)
