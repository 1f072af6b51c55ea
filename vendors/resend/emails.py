"""What a Resend send says: who every email goes to and from (pure).

Resend bills each To, Cc and Bcc recipient as one email (DESIGN.md), so a send is priced per
recipient and every address is judged by the policy's recipient rules; ``to`` holds at most 50
addresses and a batch at most 100 emails (Resend's limits, refused here with Resend's 422).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vendors import emailaddress
from vendors.base import RequestRejected

MAX_TO = 50
MAX_BATCH = 100
ADDRESS_FIELDS = ("to", "cc", "bcc")
INVALID = 422  # Resend answers invalid input with 422 validation_error


@dataclass(frozen=True)
class Send:
    emails: tuple[dict[str, Any], ...]
    units_per_email: tuple[int, ...]
    recipients: tuple[str, ...]
    senders: tuple[str, ...]
    summary: Mapping[str, Any] = field(default_factory=dict)


def read_send(document: Any, *, batch: bool) -> Send:
    """The emails of ``POST /emails`` (one object) or ``POST /emails/batch`` (an array)."""
    emails = _emails(document, batch=batch)
    per_email = [_addresses(email, index if batch else None) for index, email in enumerate(emails)]
    recipients = tuple(address for _, addresses in per_email for address in addresses)
    senders = tuple(dict.fromkeys(sender for sender, _ in per_email))
    domains = sorted({emailaddress.domain(address) for address in recipients})
    summary = {"emails": len(emails), "recipients": len(recipients), "from": ", ".join(senders),
               "recipient_domains": ", ".join(domains)}
    return Send(tuple(emails), tuple(len(a) for _, a in per_email), recipients, senders, summary)


def address(value: Any, name: str) -> str | None:
    """One optional address field (a broadcast's ``from``, an event's ``email``), bare, or None."""
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(name)
        return emailaddress.bare(value)
    except ValueError:
        reason = "invalid_sender" if name == "from" else "invalid_recipient"
        raise RequestRejected(reason, f"{name!r} must be 'a@b.com' or 'Name <a@b.com>'.", status=INVALID,
                              param=name) from None


def _emails(document: Any, *, batch: bool) -> list[dict[str, Any]]:
    if not batch:
        if not isinstance(document, dict):
            raise RequestRejected("invalid_parameter", "The body must be a JSON object (one email).", status=INVALID)
        return [document]
    if not isinstance(document, list) or not 1 <= len(document) <= MAX_BATCH:
        reason = "batch_too_large" if isinstance(document, list) and document else "invalid_batch"
        raise RequestRejected(reason, f"A batch is a JSON array of 1-{MAX_BATCH} emails.", status=INVALID)
    if not all(isinstance(email, dict) for email in document):
        raise RequestRejected("invalid_parameter", "Every email in a batch must be a JSON object.", status=INVALID)
    return document


def _addresses(email: dict[str, Any], index: int | None) -> tuple[str, list[str]]:
    """(bare From, [bare To..., Cc..., Bcc...]) of one email."""
    where = "" if index is None else f" (email {index})"
    for key in email:
        if key.lower() in ("from", *ADDRESS_FIELDS) and key not in ("from", *ADDRESS_FIELDS):
            raise RequestRejected("ambiguous_parameter", f"Use {key.lower()!r}, not {key!r}{where}.", param=key)
    sender = email.get("from")
    try:
        sender = emailaddress.bare(sender) if isinstance(sender, str) else None
    except ValueError:
        sender = None
    if sender is None:
        raise RequestRejected("invalid_sender", f"'from' must be 'a@b.com' or 'Name <a@b.com>'{where}.",
                              status=INVALID, param="from")
    recipients: list[str] = []
    for name in ADDRESS_FIELDS:
        recipients += _field(email.get(name), name, where, required=name == "to")
    return sender, recipients


def _field(value: Any, field: str, where: str, *, required: bool) -> list[str]:
    if value is None and not required:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or (required and not items) or not all(isinstance(v, str) for v in items):
        raise RequestRejected("invalid_recipient", f"'{field}' must be an address or a non-empty list of them{where}.",
                              status=INVALID, param=field)
    if field == "to" and len(items) > MAX_TO:
        raise RequestRejected("too_many_to_addresses", f"'to' holds at most {MAX_TO} addresses{where}.",
                              status=INVALID, param="to")
    try:
        return [emailaddress.bare(item) for item in items]
    except ValueError as exc:
        raise RequestRejected("invalid_recipient", f"Invalid '{field}'{where}: {exc}.", status=INVALID,
                              param=field) from None


def refused_units(errors: Any, per_email: Any) -> int:
    """Recipients of the emails a permissive batch did not send (``errors: [{"index": i}]``)."""
    if not isinstance(errors, list) or not isinstance(per_email, tuple):
        return 0
    indexes = {e.get("index") for e in errors if isinstance(e, dict)}
    return sum(per_email[i] for i in indexes if type(i) is int and 0 <= i < len(per_email))


