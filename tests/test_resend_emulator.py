"""The Resend emulator, driven by the official resend-python SDK over real HTTP.

resend-python keeps its configuration in module globals (``resend.api_key``,
``resend.api_url``, read on every request), so each test sets them with monkeypatch.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import resend
from resend import exceptions as resend_errors
from starlette.applications import Starlette

from emulators.resend_api import ReceivedRequest, create_app
from tests.support.servers import serve_asgi
from vendors.base import UpstreamCredential
from vendors.resend import ResendAdapter

API_KEY = "re_test_emulator_123"


@dataclass
class Emulator:
    app: Starlette
    base_url: str

    @property
    def received(self) -> list[ReceivedRequest]:
        return self.app.state.received


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    app = create_app(API_KEY)
    with serve_asgi(app) as base_url:
        yield Emulator(app, base_url)


@pytest.fixture
def sdk(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    emulator.app.state.fail_next = None
    monkeypatch.setattr(resend, "api_key", API_KEY)
    monkeypatch.setattr(resend, "api_url", emulator.base_url)  # resend 2: read per request
    return emulator


def email(**fields: Any) -> dict[str, Any]:
    return {"from": "Acme <onboarding@acme.dev>", "to": ["ada@example.com"], "subject": "Hello", "html": "<p>Hi</p>",
            **fields}


def is_uuid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


def test_send_returns_a_uuid_and_is_retrievable(sdk: Emulator) -> None:
    sent = resend.Emails.send(email(cc="carol@example.com"))
    assert is_uuid(sent["id"])
    request = sdk.received[-1]
    assert (request.method, request.path) == ("POST", "/emails")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("resend-python:")
    got = resend.Emails.get(sent["id"])
    assert (got["object"], got["id"], got["to"], got["cc"]) == ("email", sent["id"], ["ada@example.com"],
                                                                  ["carol@example.com"])
    assert got["from"] == "Acme <onboarding@acme.dev>" and got["last_event"] == "queued"
    assert sdk.received[-1].body == b"{}"  # resend-python's GET carries an empty JSON object


def test_batch_answers_data_with_one_id_per_email(sdk: Emulator) -> None:
    answer = resend.Batch.send([email(), email(to="bob@example.org")])
    assert len(answer["data"]) == 2 and all(is_uuid(item["id"]) for item in answer["data"])
    assert json.loads(sdk.received[-1].body)[1]["to"] == "bob@example.org"


def test_permissive_batch_reports_errors_by_index(sdk: Emulator) -> None:
    answer = resend.Batch.send([email(), email(to="nope")], {"batch_validation": "permissive"})
    assert len(answer["data"]) == 1
    assert answer["errors"][0]["index"] == 1 and "`to`" in answer["errors"][0]["message"]


@pytest.mark.parametrize(
    "params, exception, name",
    [
        (email(to="not-an-address"), resend_errors.ValidationError, "validation_error"),
        (email(to=[f"u{i}@x.io" for i in range(51)]), resend_errors.ValidationError, "validation_error"),
        ({"from": "a@acme.dev", "subject": "s"}, resend_errors.MissingRequiredFieldsError, "missing_required_field"),
    ],
)
def test_invalid_emails_raise_the_sdks_exceptions(sdk: Emulator, params: dict[str, Any], exception: type,
                                                  name: str) -> None:
    with pytest.raises(resend_errors.ResendError) as info:
        resend.Emails.send(params)
    assert type(info.value) is exception and info.value.error_type == name and str(info.value.code) == "422"


def test_batch_over_one_hundred_is_refused(sdk: Emulator) -> None:
    with pytest.raises(resend_errors.ValidationError):
        resend.Batch.send([email()] * 101)


def test_wrong_and_missing_keys(sdk: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resend, "api_key", "re_wrong")
    with pytest.raises(resend_errors.InvalidApiKeyError) as info:
        resend.Emails.send(email())
    assert info.value.code == 403 and info.value.message == "API key is invalid"
    response = httpx.post(f"{sdk.base_url}/emails", json=email())
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "name": "missing_api_key",
                               "message": "Missing API key in the authorization header"}


def test_unknown_email_is_not_found(sdk: Emulator) -> None:
    with pytest.raises(resend_errors.ResendError) as info:
        resend.Emails.get(str(uuid.uuid4()))
    assert info.value.code == 404 and info.value.error_type == "not_found"


def test_idempotency_key_replays_and_conflicts(sdk: Emulator) -> None:
    key = f"order-{uuid.uuid4()}"
    first = resend.Emails.send(email(), {"idempotency_key": key})
    count = len(sdk.app.state.emails)
    assert resend.Emails.send(email(), {"idempotency_key": key})["id"] == first["id"]
    assert len(sdk.app.state.emails) == count  # nothing sent again
    with pytest.raises(resend_errors.ResendError) as info:
        resend.Emails.send(email(subject="other"), {"idempotency_key": key})
    assert info.value.code == 409 and info.value.error_type == "invalid_idempotent_request"


def test_fail_next_answers_once(sdk: Emulator) -> None:
    sdk.app.state.fail_next = (500, {"statusCode": 500, "name": "application_error", "message": "boom"})
    with pytest.raises(resend_errors.ApplicationError):
        resend.Emails.send(email())
    assert is_uuid(resend.Emails.send(email())["id"])


def test_adapter_prices_the_emulators_answers(sdk: Emulator) -> None:
    adapter = ResendAdapter()
    # The second email passes Tollgate (it governs addresses, not subjects) but Resend refuses it.
    batch = [email(to=["a@x.io", "b@x.io"]), {"from": "a@acme.dev", "to": "c@x.io"}, email(bcc=["d@x.io"])]
    body = json.dumps(batch).encode()
    headers = {"content-type": "application/json", "x-batch-validation": "permissive"}
    parsed = adapter.parse_request("POST", "/emails/batch", b"", headers, body)
    assert parsed.units == 5 and adapter.estimate_usd(parsed) == Decimal("0.004500")
    upstream = {**headers, **adapter.upstream_auth_headers(UpstreamCredential(API_KEY))}
    response = httpx.post(f"{sdk.base_url}/emails/batch", content=body, headers=upstream)
    assert response.json()["errors"] == [{"index": 1, "message": "Missing `subject` field."}]
    priced = adapter.parse_response(parsed, response.status_code, dict(response.headers), response.content)
    assert priced.cost_usd == Decimal("0.003600")  # four recipients were sent, one was not
    assert priced.object_id == response.json()["data"][0]["id"]
