"""proxy/policy/rules.py: schema validation and in-memory evaluation (pure, no database)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import InvalidInput
from proxy.policy.rules import SCHEMA_PATH, Cap, Denial, Policy, PolicyInvalid, validate
from vendors.base import ParsedRequest
from vendors.stripe import StripeAdapter

EXAMPLES = sorted((SCHEMA_PATH.parent / "examples").glob("*.json"))
ADAPTER = StripeAdapter()
FORM = {"content-type": "application/x-www-form-urlencoded"}


def base(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"vendor": "stripe", "endpoints": {"allow": ["POST /v1/charges"]}}
    doc.update(extra)
    return doc


def errors_of(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(PolicyInvalid) as info:
        validate(document)
    return info.value.errors


def request(method: str, path: str, body: bytes = b"") -> ParsedRequest:
    return ADAPTER.parse_request(method, path, b"", FORM if body else {}, body)


def policy(**extra: Any) -> Policy:
    document = base(**extra)
    validate(document)
    return Policy.from_document("pol_1", 3, document)


# --- validation ----------------------------------------------------------------------------------


def test_there_are_examples() -> None:
    assert EXAMPLES, "policy-schemas/examples/ should hold example policies"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_and_loads(path: Path) -> None:
    document = json.loads(path.read_text())
    validate(document)
    loaded = Policy.from_document("pol_example", 1, document)
    assert loaded.vendor == document["vendor"]
    assert loaded.allow == tuple(document["endpoints"]["allow"])


def test_the_design_document_example_validates() -> None:
    validate(
        {
            "vendor": "stripe",
            "mode": "enforce",
            "endpoints": {"allow": ["POST /v1/charges", "POST /v1/refunds", "GET /v1/charges/*"]},
            "customers": {"allow": ["cus_NffrFeUfNV2Hib"]},
            "per_call_usd": "100.00",
            "caps": [
                {"usd": "200.00", "window": "day"},
                {"usd": "20.00", "window": "run"},
                {"requests": 10, "window": "minute", "action": "block"},
            ],
            "require_run_id": False,
            "expires_at": None,
        }
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"per_call_usd": 100},
        {"per_call_usd": 0.5},
        {"per_call_usd": "0"},
        {"per_call_usd": "0.000001"},
        {"per_call_usd": "999999999999.999999"},
        {"caps": [{"requests": 0, "window": "total"}]},
        {"caps": [{"usd": 5, "window": w} for w in ("minute", "hour", "day", "month", "total", "run")]},
        {"expires_at": "2030-01-01T00:00:00Z"},
        {"expires_at": "2030-01-01T00:00:00+02:00"},
        {"endpoints": {"allow": ["GET /v1/charges/{id}", "DELETE /v1/customers/*", "PATCH /x", "PUT /y"]}},
        {"endpoints": {"allow": []}},
        {"customers": {}},
        {"customers": {"allow": []}},
    ],
)
def test_valid_documents(extra: dict[str, Any]) -> None:
    validate(base(**extra))


def test_cap_with_both_usd_and_requests() -> None:
    errors = errors_of(base(caps=[{"usd": "1.00", "window": "day"}, {"usd": "1", "requests": 2, "window": "day"}]))
    assert [pointer for pointer, _ in errors] == ["/caps/1"]
    assert "is not valid under any of the given schemas" in errors[0][1]


def test_cap_with_neither_usd_nor_requests() -> None:
    assert [p for p, _ in errors_of(base(caps=[{"window": "day"}]))] == ["/caps/0"]


@pytest.mark.parametrize("value", ["-5", "-0.01", "1.1234567", "01", "1e3", "", " 1", "abc", -1, "1,000"])
def test_bad_usd_amounts(value: Any) -> None:
    errors = errors_of(base(per_call_usd=value))
    assert [p for p, _ in errors] == ["/per_call_usd"]
    assert "is not valid under any of the given schemas" in errors[0][1]


def test_negative_usd_in_a_cap() -> None:
    assert [p for p, _ in errors_of(base(caps=[{"usd": "-1", "window": "day"}]))] == ["/caps/0/usd"]


def test_unknown_window() -> None:
    errors = errors_of(base(caps=[{"usd": "1", "window": "week"}]))
    assert errors == [("/caps/0/window", "'week' is not one of ['minute', 'hour', 'day', 'month', 'total', 'run']")]


def test_unknown_top_level_field() -> None:
    assert errors_of(base(colour="red")) == [("", "Additional properties are not allowed ('colour' was unexpected)")]


def test_unknown_nested_field() -> None:
    assert [p for p, _ in errors_of(base(customers={"deny": ["cus_1"]}))] == ["/customers"]
    assert [p for p, _ in errors_of(base(caps=[{"usd": "1", "window": "day", "limit": 3}]))] == ["/caps/0"]


@pytest.mark.parametrize("pattern", ["/v1/charges", "get /v1/charges", "POST v1/charges", "POST  /v1/charges",
                                     "FETCH /v1/charges", "POST /v1/charges?x=1", "POST /v1/%2e%2e"])
def test_endpoint_pattern_needs_a_method_and_a_clean_path(pattern: str) -> None:
    errors = errors_of(base(endpoints={"allow": [pattern]}))
    assert [p for p, _ in errors] == ["/endpoints/allow/0"]
    assert "does not match" in errors[0][1]


def test_missing_required_fields() -> None:
    assert errors_of({}) == [("", "'vendor' is a required property"), ("", "'endpoints' is a required property")]
    assert [p for p, _ in errors_of({"vendor": "stripe", "endpoints": {}})] == ["/endpoints"]


def test_not_an_object() -> None:
    assert errors_of([]) == [("", "[] is not of type 'object'")]


@pytest.mark.parametrize(
    "extra, pointer",
    [
        ({"vendor": "paypal"}, "/vendor"),
        ({"mode": "audit"}, "/mode"),
        ({"require_run_id": "yes"}, "/require_run_id"),
        ({"expires_at": "tomorrow"}, "/expires_at"),
        ({"expires_at": "2030-13-01T00:00:00Z"}, "/expires_at"),
        ({"expires_at": 1893456000}, "/expires_at"),
        ({"endpoints": {"allow": ["GET /a", "GET /a"]}}, "/endpoints/allow"),
        ({"customers": {"allow": [""]}}, "/customers/allow/0"),
        ({"customers": {"allow": ["cus_1", "cus_1"]}}, "/customers/allow"),
        ({"caps": [{"requests": -1, "window": "day"}]}, "/caps/0/requests"),
        ({"caps": [{"requests": 1.5, "window": "day"}]}, "/caps/0/requests"),
        ({"caps": [{"requests": 1, "window": "day", "action": "warn"}]}, "/caps/0/action"),
        ({"caps": [{"requests": 1, "window": "day"}] * 17}, "/caps"),
    ],
)
def test_other_refusals_point_at_the_field(extra: dict[str, Any], pointer: str) -> None:
    assert pointer in [p for p, _ in errors_of(base(**extra))]


def test_every_error_is_listed_in_path_order() -> None:
    document = {
        "vendor": "paypal",
        "endpoints": {"allow": ["/v1/charges", "GET /v1/x"]},
        "caps": [{"window": "day"}],
        "per_call_usd": -1,
    }
    errors = errors_of(document)
    assert [p for p, _ in errors] == ["/caps/0", "/endpoints/allow/0", "/per_call_usd", "/vendor"]
    assert all(isinstance(reason, str) and reason for _, reason in errors)


def test_policy_invalid_is_an_invalid_input_with_a_readable_message() -> None:
    with pytest.raises(PolicyInvalid) as info:
        validate(base(colour="red", per_call_usd="-1"))
    exc = info.value
    assert isinstance(exc, InvalidInput)
    assert (exc.reason, exc.status) == ("invalid_policy", 400)
    assert exc.message == "/: Additional properties are not allowed ('colour' was unexpected); " \
                          "/per_call_usd: '-1' is not valid under any of the given schemas"


def test_json_pointer_escapes() -> None:
    errors = errors_of(base(**{"a/b~c": 1}))
    assert errors[0][0] == ""  # additionalProperties is reported at the object
    errors = errors_of(base(customers={"allow": ["ok", 5]}))
    assert errors == [("/customers/allow/1", "5 is not of type 'string'")]


# --- loading and checking ------------------------------------------------------------------------


def test_from_document() -> None:
    loaded = Policy.from_document(
        "pol_9",
        2,
        base(
            customers={"allow": ["cus_1", "cus_2"]},
            per_call_usd=12.5,
            caps=[{"usd": "200.00", "window": "day"}, {"requests": 60, "window": "minute"},
                  {"usd": 5, "window": "run"}],
            require_run_id=True,
            expires_at="2030-01-01T00:00:00",
        ),
    )
    assert (loaded.id, loaded.version, loaded.vendor) == ("pol_9", 2, "stripe")
    assert loaded.allow == ("POST /v1/charges",)
    assert loaded.customers == frozenset({"cus_1", "cus_2"})
    assert loaded.per_call_usd == Decimal("12.5")
    assert loaded.caps == (Cap("day", usd=Decimal("200.00")), Cap("minute", requests=60), Cap("run", usd=Decimal("5")))
    assert loaded.require_run_id is True
    assert loaded.expires_at == datetime(2030, 1, 1, tzinfo=UTC)  # naive means UTC


def test_defaults() -> None:
    loaded = Policy.from_document("pol_1", 1, base())
    assert loaded.customers is None and loaded.per_call_usd is None and loaded.caps == ()
    assert loaded.require_run_id is False and loaded.expires_at is None


def test_gate_caps_json() -> None:
    loaded = policy(caps=[{"usd": "200.00", "window": "day"}, {"requests": 60, "window": "minute"},
                          {"usd": 20, "window": "run", "action": "require_approval"}, {"usd": 0.1, "window": "total"}])
    assert json.loads(loaded.gate_caps()) == [
        {"window": "day", "action": "block", "usd": "200.00"},
        {"window": "minute", "action": "block", "requests": 60},
        {"window": "run", "action": "require_approval", "usd": "20"},
        {"window": "total", "action": "block", "usd": "0.1"},
    ]
    assert policy().gate_caps() == "[]"


CHARGE = b"amount=2000&currency=usd&customer=cus_1"


def test_allowed_call_gives_no_denial() -> None:
    parsed = request("POST", "/v1/charges", CHARGE)
    assert policy().check(parsed, Decimal("20"), None) is None


def test_expired_policy() -> None:
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    denial = policy(expires_at=past).check(request("POST", "/v1/charges", CHARGE), Decimal("20"), "run-1")
    assert isinstance(denial, Denial) and denial.reason == "policy_expired"
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert policy(expires_at=future).check(request("POST", "/v1/charges", CHARGE), Decimal("20"), "run-1") is None


def test_expiry_comes_first() -> None:
    past = "2000-01-01T00:00:00Z"
    denial = policy(expires_at=past, require_run_id=True).check(request("GET", "/v1/balance"), Decimal(0), None)
    assert denial is not None and denial.reason == "policy_expired"


@pytest.mark.parametrize("run_id", [None, ""])
def test_missing_run_id_when_required(run_id: str | None) -> None:
    denial = policy(require_run_id=True).check(request("POST", "/v1/charges", CHARGE), Decimal("20"), run_id)
    assert denial is not None and denial.reason == "run_id_required"
    assert "X-Agent-Run-Id" in denial.message


def test_run_id_present_when_required() -> None:
    assert policy(require_run_id=True).check(request("POST", "/v1/charges", CHARGE), Decimal("20"), "run-1") is None


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/v1/refunds", b"charge=ch_1"),
        ("GET", "/v1/charges", b""),
        ("GET", "/v1/charges/ch_1", b""),
        ("POST", "/v1/charges/ch_1/capture", b""),
    ],
)
def test_endpoint_not_allowed(method: str, path: str, body: bytes) -> None:
    parsed = request(method, path, body)
    denial = policy().check(parsed, Decimal(0), None)
    assert denial is not None and denial.reason == "endpoint_not_allowed"
    assert parsed.endpoint in denial.message


def test_wildcard_allows_exactly_one_segment() -> None:
    loaded = policy(endpoints={"allow": ["GET /v1/charges/*"]})
    assert loaded.check(request("GET", "/v1/charges/ch_1"), Decimal(0), None) is None
    assert loaded.check(request("GET", "/v1/charges"), Decimal(0), None).reason == "endpoint_not_allowed"  # type: ignore[union-attr]
    assert loaded.check(request("POST", "/v1/charges/ch_1"), Decimal(0), None).reason == "endpoint_not_allowed"  # type: ignore[union-attr]


def test_empty_allowlist_denies_everything() -> None:
    denial = policy(endpoints={"allow": []}).check(request("GET", "/v1/balance"), Decimal(0), None)
    assert denial is not None and denial.reason == "endpoint_not_allowed"


def test_customer_not_allowed() -> None:
    loaded = policy(customers={"allow": ["cus_1"]})
    parsed = request("POST", "/v1/charges", b"amount=100&currency=usd&customer=cus_2")
    denial = loaded.check(parsed, Decimal(1), None)
    assert denial is not None and denial.reason == "customer_not_allowed"
    assert "cus_2" in denial.message
    charge = request("POST", "/v1/charges", b"amount=100&currency=usd&customer=cus_1")
    assert loaded.check(charge, Decimal(1), None) is None


def test_customer_from_the_path_is_checked() -> None:
    loaded = policy(endpoints={"allow": ["GET /v1/customers/*"]}, customers={"allow": ["cus_1"]})
    assert loaded.check(request("GET", "/v1/customers/cus_1"), Decimal(0), None) is None
    denial = loaded.check(request("GET", "/v1/customers/cus_2"), Decimal(0), None)
    assert denial is not None and denial.reason == "customer_not_allowed"


def test_money_moving_call_naming_no_customer_under_a_customer_scope() -> None:
    loaded = policy(endpoints={"allow": ["POST /v1/charges", "POST /v1/refunds"]}, customers={"allow": ["cus_1"]})
    for parsed in (request("POST", "/v1/charges", b"amount=100&currency=usd&source=tok_visa"),
                   request("POST", "/v1/refunds", b"charge=ch_1&amount=100")):
        assert parsed.moves_money
        denial = loaded.check(parsed, Decimal(1), None)
        assert denial is not None and denial.reason == "customer_not_identified"


def test_empty_customer_list_admits_no_customer() -> None:
    loaded = policy(customers={"allow": []})
    denial = loaded.check(request("POST", "/v1/charges", CHARGE), Decimal(1), None)
    assert denial is not None and denial.reason == "customer_not_allowed"


def test_call_moving_no_money_and_naming_no_customer_passes_a_customer_scope() -> None:
    loaded = policy(endpoints={"allow": ["GET /v1/balance"]}, customers={"allow": ["cus_1"]})
    assert loaded.check(request("GET", "/v1/balance"), Decimal(0), None) is None


def test_no_customer_scope_admits_any_customer() -> None:
    charge = request("POST", "/v1/charges", b"amount=1&currency=usd&customer=cus_zz")
    assert policy().check(charge, Decimal(0), None) is None


def test_per_call_limit_boundary() -> None:
    loaded = policy(per_call_usd="20.00")
    parsed = request("POST", "/v1/charges", CHARGE)
    assert loaded.check(parsed, Decimal("20.000000"), None) is None  # exactly equal is allowed
    assert loaded.check(parsed, Decimal("19.999999"), None) is None
    denial = loaded.check(parsed, Decimal("20.000001"), None)
    assert denial is not None and denial.reason == "per_call_limit"
    assert "20.00 USD" in denial.message


def test_per_call_limit_with_the_adapter_estimate() -> None:
    loaded = policy(per_call_usd="20")
    exactly = request("POST", "/v1/charges", b"amount=2000&currency=usd&customer=cus_1")
    assert loaded.check(exactly, ADAPTER.estimate_usd(exactly), None) is None
    over = request("POST", "/v1/charges", b"amount=2001&currency=usd&customer=cus_1")
    assert loaded.check(over, ADAPTER.estimate_usd(over), None).reason == "per_call_limit"  # type: ignore[union-attr]


def test_zero_per_call_limit_still_allows_free_calls() -> None:
    loaded = policy(per_call_usd="0", endpoints={"allow": ["GET /v1/balance", "POST /v1/charges"]})
    assert loaded.check(request("GET", "/v1/balance"), Decimal(0), None) is None
    assert loaded.check(request("POST", "/v1/charges", CHARGE), Decimal("0.01"), None).reason == "per_call_limit"  # type: ignore[union-attr]


def test_rule_order_endpoint_before_customer_before_limit() -> None:
    loaded = policy(customers={"allow": ["cus_1"]}, per_call_usd="1")
    refund = request("POST", "/v1/refunds", b"charge=ch_1&amount=100000")
    assert loaded.check(refund, Decimal(1000), None).reason == "endpoint_not_allowed"  # type: ignore[union-attr]
    charge = request("POST", "/v1/charges", b"amount=100000&currency=usd&customer=cus_2")
    assert loaded.check(charge, Decimal(1000), None).reason == "customer_not_allowed"  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(
    st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False),
)
def test_per_call_limit_is_exactly_a_comparison(limit: Decimal, predicted: Decimal) -> None:
    loaded = Policy.from_document("pol", 1, base(per_call_usd=str(limit)))
    denial = loaded.check(request("POST", "/v1/charges", CHARGE), predicted, None)
    assert (denial is None) == (predicted <= limit)


def test_documents_are_not_mutated() -> None:
    document = json.loads(EXAMPLES[0].read_text())
    before = copy.deepcopy(document)
    validate(document)
    Policy.from_document("pol", 1, document)
    assert document == before


def test_validation_says_what_each_pattern_allows_and_warns_of_what_escapes_pricing() -> None:
    from proxy.policy import warnings

    document = {"vendor": "stripe", "endpoints": {
        "allow": ["POST /v1/refunds", "POST /v1/subscriptions", "POST /v1/ephemeral_keys", "GET /v1/charges/*",
                  "GET /v1/customers/cus_NffrFeUfNV2Hib", "POST /v1/nowhere"],
        "priced_after": []}, "duplicates": {"window_s": 60}}
    found = warnings.review(document, StripeAdapter().operations())
    assert found.matches["GET /v1/charges/*"] == ["GET /v1/charges/{id}"]
    assert found.matches["GET /v1/customers/cus_NffrFeUfNV2Hib"] == ["GET /v1/customers/{id}"]
    assert [w.split(" ")[0:3] for w in found.warnings] == [
        ["POST", "/v1/subscriptions", "allows"], ["POST", "/v1/ephemeral_keys", "allows"],
        ["POST", "/v1/nowhere", "matches"]]
    assert "cost_unknown" in found.warnings[0] and "issues credentials" in found.warnings[1]
    document["endpoints"]["priced_after"] = ["POST /v1/subscriptions"]
    assert len(warnings.review(document, StripeAdapter().operations()).warnings) == 2  # the operator chose


def test_a_wildcard_never_matches_a_reserved_word() -> None:
    policy = Policy.from_document("pol_x", 1, {"vendor": "stripe", "endpoints": {"allow": ["GET /v1/charges/*"]}})
    adapter = StripeAdapter()
    one = adapter.parse_request("GET", "/v1/charges/ch_1", b"", {}, b"")
    everyone = adapter.parse_request("GET", "/v1/charges/search", b"query=amount%3E0", {}, b"")
    assert policy.check(one, Decimal(0), None) is None
    assert policy.check(everyone, Decimal(0), None).reason == "endpoint_not_allowed"
