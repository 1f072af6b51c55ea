"""A child key's policy never admits what its parent's would not (issue 18, item 1).

``narrow`` (proxy/policy/narrow.py) is pure, so the promise is checked directly: over random
pairs of a parent policy and a narrowing request, and random calls, whatever the child's
effective policy admits the parent's admits too (without approval where the child needs none),
and the child's gate caps hold every cap of its parent, owned by the parent. The records a
call is judged against are the tree's (every key of a tree looks them up under its root).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy import lineage
from proxy.errors import InvalidInput
from proxy.policy import narrow, rules
from vendors.base import ParsedRequest, RecordedObject
from vendors.endpoints import generic_template

SEGMENTS = ["v1", "charges", "refunds", "search", "ch_1Ab", "ch_2Cd", "cus_9Zz", "*"]
CUSTOMERS = ["cus_A1", "cus_B2", "cus_C3"]
OBJECTS = ["ch_1Ab", "ch_2Cd", "ch_3Ef"]
COUNTRIES = ["US", "GB", "FR"]
NUMBERS = ["+1555*", "+15550001", "+44*", "+4420001"]
DOMAINS = ["example.com", "*.example.com", "shop.example.com", "other.org"]
ADDRESSES = ["a@example.com", "b@shop.example.com", "c@other.org"]
SENDERS = ["+15550009", "ops@example.com", "MG0123"]
WINDOWS = ["minute", "hour", "day", "month", "total", "run"]


def _subset(items: list[str], min_size: int = 0) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(items), min_size=min_size, unique=True, max_size=len(items))


patterns = st.builds(lambda m, segs: f"{m} /{'/'.join(segs)}", st.sampled_from(["GET", "POST"]),
                     st.lists(st.sampled_from(SEGMENTS), min_size=2, max_size=3))
usd = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=2).map(str)
caps = st.lists(st.builds(lambda w, u: {"window": w, "usd": u}, st.sampled_from(WINDOWS), usd), max_size=3)


@st.composite
def documents(draw: Any, vendor: str, partial: bool = False) -> dict[str, Any]:
    """A policy document (``partial``: a narrowing request, whose every field may be left out)."""
    doc: dict[str, Any] = {} if partial else {"vendor": vendor}
    maybe = (lambda: draw(st.booleans())) if partial else (lambda: True)
    if not partial or draw(st.booleans()):
        endpoints: dict[str, Any] = {"allow": draw(_subset_patterns())}
        if draw(st.booleans()):
            endpoints["require_approval"] = draw(_subset_patterns())
        if draw(st.booleans()):
            endpoints["priced_after"] = draw(_subset_patterns())
        doc["endpoints"] = endpoints
    if maybe() and draw(st.booleans()):
        doc["mode"] = draw(st.sampled_from(["enforce", "shadow"]))
    if vendor == "stripe" and draw(st.booleans()):
        customers: dict[str, Any] = {}
        if draw(st.booleans()):
            customers["allow"] = draw(_subset(CUSTOMERS))
        if draw(st.booleans()):
            customers["created_through_key"] = draw(st.booleans())
        doc["customers"] = customers
    if vendor == "twilio" and draw(st.booleans()):
        doc["recipients"] = {"countries": draw(_subset(COUNTRIES)), "numbers": draw(_subset(NUMBERS))}
    if vendor == "resend" and draw(st.booleans()):
        doc["recipients"] = {"domains": draw(_subset(DOMAINS)), "addresses": draw(_subset(ADDRESSES))}
    if vendor != "stripe" and draw(st.booleans()):
        doc["senders"] = draw(_subset(SENDERS))
    if vendor == "resend" and draw(st.booleans()):
        doc["max_recipients"] = draw(st.integers(1, 4))
    if draw(st.booleans()):
        doc["per_call_usd"] = draw(usd)
    if draw(st.booleans()):
        doc["caps"] = draw(caps)
    return doc


def _subset_patterns() -> st.SearchStrategy[list[str]]:
    return st.lists(patterns, max_size=4, unique=True)


@st.composite
def variants(draw: Any, of: list[str]) -> list[str]:
    """Patterns near the parent's (one segment swapped), so a request and its parent's rules meet."""
    out = []
    for pattern in of:
        method, _, path = pattern.partition(" ")
        segments = path.strip("/").split("/")
        at = draw(st.integers(0, len(segments) - 1))
        segments[at] = draw(st.sampled_from([*SEGMENTS, segments[at]]))
        out.append(f"{method} /{'/'.join(segments)}")
    return list(dict.fromkeys(out))


@st.composite
def calls(draw: Any, vendor: str, named: list[str]) -> ParsedRequest:
    """Mostly a call some pattern of either policy names (its ``*`` filled in), so rules meet."""
    concrete = [s for s in SEGMENTS if s != "*"]
    if named and draw(st.integers(0, 4)):
        method, _, shape = draw(st.sampled_from(named)).partition(" ")
        segments = [draw(st.sampled_from(concrete)) if s == "*" else s for s in shape.strip("/").split("/")]
    else:
        segments = draw(st.lists(st.sampled_from(concrete), min_size=2, max_size=3))
        method = draw(st.sampled_from(["GET", "POST"]))
    path = "/" + "/".join(segments)
    recipients: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    if vendor == "twilio":
        recipients = tuple(draw(st.lists(st.sampled_from(["+15550001", "+15551234", "+4420001", "+33100"]),
                                         max_size=2)))
        countries = tuple(draw(st.sampled_from([*COUNTRIES, "DE"])) for _ in recipients)
    elif vendor == "resend":
        recipients = tuple(draw(st.lists(st.sampled_from([*ADDRESSES, "d@x.example.com", "e@evil.net"]),
                                         max_size=3)))
    return ParsedRequest(
        method=method, path=path, endpoint=f"{method} {generic_template(segments)}",
        customer_id=draw(st.none() | st.sampled_from([*CUSTOMERS, "cus_Z9"])) if vendor == "stripe" else None,
        object_id=draw(st.none() | st.sampled_from(OBJECTS)) if vendor == "stripe" else None,
        moves_money=draw(st.integers(0, 3)) == 0, recipients=recipients, recipient_countries=countries,
        senders=tuple(draw(st.lists(st.sampled_from([*SENDERS, "+19999"]), max_size=1))),
    )


records = st.dictionaries(st.sampled_from(OBJECTS + CUSTOMERS),
                          st.sampled_from([*CUSTOMERS, None]), max_size=4).map(
    lambda d: {k: RecordedObject(k, "charge", c) for k, c in d.items()})


def _verdict(policy: rules.Policy, call: ParsedRequest, predicted: Decimal | None,
             known: dict[str, RecordedObject]) -> str:
    """'allowed', 'approval' or 'denied', as the handler and the gate act on a verdict: shadow
    mode forwards everything, recording what it would have refused or held."""
    verdict = policy.evaluate(call, predicted, "run-1", known)
    if policy.shadow:
        return "allowed"
    if verdict.denial is not None:
        return "denied"
    return "approval" if verdict.approval is not None else "allowed"


RANK = {"denied": 0, "approval": 1, "allowed": 2}


@pytest.mark.parametrize("vendor", ["stripe", "twilio", "resend"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_child_never_admits_what_its_parent_refuses(vendor: str, data: st.DataObject) -> None:
    parent_doc = data.draw(documents(vendor))
    requested = data.draw(documents(vendor, partial=True))
    if "endpoints" in requested and data.draw(st.booleans()):
        requested["endpoints"] = {group: data.draw(variants(patterns_))
                                  for group, patterns_ in parent_doc["endpoints"].items()}
    try:
        child_doc = narrow.narrow(parent_doc, requested)
    except InvalidInput:
        return  # refused at mint: nothing to compare
    rules.validate(child_doc)  # what the mint stores must be a policy like any other
    chain = [("key_parent", parent_doc), ("key_child", child_doc)]
    parent = rules.Policy.from_document("pol_p", 1, parent_doc)
    child = lineage.effective_policy("pol_c", 1, chain)
    named = [p for doc in (parent_doc, child_doc) for group in doc["endpoints"].values() for p in group]
    for _ in range(16):
        call = data.draw(calls(vendor, named))
        predicted = data.draw(st.decimals(min_value=0, max_value=600, places=2) if data.draw(st.integers(0, 3))
                              else st.none())
        known = data.draw(records)
        on_child, on_parent = _verdict(child, call, predicted, known), _verdict(parent, call, predicted, known)
        assert RANK[on_child] <= RANK[on_parent], (call, predicted, known, child_doc)
    owned = [(owner, cap) for owner, cap in child.inherited_caps]
    assert owned == [("key_parent", cap) for cap in parent.caps]
    assert child.caps == rules.Policy.from_document("x", 0, {"vendor": vendor, "endpoints": {"allow": []},
                                                             "caps": requested.get("caps", [])}).caps


def test_narrowing_is_idempotent_so_a_reload_judges_a_child_as_it_was_minted() -> None:
    parent = {"vendor": "stripe", "endpoints": {"allow": ["POST /v1/refunds", "GET /v1/charges/*"]},
              "customers": {"allow": ["cus_A1", "cus_B2"]}, "per_call_usd": "50.00",
              "caps": [{"usd": "100.00", "window": "day"}]}
    once = narrow.narrow(parent, {"endpoints": {"allow": ["POST /v1/refunds", "GET /v1/charges/ch_1Ab",
                                                          "POST /v1/payouts"]},
                                  "customers": {"allow": ["cus_B2", "cus_Z9"]}, "per_call_usd": "80"})
    assert once["endpoints"]["allow"] == ["POST /v1/refunds", "GET /v1/charges/ch_1Ab"]
    assert once["customers"] == {"created_through_key": False, "allow": ["cus_B2"]}
    assert once["per_call_usd"] == "50.00" and "caps" not in once
    assert narrow.narrow(parent, once) == once
    assert once["delegation"] == {"allowed": False, "max_depth": narrow.DEFAULT_MAX_DEPTH - 1,
                                  "max_ttl_s": narrow.DEFAULT_MAX_TTL_S}


def test_a_literal_under_a_parents_star_is_kept_only_as_an_object_id() -> None:
    """``GET /v1/charges/*`` reads one charge, never ``/v1/charges/search`` (vendors/endpoints.py)."""
    assert narrow.meet("GET /v1/charges/search", "GET /v1/charges/*") is None
    assert narrow.meet("GET /v1/charges/ch_1Ab", "GET /v1/charges/*") == "GET /v1/charges/ch_1Ab"
    assert narrow.meet("GET /v1/*/ch_1Ab", "GET /v1/charges/*") == "GET /v1/charges/ch_1Ab"


def test_a_child_keeps_its_parents_customer_rule_whatever_it_asks() -> None:
    """Scope's rules are not monotone in ``created_through_key`` (scope.py): a child that could
    switch it either way would admit a charge its parent refuses."""
    parent = {"vendor": "stripe", "endpoints": {"allow": ["GET /v1/charges/*"]}, "customers": {"allow": ["cus_A1"]}}
    child_doc = narrow.narrow(parent, {"customers": {"created_through_key": True}})
    assert child_doc["customers"] == {"created_through_key": False, "allow": ["cus_A1"]}
    call = ParsedRequest("GET", "/v1/charges/ch_1Ab", "GET /v1/charges/{id}", object_id="ch_1Ab")
    known = {"ch_1Ab": RecordedObject("ch_1Ab", "charge", "cus_B2")}
    child = lineage.effective_policy("pol_c", 1, [("key_p", parent), ("key_c", child_doc)])
    assert _verdict(child, call, Decimal(0), known) == "denied"
    assert _verdict(rules.Policy.from_document("pol_p", 1, parent), call, Decimal(0), known) == "denied"
