"""Step 5 of the request path: what a call will cost, and what that figure rests on.

The handler reads the records the policy and the estimate need, makes the adapter's pre-gate
read when it names one (proxy/lookups.py), asks the adapter for the USD figure, and notes on
the row how it was made: the read (``request_summary.price``), the exchange rate
(``request_summary.fx``) and the vendor price (``request_summary.price_source``). Kept apart
from proxy/handler.py so the request path there reads as its steps; nothing here decides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from proxy import lookups
from proxy.keys import KeyRecord
from proxy.upstream import Upstream
from vendors import pricebook
from vendors.base import LookedUp, Lookup, ParsedRequest, RecordedObject, VendorAdapter

Records = Callable[[str, tuple[str, ...]], Awaitable[dict[str, RecordedObject]]]


@dataclass(frozen=True)
class Estimate:
    parsed: ParsedRequest  # as the pre-gate reads describe it (a broadcast's segment, say)
    known: Mapping[str, RecordedObject]  # the key's records of the objects the call names
    predicted: Decimal | None  # None: unpriceable before forwarding
    lookup: Lookup | None
    looked_up: LookedUp | None
    reads: int
    prices_used: Mapping[str, Any] | None

    def summary(self, summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The row's request_summary with how the prediction was made."""
        noted = dict(summary) if summary is not None else None
        if self.lookup is not None or self.predicted is None:
            noted = {**(noted or {}), "price": lookups.note(self.lookup, self.looked_up, self.predicted, self.reads)}
        return lookups.provenance(noted, self.parsed.currency, self.predicted, self.prices_used)


async def estimate(adapter: VendorAdapter, key: KeyRecord, parsed: ParsedRequest, records: Records,
                   upstream: Upstream, bases: Mapping[str | None, str]) -> Estimate:
    known = await records(key.records_key, key.policy.objects_to_look_up(parsed))
    referenced = known.get(parsed.object_id or "")
    lookup = adapter.price_lookup(parsed, referenced) if key.policy.admits_endpoint(parsed) else None
    looked_up, reads = None, 0
    if lookup is not None:  # the answers may say more about the call (a broadcast's segment): judged too
        parsed, looked_up, reads = await lookups.follow(upstream, bases, adapter, key.credential, parsed, lookup)
    pricebook.begin()  # which of the key's own prices or the shipped ones the estimate uses
    predicted = adapter.estimate_usd(parsed, referenced, looked_up)
    used = pricebook.used()
    if predicted is None and parsed.unpriced is None:
        parsed = _explained(adapter, parsed)
    return Estimate(parsed, known, predicted, lookup, looked_up, reads, used)


def _explained(adapter: VendorAdapter, parsed: ParsedRequest) -> ParsedRequest:
    """The call with the adapter's word on why it has no price and what would give it one (a price the
    operator has not set yet), for the cost_unknown refusal; an optional part of the protocol."""
    note: Callable[[ParsedRequest], tuple[str, str] | None] | None = getattr(adapter, "unpriced_note", None)
    said = note(parsed) if note is not None else None
    return dataclasses.replace(parsed, unpriced=said[0], unpriced_fix=said[1]) if said else parsed
