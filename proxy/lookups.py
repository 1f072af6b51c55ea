"""The read that prices a call before the gate (DESIGN.md step 5, guarantee 8).

A refund that names no amount, a capture or a confirm move what the object they act on says;
when the key did not create that object, Tollgate has no record of it. The adapter then names
the read that would tell (``VendorAdapter.price_lookup``: a GET on the vendor's main host, or on
another of its ``hosts`` when ``Lookup.host`` names one: a price list may live on a host of its
own) and the core makes it here, with the key's own upstream credential, before anything is
reserved. The base URL is always the configured one for that host, never one from the request.
Vendors do not bill reads. What was read, its status and how long it took go on the audit row
(``request_summary.price``), so a slow or failed read is visible in SQL.

One answer may lead to another (``VendorAdapter.after_lookup``): a broadcast's send names the
broadcast, whose answer names its segment, whose contacts come a page at a time. The chain is
followed here rather than by widening one Lookup, because each read's path comes from the last
answer; it is bounded (``MAX_READS``), since the agent is waiting and every read is one more
request on the key's own vendor rate limit. A chain cut short leaves the call unpriced, and it is
then refused as ``cost_unknown`` unless its policy opts in: a guess is never the price.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import structlog

from proxy import paths
from proxy.config import Settings
from proxy.errors import RequestRejected, UpstreamFailure
from proxy.upstream import Upstream
from vendors import money
from vendors.base import LookedUp, Lookup, ParsedRequest, UpstreamCredential, VendorAdapter

log = structlog.get_logger("tollgate.lookup")

MAX_READS = 12  # price reads for one call: a broadcast, then up to 11 pages of its segment's contacts


def upstream_bases(settings: Settings, adapter: VendorAdapter) -> dict[str | None, str]:
    """Each host of a vendor (None: its main one) to its base URL, configured or the adapter's."""
    bases: dict[str | None, str] = {None: settings.upstream_for(adapter.name, adapter.default_upstream)}
    for prefix, default in adapter.hosts.items():
        bases[prefix] = settings.upstream_for(f"{adapter.name}_{prefix}", default)
    return bases


async def follow(upstream: Upstream, bases: Mapping[str | None, str], adapter: VendorAdapter,
                 credential: UpstreamCredential, request: ParsedRequest, lookup: Lookup
                 ) -> tuple[ParsedRequest, LookedUp, int]:
    """Read ``lookup`` and every read its answers lead to (at most ``MAX_READS``): the request as the
    answers describe it, the last answer, and how many reads were made."""
    answer = await read(upstream, bases, adapter, credential, lookup)
    reads, elapsed = 1, answer.elapsed_ms
    refined, following = adapter.after_lookup(request, answer)
    while following is not None and answer.status == 200 and reads < MAX_READS:
        answer = await read(upstream, bases, adapter, credential, following)
        reads, elapsed = reads + 1, elapsed + answer.elapsed_ms
        refined, following = adapter.after_lookup(refined, answer)
    if following is not None:  # cut short: what the answers told so far does not price the call
        log.warning("price_lookup_chain_cut", vendor=adapter.name, reads=reads)
    # The row's lookup_ms is what the agent waited for all of them; status and body are the last answer's.
    return refined, dataclasses.replace(answer, elapsed_ms=round(elapsed, 3)), reads


async def read(upstream: Upstream, bases: Mapping[str | None, str], adapter: VendorAdapter,
               credential: UpstreamCredential, lookup: Lookup) -> LookedUp:
    """The answer to ``lookup``, read on the base ``bases`` gives its host (None: the main host);
    status 0 when it could not be asked. The path came from the request (an id the agent sent), so
    it is checked as an agent's path is; a read that fails prices nothing, and the call is then
    refused unless its policy opts in. A host ``bases`` does not hold is such a failure too: the
    read is never sent somewhere else instead."""
    started = time.perf_counter()
    base = bases.get(lookup.host)
    if base is None:
        log.warning("price_lookup_host_unknown", vendor=adapter.name, host=lookup.host)
        return LookedUp(0, b"", _ms_since(started))
    try:
        path = paths.normalise(lookup.path.encode())
        headers = {**lookup.headers, **adapter.upstream_auth_headers(credential)}
        answer = await upstream.send("GET", base + path + ("?" + lookup.query if lookup.query else ""), headers, b"")
    except (RequestRejected, UpstreamFailure) as exc:
        log.warning("price_lookup_failed", vendor=adapter.name, reason=exc.reason)
        return LookedUp(0, b"", _ms_since(started))
    return LookedUp(answer.status, answer.body, _ms_since(started))


def note(lookup: Lookup | None, looked_up: LookedUp | None, predicted: Decimal | None,
         reads: int = 1) -> dict[str, Any]:
    """How the prediction was made, for the audit row's request summary."""
    summary: dict[str, Any] = {"predicted": "unknown" if predicted is None else "known"}
    if lookup is not None:
        summary["lookup"] = lookup.path
        if lookup.host is not None:
            summary["lookup_host"] = lookup.host
        if reads > 1:
            summary["lookup_reads"] = reads
        if looked_up is not None:
            summary.update(lookup_status=looked_up.status, lookup_ms=looked_up.elapsed_ms)
    return summary


def provenance(summary: Mapping[str, Any] | None, currency: str | None, predicted: Decimal | None,
               prices_used: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The summary with what the prediction rests on, so the row can be checked: the exchange rate it
    converted at (``fx``: rate, day, source) and the vendor price it used (``price_source``: the
    account's synced price with its day, a rate set for the key, or the shipped table's)."""
    fx = money.fx_note(currency) if currency and predicted is not None else None
    if fx is None and prices_used is None:
        return dict(summary) if summary is not None else None
    added = {"fx": fx, "price_source": prices_used}
    return {**(summary or {}), **{name: value for name, value in added.items() if value is not None}}


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
