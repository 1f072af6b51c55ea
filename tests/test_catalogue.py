"""vendors/catalogue.py: operations as data, matched literal-first, look-alikes refused, and names
that never carry a value from the request."""

from __future__ import annotations

import pytest

from vendors.base import RequestRejected
from vendors.catalogue import Catalogue

FREE = {"kind": "reads", "price": "free", "note": "n"}
CATALOGUE = Catalogue({
    "GET /emails/{email_id}": FREE,
    "GET /emails/receiving": FREE,
    "POST /emails": {"kind": "sends", "price": "email", "note": "n"},
    "GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json": FREE,
    "POST /2010-04-01/Accounts/{AccountSid}/Messages.json": {"kind": "sends", "price": "sms", "note": "n",
                                                              "lists": ["MediaUrl"]},
    "GET /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/Local.json": FREE,
    "GET /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json": FREE,
})


def test_a_literal_beats_a_placeholder() -> None:
    receiving = CATALOGUE.match("GET", "/emails/receiving")
    assert receiving is not None and receiving.operation.template == "/emails/receiving" and receiving.params == {}
    one = CATALOGUE.match("GET", "/emails/4ef9a417-02e9-4d39-ad75-9611e0fcc33c")
    assert one is not None and one.params == {"email_id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"}
    local = CATALOGUE.match("GET", "/2010-04-01/Accounts/AC1/IncomingPhoneNumbers/Local.json")
    assert local is not None and local.operation.template.endswith("/Local.json")


def test_placeholders_with_a_suffix_bind_without_it() -> None:
    found = CATALOGUE.match("GET", "/2010-04-01/Accounts/AC1/Messages/SM2.json")
    assert found is not None and found.params == {"AccountSid": "AC1", "Sid": "SM2"}
    assert found.operation.key == "GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"
    messages = CATALOGUE.match("POST", "/2010-04-01/Accounts/AC1/Messages.json")
    assert messages is not None and messages.operation.lists == frozenset({"MediaUrl"})


@pytest.mark.parametrize("method, path", [
    ("GET", "/emails/Receiving"),  # a placeholder whose value is one of the catalogue's words, spelled otherwise
    ("POST", "/Emails"),
    ("POST", "/emails.json"),
    ("POST", "/2010-04-01/Accounts/AC1/Messages"),
    ("POST", "/2010-04-01/Accounts/AC1/messages.json"),
    ("POST", "/2010-04-01/Accounts/AC1/Messages.xml"),
    ("GET", "/2010-04-01/Accounts/AC1/Messages/SM2"),
    ("GET", "/2010-04-01/accounts/AC1/Messages/SM2.json"),
])
def test_lookalikes_are_refused_not_guessed(method: str, path: str) -> None:
    with pytest.raises(RequestRejected) as refused:
        CATALOGUE.match(method, path)
    assert (refused.value.reason, refused.value.status) == ("invalid_path", 404)


@pytest.mark.parametrize("method, path", [
    ("DELETE", "/emails"), ("GET", "/emails/a/b"), ("GET", "/domains"), ("PUT", "/emails/receiving"),
])
def test_what_the_catalogue_does_not_hold_matches_nothing(method: str, path: str) -> None:
    assert CATALOGUE.match(method, path) is None


def test_a_generic_name_keeps_only_the_catalogues_words() -> None:
    assert CATALOGUE.generic_template("GET", "/emails/ana@acme.example/attachments") == "GET /emails/{id}/{id}"
    assert CATALOGUE.generic_template("POST", "/2010-04-01/Accounts/AC1/Foo/+14155550100") == (
        "POST /2010-04-01/Accounts/{id}/{id}/{id}")


def test_an_unknown_kind_is_a_broken_catalogue() -> None:
    with pytest.raises(ValueError, match="kind"):
        Catalogue({"GET /x": {"kind": "spends", "price": "free", "note": "n"}})
