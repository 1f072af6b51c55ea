"""What a Twilio message or call create says about who, where and how much (pure).

Destinations are governed as E.164 numbers: ``To`` with whitespace removed must be
``+`` and 7-15 ASCII digits. ``whatsapp:+1...`` is a WhatsApp destination: the
number is recorded without the prefix and the channel goes in the summary. Other
address kinds (``sip:``, ``client:``, ``messenger:``, national numbers without a
country code) are refused as ``invalid_recipient``: a scope rule on numbers or
countries could not judge them.

Senders: ``From`` as an E.164 number (channel prefix removed), a short code or an
alphanumeric sender ID; and/or ``MessagingServiceSid``. A create names at least one.

The other operations that reach a person (a Verify verification, a caller-ID validation call,
a conference participant...) name their recipient in the parameter their catalogue entry
gives (``to``), and their sender, when they have one, in ``sender`` (``{ServiceSid}``: the
Verify service in the path). A Verify email goes to an address, not a number: the recipient
is then the bare address, with no country.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vendors import emailaddress, sms
from vendors.base import RequestRejected
from vendors.catalogue import Entry
from vendors.twilio.pricing import prices

E164 = re.compile(r"\+[1-9][0-9]{6,14}\Z")
SHORT_CODE = re.compile(r"[0-9]{3,8}\Z")
ALPHANUMERIC_ID = re.compile(r"(?=[0-9 ]*[A-Za-z])[A-Za-z0-9 ]{1,11}\Z")
MESSAGING_SERVICE = re.compile(r"MG[0-9a-fA-F]{32}\Z")
CHANNELS = {"whatsapp": "whatsapp"}  # prefix -> channel; SMS numbers carry no prefix


@dataclass(frozen=True)
class Facts:
    moves_money: bool = False
    recipients: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()
    units: int = 1
    summary: Mapping[str, Any] = field(default_factory=dict)
    # Where a call's instructions come from when Tollgate cannot read them (TwiML URL hosts,
    # "application:AP..."): see vendors.twilio.calls.
    instruction_sources: tuple[str, ...] = ()


def message_facts(params: Mapping[str, Any]) -> Facts:
    channel, number = destination(params.get("To"))
    country = prices().country_of(number)
    sender, service = _senders(params)
    body = _optional_text(params, "Body") or ""
    media = params.get("MediaUrl", ())
    encoding, count = sms.segments(body)
    if channel == "whatsapp":
        units = 1  # billed per message, not per segment
    elif media and prices().mms_rate(country) is not None:
        channel, units = "mms", 1
    else:
        units = max(count, 1)  # outside the US/CA Twilio sends media as SMS with a link
    summary: dict[str, Any] = {
        "to": number, "channel": channel, "country": country, "segments": count, "encoding": encoding,
        "body_length": len(body), "media_count": len(media), "units": units,
    }
    _put(summary, from_=sender, messaging_service_sid=service, content_sid=_optional_text(params, "ContentSid"))
    return Facts(True, (number,), (country,), tuple(s for s in (sender, service) if s), units, summary)


def send_facts(operation: Entry, params: Mapping[str, Any], path_params: Mapping[str, str]) -> Facts:
    """Who an operation other than a message or call create reaches, and from which sender."""
    recipients: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    summary: dict[str, Any] = {}
    if operation.to is not None:
        channel = (_optional_text(params, "Channel") or "").lower()
        value = params.get(operation.to)
        if channel == "email":
            address = _email(value, operation.to)
            recipients, summary = (address,), {"channel": channel, "recipient_domain": emailaddress.domain(address)}
        else:
            _, number = destination(value, operation.to)
            country = prices().country_of(number)
            recipients, countries = (number,), (country,)
            summary = {"to": number, "country": country, **({"channel": channel} if channel else {})}
    sender = None
    if operation.sender is not None:
        name = operation.sender
        sender = path_params.get(name[1:-1]) if name.startswith("{") else _optional_text(params, name)
    return Facts(operation.kind == "sends", recipients, countries, (sender,) if sender else (), 1, summary)


def lookup_facts(number: str, params: Mapping[str, Any]) -> Facts:
    """A Lookup names a phone number in its path: recipient rules judge it as they judge a destination."""
    number = number.replace("%2B", "+", 1) if number.startswith("%2B") else number
    if not E164.match(number):
        raise RequestRejected("invalid_recipient", "Tollgate looks up numbers in E.164 only, such as +14155552345.",
                              param="PhoneNumber")
    country = prices().country_of(number)
    fields = _optional_text(params, "Fields") or ""
    return Facts(False, (number,), (country,), summary={"country": country, "fields": fields})


def destination(value: Any, param: str = "To") -> tuple[str, str]:
    """("sms" | "whatsapp", E.164 number) for a ``To`` value, or RequestRejected."""
    if not isinstance(value, str) or not value.strip():
        raise RequestRejected("invalid_recipient", f"Parameter {param!r} (the destination number) is required.",
                              param=param)
    channel, number = _split_channel(value)
    if channel is None or not E164.match(number):
        raise RequestRejected(
            "invalid_recipient",
            f"{param!r} must be an E.164 number such as +14155552345 (optionally whatsapp:+...), not {value[:40]!r}.",
            param=param,
        )
    return channel, number


def _email(value: Any, param: str) -> str:
    try:
        if not isinstance(value, str):
            raise ValueError(param)
        return emailaddress.bare(value)
    except ValueError:
        raise RequestRejected("invalid_recipient", f"{param!r} must be an email address for the email channel.",
                              param=param) from None


def _split_channel(value: str) -> tuple[str | None, str]:
    compact = "".join(value.split())
    prefix, colon, rest = compact.partition(":")
    if not colon:
        return "sms", compact
    return CHANNELS.get(prefix.lower()), rest


def _senders(params: Mapping[str, Any], *, services: bool = True) -> tuple[str | None, str | None]:
    raw_from = _optional_text(params, "From")
    service = _optional_text(params, "MessagingServiceSid") if services else None
    sender = _sender(raw_from) if raw_from is not None else None
    if service is not None and not MESSAGING_SERVICE.match(service):
        raise RequestRejected("invalid_sender", "'MessagingServiceSid' must be MG followed by 32 hex digits.",
                              param="MessagingServiceSid")
    if sender is None and service is None:
        wanted = "'From' or 'MessagingServiceSid'" if services else "'From'"
        raise RequestRejected("invalid_sender", f"A create must name its sender: {wanted}.", param="From")
    return sender, service


def _sender(value: str) -> str:
    channel, number = _split_channel(value)
    if channel is not None and (E164.match(number) or SHORT_CODE.match(number)):
        return number
    if ALPHANUMERIC_ID.match(value.strip()):
        return value.strip()
    raise RequestRejected(
        "invalid_sender", f"'From' must be an E.164 number, a short code or a sender ID, not {value[:40]!r}.",
        param="From",
    )


def _optional_text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise RequestRejected("invalid_parameter", f"Parameter {name!r} must be given once.", param=name)
    return value


def _put(summary: dict[str, Any], **values: str | None) -> None:
    for key, value in values.items():
        if value is not None:
            summary[key.rstrip("_")] = value
