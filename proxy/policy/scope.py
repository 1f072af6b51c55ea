"""Scope rules: which customers and records a key may touch, and whom messages may reach.

Pure functions over a ParsedRequest and the records the key created; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from proxy.errors import Denial
from vendors.base import ParsedRequest, RecordedObject


@dataclass(frozen=True)
class Recipients:
    """Any configured rule admits a recipient; with no rules configured, everyone is admitted."""

    countries: frozenset[str] = frozenset()
    numbers: tuple[str, ...] = ()  # E.164, a trailing * matches any rest
    domains: tuple[str, ...] = ()  # a leading *. matches any subdomain
    addresses: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()  # lists a broadcast may mail, by id
    # Hosts whose answers may instruct a call (a leading *. matches any subdomain): what such a
    # script reaches is unseen, so under countries or numbers rules only named hosts may.
    twiml_urls: tuple[str, ...] = ()

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Recipients:
        return cls(
            countries=frozenset(doc.get("countries", ())),
            numbers=tuple(doc.get("numbers", ())),
            domains=tuple(d.lower() for d in doc.get("domains", ())),
            addresses=frozenset(a.lower() for a in doc.get("addresses", ())),
            segments=frozenset(doc.get("segments", ())),
            twiml_urls=tuple(h.lower() for h in doc.get("twiml_urls", ())),
        )

    @property
    def configured(self) -> bool:
        return bool(self.countries or self.numbers or self.domains or self.addresses or self.segments)

    def admits(self, recipient: str, country: str | None) -> bool:
        if country is not None and country in self.countries:
            return True
        if any(_number_matches(pattern, recipient) for pattern in self.numbers):
            return True
        address = recipient.lower()
        if address in self.addresses:
            return True
        domain = address.rpartition("@")[2] if "@" in address else None
        return domain is not None and any(_domain_matches(pattern, domain) for pattern in self.domains)


def _number_matches(pattern: str, number: str) -> bool:
    return number.startswith(pattern[:-1]) if pattern.endswith("*") else number == pattern


def _domain_matches(pattern: str, domain: str) -> bool:
    if pattern.startswith("*."):
        return domain.endswith(pattern[1:])
    return domain == pattern


def check_record_scope(
    request: ParsedRequest,
    customers: frozenset[str] | None,
    created_through_key: bool,
    known: Mapping[str, RecordedObject],
) -> Denial | None:
    """Customer list and "only records created through this key"; either rule admits."""
    if customers is None and not created_through_key:
        return None
    named = tuple(dict.fromkeys(c for c in (request.customer_id, *request.customers) if c))
    for customer in named:
        admitted = (customers is not None and customer in customers) or (created_through_key and customer in known)
        if not admitted:
            return Denial("customer_not_allowed", f"Customer {customer} is outside this key's customer scope.")
    identified = False  # by a record of the key's: the customer is the record's
    for target in dict.fromkeys((request.object_id, *request.objects)):  # every object the call names
        if target is None or target in named:
            continue
        record = known.get(target)
        if record is None and created_through_key:
            return Denial("object_not_created_through_key", f"{target} was not created through this key.")
        if (record is not None and request.customer_id is None and not created_through_key
                and (record.customer_id is None or record.customer_id not in (customers or ()))):
            return Denial("customer_not_allowed", f"{target} belongs to a customer outside this key's scope.")
        identified = identified or record is not None
    if request.customer_id is None and request.moves_money and not identified:
        return Denial("customer_not_identified",
                      "This key is limited to certain customers, and this call does not name one.")
    return None


def check_created_objects(request: ParsedRequest, known: Mapping[str, RecordedObject]) -> Denial | None:
    """objects.created_through_key: each object the call names of a kind the key records
    (``request.objects``) must be one the key created (``known``)."""
    for target in request.objects:
        if target not in known:
            return Denial("object_not_created_through_key", f"{target} was not created through this key.")
    return None


def customers_to_check(revealed: Iterable[str], customers: frozenset[str] | None,
                       created_through_key: bool) -> tuple[str, ...]:
    """The customers an answer names that the customer list does not admit (none without a scope)."""
    if customers is None and not created_through_key:
        return ()
    return tuple(dict.fromkeys(c for c in revealed if customers is None or c not in customers))


def check_answer_scope(unlisted: tuple[str, ...], created_through_key: bool,
                       known: Mapping[str, RecordedObject]) -> Denial | None:
    """``unlisted``: from customers_to_check; ``known``: those of them created through the key."""
    outside = [c for c in unlisted if not (created_through_key and c in known)]
    if not outside:
        return None
    more = f" (and {len(outside) - 1} more)" if len(outside) > 1 else ""
    return Denial("answer_withheld", f"The answer names customer {outside[0]}{more}, outside this key's customer "
                                     "scope, so Tollgate withheld it. Filter the call to the key's customers.")


def check_messaging_scope(
    request: ParsedRequest, recipients: Recipients, senders: frozenset[str] | None, max_recipients: int | None
) -> Denial | None:
    if max_recipients is not None and (too_many := _too_many(request, max_recipients)):
        return too_many
    if recipients.configured and (outside := _segment_outside(request, recipients)):
        return outside
    if (recipients.countries or recipients.numbers) and (unseen := _source_outside(request, recipients)):
        return unseen
    if recipients.configured:
        countries = request.recipient_countries or (None,) * len(request.recipients)
        for recipient, country in zip(request.recipients, countries, strict=True):
            if not recipients.admits(recipient, country):
                where = f" ({country})" if country else ""
                return Denial("recipient_not_allowed", f"Recipient {recipient}{where} is outside this key's scope.")
    if senders is not None and (request.moves_money or request.senders):  # reads send nothing: no sender
        if not request.senders:
            return Denial("sender_not_allowed", "This key is limited to certain senders, and this call names none.")
        allowed = {_sender_key(s) for s in senders}
        for sender in request.senders:
            if _sender_key(sender) not in allowed:
                return Denial("sender_not_allowed", f"Sender {sender} is not one of this key's allowed senders.")
    return None


def _too_many(request: ParsedRequest, most: int) -> Denial | None:
    """Every address the call names, plus every contact of the lists it mails; a list of unknown size
    cannot be shown to be within the limit."""
    if request.segments and request.audience_size is None:
        return Denial("too_many_recipients", f"This call mails segment {request.segments[0]}, whose size Tollgate "
                                             f"could not read; this key allows at most {most} recipients.")
    count = len(request.recipients) + (request.audience_size or 0)
    if count > most:
        return Denial("too_many_recipients", f"This call has {count} recipients; this key allows at most {most}.")
    return None


def _segment_outside(request: ParsedRequest, recipients: Recipients) -> Denial | None:
    """A list is admitted by its id only: its contacts change after the policy is written."""
    for segment in request.segments:
        if segment not in recipients.segments:
            return Denial("recipient_not_allowed", f"Segment {segment} is not one of this key's recipients.segments.")
    return None


def _source_outside(request: ParsedRequest, recipients: Recipients) -> Denial | None:
    """Instructions fetched from elsewhere can reach anyone: a restricted key follows only named hosts."""
    for source in request.instruction_sources:
        if not any(_domain_matches(pattern, source) for pattern in recipients.twiml_urls):
            return Denial("recipient_not_allowed", f"This call takes its instructions from {source}, which Tollgate "
                          "cannot see; this key restricts recipients, and recipients.twiml_urls does not name it.")
    return None


def _sender_key(sender: str) -> str:
    """Email addresses compare without case (as mail does); numbers and service SIDs exactly."""
    return sender.lower() if "@" in sender else sender
