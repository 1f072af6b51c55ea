"""The Stripe emulator, driven by the official stripe-python SDK over real HTTP.

These tests pin the emulator to what api.stripe.com answers, so that proxy
tests built on top of it exercise the proxy against Stripe's real wire format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import stripe
from starlette.applications import Starlette

from emulators._stripe_params import decode_query
from emulators._stripe_store import fixture
from emulators.stripe_api import ReceivedRequest, create_app, mask_key
from tests.support.servers import serve_asgi

SECRET = "sk_test_emulator"


@dataclass
class Emulator:
    app: Starlette
    base_url: str

    @property
    def received(self) -> list[ReceivedRequest]:
        return self.app.state.received

    def client(self, key: str = SECRET, **options: Any) -> stripe.StripeClient:
        options.setdefault("max_network_retries", 0)
        return stripe.StripeClient(key, base_addresses={"api": self.base_url}, **options)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    app = create_app(SECRET)
    with serve_asgi(app) as base_url:
        yield Emulator(app, base_url)


@pytest.fixture
def client(emulator: Emulator) -> stripe.StripeClient:
    return emulator.client()


def raw(obj: stripe.StripeObject) -> dict[str, Any]:
    """The JSON body the SDK received for ``obj``."""
    return json.loads(obj.last_response.body)


def is_stripe_id(value: str, prefix: str) -> bool:
    """``prefix_`` followed by 24 alphanumerics, as Stripe mints ids."""
    return re.fullmatch(rf"{prefix}_[A-Za-z0-9]{{24}}", value) is not None


def card_customer(client: stripe.StripeClient, **params: Any) -> stripe.Customer:
    return client.v1.customers.create(params={"source": "tok_visa", **params})


# -- customers and charges --------------------------------------------------


def test_customer_is_created_from_the_fixture_and_retrievable(client):
    customer = client.v1.customers.create(
        params={"email": "ada@example.com", "name": "Ada", "metadata": {"plan": "pro"}}
    )

    assert is_stripe_id(customer.id, "cus")
    assert (customer.object, customer.email, customer.name) == (
        "customer",
        "ada@example.com",
        "Ada",
    )
    assert customer.metadata.to_dict() == {"plan": "pro"}
    assert customer.discount is None and customer.default_source is None
    assert set(raw(customer)) == set(fixture("customer"))

    again = client.v1.customers.retrieve(customer.id)
    assert raw(again) == raw(customer)


def test_charge_create_and_retrieve(client):
    charge = client.v1.charges.create(
        params={
            "amount": 2000,
            "currency": "USD",
            "source": "tok_visa",
            "description": "Order 42",
            "metadata": {"order": "42"},
        }
    )

    assert is_stripe_id(charge.id, "ch")
    assert (charge.amount, charge.currency, charge.description) == (2000, "usd", "Order 42")
    assert (charge.status, charge.paid, charge.captured) == ("succeeded", True, True)
    assert (charge.amount_captured, charge.amount_refunded, charge.refunded) == (2000, 0, False)
    assert charge.source.object == "card" and charge.payment_method == charge.source.id
    assert charge.balance_transaction.startswith("txn_")
    assert charge.metadata.to_dict() == {"order": "42"}
    assert charge.refunds.url == f"/v1/charges/{charge.id}/refunds"
    assert set(raw(charge)) == set(fixture("charge"))

    assert raw(client.v1.charges.retrieve(charge.id)) == raw(charge)


def test_charge_with_capture_false_is_authorised_only(client):
    charge = client.v1.charges.create(
        params={"amount": 500, "currency": "usd", "source": "tok_visa", "capture": False}
    )

    assert (charge.captured, charge.amount_captured, charge.paid) == (False, 0, True)
    assert charge.balance_transaction is None


def test_charging_a_customer_uses_its_default_card(client):
    customer = card_customer(client)
    charge = client.v1.charges.create(
        params={"amount": 1500, "currency": "usd", "customer": customer.id}
    )

    assert charge.customer == customer.id
    assert charge.source.id == customer.default_source
    assert charge.source.customer == customer.id


def test_charging_a_customer_without_a_card_is_a_card_error(client):
    customer = client.v1.customers.create()

    with pytest.raises(stripe.CardError) as caught:
        client.v1.charges.create(
            params={"amount": 1500, "currency": "usd", "customer": customer.id}
        )

    assert caught.value.http_status == 402
    assert caught.value.code == "missing"
    assert caught.value.user_message == "Cannot charge a customer that has no active card"


def test_list_charges_filters_by_customer_newest_first(client):
    customer = card_customer(client)
    first = client.v1.charges.create(
        params={"amount": 1000, "currency": "usd", "customer": customer.id}
    )
    client.v1.charges.create(params={"amount": 9900, "currency": "usd", "source": "tok_visa"})
    second = client.v1.charges.create(
        params={"amount": 2000, "currency": "usd", "customer": customer.id}
    )

    listed = client.v1.charges.list(params={"customer": customer.id})
    body = raw(listed)
    assert (body["object"], body["url"], body["has_more"]) == ("list", "/v1/charges", False)
    assert [c["id"] for c in body["data"]] == [second.id, first.id]

    page = client.v1.charges.list(params={"customer": customer.id, "limit": 1})
    assert [c.id for c in page.data] == [second.id] and page.has_more is True
    rest = client.v1.charges.list(
        params={"customer": customer.id, "limit": 1, "starting_after": second.id}
    )
    assert [c.id for c in rest.data] == [first.id] and rest.has_more is False

    assert len(client.v1.charges.list().data) == 3


def test_expand_replaces_ids_with_objects(client):
    customer = card_customer(client, email="x@example.com")
    charge = client.v1.charges.create(
        params={"amount": 1000, "currency": "usd", "customer": customer.id, "expand": ["customer"]}
    )
    assert charge.customer.id == customer.id and charge.customer.email == "x@example.com"

    listed = client.v1.charges.list(params={"expand": ["data.customer"]})
    assert listed.data[0].customer.object == "customer"
    # Expansion is per response: the stored charge still holds the id.
    assert client.v1.charges.retrieve(charge.id).customer == customer.id


# -- refunds ----------------------------------------------------------------


def test_partial_then_full_refund_updates_the_charge(client):
    charge = client.v1.charges.create(
        params={"amount": 1000, "currency": "usd", "source": "tok_visa"}
    )

    partial = client.v1.refunds.create(
        params={"charge": charge.id, "amount": 300, "metadata": {"ticket": "T-1"}}
    )
    assert is_stripe_id(partial.id, "re")
    assert (partial.amount, partial.charge, partial.status) == (300, charge.id, "succeeded")
    assert partial.metadata.to_dict() == {"ticket": "T-1"}
    assert set(raw(partial)) == set(fixture("refund"))
    after_partial = client.v1.charges.retrieve(charge.id)
    assert (after_partial.amount_refunded, after_partial.refunded) == (300, False)

    rest = client.v1.refunds.create(params={"charge": charge.id})
    assert rest.amount == 700
    after_full = client.v1.charges.retrieve(charge.id)
    assert (after_full.amount_refunded, after_full.refunded) == (1000, True)
    assert [r.id for r in after_full.refunds.data] == [rest.id, partial.id]

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"charge": charge.id})
    assert caught.value.code == "charge_already_refunded"
    assert caught.value.user_message == f"Charge {charge.id} has already been refunded."


def test_refund_larger_than_what_is_left_is_refused(client):
    charge = client.v1.charges.create(
        params={"amount": 1000, "currency": "usd", "source": "tok_visa"}
    )
    client.v1.refunds.create(params={"charge": charge.id, "amount": 600})

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"charge": charge.id, "amount": 500})

    assert caught.value.param == "amount"
    assert caught.value.user_message == (
        "Refund amount ($5.00) is greater than unrefunded amount on charge ($4.00)"
    )
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 600


def test_refund_needs_a_charge_or_payment_intent(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"amount": 100})
    assert caught.value.code == "parameter_missing"


# -- payment intents --------------------------------------------------------


def test_payment_intent_create_confirm_capture(client):
    intent = client.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "usd",
            "capture_method": "manual",
            "metadata": {"order": "7"},
        }
    )
    assert is_stripe_id(intent.id, "pi") and intent.client_secret.startswith(f"{intent.id}_secret_")
    assert (intent.status, intent.amount_received, intent.latest_charge) == (
        "requires_payment_method",
        0,
        None,
    )
    assert set(raw(intent)) == set(fixture("payment_intent"))

    confirmed = client.v1.payment_intents.confirm(
        intent.id, params={"payment_method": "pm_card_visa"}
    )
    assert (confirmed.status, confirmed.amount_capturable, confirmed.amount_received) == (
        "requires_capture",
        5000,
        0,
    )
    assert confirmed.payment_method.startswith("pm_") and confirmed.payment_method != "pm_card_visa"
    held = client.v1.charges.retrieve(confirmed.latest_charge)
    assert (held.captured, held.payment_intent, held.amount) == (False, intent.id, 5000)

    captured = client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 4000})
    assert (captured.status, captured.amount_received, captured.amount_capturable) == (
        "succeeded",
        4000,
        0,
    )
    charge = client.v1.charges.retrieve(captured.latest_charge)
    assert (charge.captured, charge.amount_captured, charge.amount_refunded) == (True, 4000, 1000)
    assert charge.metadata.to_dict() == {"order": "7"}
    assert raw(client.v1.payment_intents.retrieve(intent.id)) == raw(captured)


def test_payment_intent_confirmed_on_create_succeeds_and_can_be_refunded(client):
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1200,
            "currency": "eur",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    assert (intent.status, intent.amount_received) == ("succeeded", 1200)

    refund = client.v1.refunds.create(params={"payment_intent": intent.id})
    assert (refund.amount, refund.payment_intent, refund.charge) == (
        1200,
        intent.id,
        intent.latest_charge,
    )


def test_payment_intent_state_errors(client):
    intent = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})

    with pytest.raises(stripe.InvalidRequestError) as missing_method:
        client.v1.payment_intents.confirm(intent.id)
    assert missing_method.value.code == "payment_intent_unexpected_state"

    with pytest.raises(stripe.InvalidRequestError) as not_capturable:
        client.v1.payment_intents.capture(intent.id)
    assert not_capturable.value.code == "payment_intent_unexpected_state"
    assert not_capturable.value.user_message.startswith(
        "This PaymentIntent could not be captured because it has a status of "
        "requires_payment_method."
    )
    assert not_capturable.value.json_body["error"]["payment_intent"]["id"] == intent.id


# -- payouts, transfers, balance --------------------------------------------


def test_payout(client):
    payout = client.v1.payouts.create(
        params={"amount": 1100, "currency": "usd", "metadata": {"batch": "b1"}}
    )
    assert is_stripe_id(payout.id, "po")
    assert (payout.object, payout.amount, payout.currency, payout.status) == (
        "payout",
        1100,
        "usd",
        "pending",
    )
    assert payout.metadata.to_dict() == {"batch": "b1"}
    assert set(raw(payout)) == set(fixture("payout"))


def test_transfer(client):
    transfer = client.v1.transfers.create(
        params={"amount": 700, "currency": "usd", "destination": "acct_1Dest"}
    )
    assert is_stripe_id(transfer.id, "tr")
    assert (transfer.amount, transfer.destination, transfer.amount_reversed) == (
        700,
        "acct_1Dest",
        0,
    )
    assert transfer.reversals.url == f"/v1/transfers/{transfer.id}/reversals"
    assert set(raw(transfer)) == set(fixture("transfer"))

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.transfers.create(params={"amount": 700, "currency": "usd"})
    assert (caught.value.code, caught.value.param) == ("parameter_missing", "destination")


def test_balance(client):
    balance = client.v1.balance.retrieve()
    assert raw(balance) == fixture("balance")


# -- errors -----------------------------------------------------------------


def test_missing_required_param(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.charges.create(params={"currency": "usd", "source": "tok_visa"})

    error = caught.value
    assert (error.http_status, error.code, error.param) == (400, "parameter_missing", "amount")
    assert error.user_message == "Missing required param: amount."
    assert error.json_body["error"]["type"] == "invalid_request_error"
    assert (
        error.json_body["error"]["doc_url"]
        == "https://stripe.com/docs/error-codes/parameter-missing"
    )


def test_invalid_integer(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.charges.create(params={"amount": "12.5", "currency": "usd", "source": "tok_visa"})
    assert (caught.value.code, caught.value.user_message) == (
        "parameter_invalid_integer",
        "Invalid integer: 12.5",
    )


def test_unknown_id_is_resource_missing(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.charges.retrieve("ch_doesnotexist")

    error = caught.value
    assert (error.http_status, error.code, error.param) == (404, "resource_missing", "id")
    assert error.user_message == "No such charge: 'ch_doesnotexist'"

    with pytest.raises(stripe.InvalidRequestError) as referenced:
        client.v1.refunds.create(params={"charge": "ch_gone"})
    assert (referenced.value.code, referenced.value.param) == ("resource_missing", "charge")


def test_unknown_parameter_is_refused(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.charges.create(
            params={"amount": 1000, "currency": "usd", "source": "tok_visa", "tg_vault_key": "x"}
        )
    assert (caught.value.code, caught.value.param) == ("parameter_unknown", "tg_vault_key")
    assert caught.value.user_message == "Received unknown parameter: tg_vault_key"


def test_wrong_secret_is_an_authentication_error(emulator):
    wrong = "sk_test_51NotTheRightKeyAtAll9876"

    with pytest.raises(stripe.AuthenticationError) as caught:
        emulator.client(wrong).v1.balance.retrieve()

    assert caught.value.http_status == 401
    assert caught.value.user_message == f"Invalid API Key provided: {mask_key(wrong)}"
    assert mask_key(wrong) == "sk_test_" + "*" * (len(wrong) - 8 - 4) + "9876"
    assert wrong not in caught.value.http_body


def test_missing_and_basic_auth(emulator):
    missing = httpx.get(f"{emulator.base_url}/v1/balance")
    assert missing.status_code == 401
    assert missing.json()["error"]["message"].startswith("You did not provide an API key.")
    assert missing.headers["www-authenticate"] == 'Basic realm="Stripe"'

    basic = httpx.get(f"{emulator.base_url}/v1/balance", auth=(SECRET, ""))
    assert basic.status_code == 200 and basic.json()["object"] == "balance"


def test_unknown_route(emulator):
    response = httpx.get(
        f"{emulator.base_url}/v1/foo", headers={"Authorization": f"Bearer {SECRET}"}
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("Unrecognized request URL (GET: /v1/foo). Please see")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["request-id"].startswith("req_")


# -- idempotency ------------------------------------------------------------


def test_idempotent_replay_returns_the_same_object(emulator, client):
    params = {"amount": 1000, "currency": "usd", "source": "tok_visa"}
    options = {"idempotency_key": "order-42-charge"}

    first = client.v1.charges.create(params=params, options=options)
    second = client.v1.charges.create(params=params, options=options)

    assert second.id == first.id
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert second.last_response.headers["Idempotency-Key"] == "order-42-charge"
    assert second.last_response.headers["Original-Request"] == first.last_response.request_id
    assert second.last_response.request_id != first.last_response.request_id
    assert [c.id for c in client.v1.charges.list().data] == [first.id]


def test_idempotency_key_reused_with_other_params_is_refused(client):
    options = {"idempotency_key": "k-1"}
    client.v1.charges.create(
        params={"amount": 1000, "currency": "usd", "source": "tok_visa"}, options=options
    )

    with pytest.raises(stripe.IdempotencyError) as caught:
        client.v1.charges.create(
            params={"amount": 2000, "currency": "usd", "source": "tok_visa"}, options=options
        )
    assert caught.value.http_status == 400
    assert caught.value.json_body["error"]["type"] == "idempotency_error"
    assert "Try using a key other than 'k-1'" in caught.value.user_message

    with pytest.raises(stripe.IdempotencyError):
        client.v1.payouts.create(params={"amount": 1000, "currency": "usd"}, options=options)


def test_sdk_retries_reuse_the_idempotency_key(emulator):
    retrying = emulator.client(max_network_retries=1)
    emulator.app.state.fail_next = (500, {"type": "api_error", "message": "Try again."})

    charge = retrying.v1.charges.create(
        params={"amount": 1000, "currency": "usd", "source": "tok_visa"}
    )

    attempts = emulator.received
    assert len(attempts) == 2
    assert attempts[0].headers["idempotency-key"] == attempts[1].headers["idempotency-key"]
    assert attempts[0].body == attempts[1].body
    assert is_stripe_id(charge.id, "ch")


# -- test hooks -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "exception"),
    [
        (402, "card_error", stripe.CardError),
        (400, "invalid_request_error", stripe.InvalidRequestError),
        (403, "invalid_request_error", stripe.PermissionError),
        (429, "invalid_request_error", stripe.RateLimitError),
        (500, "api_error", stripe.APIError),
    ],
)
def test_fail_next_answers_once_with_the_configured_error(
    emulator, client, status, error_type, exception
):
    error = {"type": error_type, "code": "card_declined", "message": "Your card was declined."}
    emulator.app.state.fail_next = (status, error)

    with pytest.raises(exception) as caught:
        client.v1.charges.create(params={"amount": 1000, "currency": "usd", "source": "tok_visa"})

    assert caught.value.http_status == status
    assert caught.value.json_body == {"error": error}
    assert emulator.app.state.fail_next is None
    assert (
        client.v1.charges.create(
            params={"amount": 1000, "currency": "usd", "source": "tok_visa"}
        ).status
        == "succeeded"
    )


def test_card_error_from_fail_next_carries_decline_details(emulator, client):
    emulator.app.state.fail_next = (
        402,
        {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        },
    )
    with pytest.raises(stripe.CardError) as caught:
        client.v1.charges.create(params={"amount": 1000, "currency": "usd", "source": "tok_visa"})

    assert caught.value.code == "card_declined"
    assert caught.value.error.decline_code == "insufficient_funds"


def test_received_records_what_reached_stripe(emulator, client):
    client.v1.customers.create(params={"email": "a@example.com", "metadata": {"plan": "pro"}})
    client.v1.charges.list(params={"limit": 3, "expand": ["data.customer"]})

    post, get = emulator.received
    assert (post.method, post.path, post.query) == ("POST", "/v1/customers", "")
    assert post.headers["authorization"] == f"Bearer {SECRET}"
    assert post.headers["content-type"] == "application/x-www-form-urlencoded"
    assert post.headers["stripe-version"] == stripe.api_version
    assert post.headers["idempotency-key"]
    assert post.body == b"email=a%40example.com&metadata[plan]=pro"
    assert all(name == name.lower() for name in post.headers)

    assert (get.method, get.path, get.body) == ("GET", "/v1/charges", b"")
    # The SDK writes literal brackets, but requests percent-encodes them in
    # URLs (not in form bodies): a proxy must decode both spellings.
    assert get.query == "limit=3&expand%5B0%5D=data.customer"
    assert decode_query(get.query) == {"limit": "3", "expand": ["data.customer"]}
    assert "idempotency-key" not in get.headers and "content-type" not in get.headers


# -- form decoding ----------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("amount=100&currency=usd", {"amount": "100", "currency": "usd"}),
        ("metadata[k]=v&metadata[a%20b]=c", {"metadata": {"k": "v", "a b": "c"}}),
        ("metadata[0]=zero", {"metadata": {"0": "zero"}}),
        ("expand[]=a&expand[]=b", {"expand": ["a", "b"]}),
        ("expand[1]=b&expand[0]=a", {"expand": ["a", "b"]}),
        (
            "items[0][price]=p&items[0][quantity]=2&items[1][price]=q",
            {"items": [{"price": "p", "quantity": "2"}, {"price": "q"}]},
        ),
        ("items[][price]=p&items[][price]=q", {"items": [{"price": "p"}, {"price": "q"}]}),
        ("a[b][c]=d", {"a": {"b": {"c": "d"}}}),
        ("description=&metadata[k]=", {"description": "", "metadata": {"k": ""}}),
        ("", {}),
    ],
)
def test_decode_query(encoded, decoded):
    assert decode_query(encoded) == decoded


def test_malformed_form_body_is_a_400(emulator):
    response = httpx.post(
        f"{emulator.base_url}/v1/customers",
        headers={
            "Authorization": f"Bearer {SECRET}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        content=b"metadata=x&metadata[k]=v",
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_json_body_is_refused_like_stripe(emulator):
    response = httpx.post(
        f"{emulator.base_url}/v1/customers",
        headers={"Authorization": f"Bearer {SECRET}"},
        json={"email": "a@example.com"},
    )
    assert response.status_code == 400
    assert "unsupported Content-Type application/json" in response.json()["error"]["message"]
