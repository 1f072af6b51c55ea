"""Policy warnings for every vendor: credentials, people outside every recipient rule, unpriceable
operations, and the recipient, duplicate and priced_after settings that leave more open than they
read as. Each is checked on review() against the adapters' real catalogues, then once on each
surface that shows it (CLI, admin API, console editor), which all share review()."""

from __future__ import annotations

import json
import os
from typing import Any

from proxy.policy import warnings
from proxy.policy.rules import validate
from vendors import registry

VENDORS = registry.load()
CALLS = "POST /2010-04-01/Accounts/*/Calls.json"


def found(document: dict[str, Any]) -> list[str]:
    validate(document, VENDORS.names())  # every document here is a valid policy: warnings only
    adapter = VENDORS.get(document["vendor"])
    assert adapter is not None
    return warnings.review(document, adapter.operations()).warnings


def twilio(**fields: Any) -> dict[str, Any]:
    return {"vendor": "twilio", "endpoints": {"allow": [CALLS]}, "recipients": {"countries": ["US"]}, **fields}


def test_credentials_are_warned_for_every_vendor() -> None:
    for vendor, pattern in (("stripe", "POST /v1/ephemeral_keys"), ("resend", "POST /api-keys"),
                            ("twilio", "POST /2010-04-01/Accounts/*/Keys.json")):
        assert any("issues credentials" in w for w in found({"vendor": vendor, "endpoints": {"allow": [pattern]}}))


def test_unpriceable_operations_are_warned_for_every_vendor() -> None:
    for vendor, pattern in (("stripe", "POST /v1/subscriptions"), ("resend", "POST /events/send"),
                            ("twilio", "POST /2010-04-01/Accounts/*/IncomingPhoneNumbers/*/AssignedAddOns.json")):
        document = {"vendor": vendor, "endpoints": {"allow": [pattern]}, "duplicates": {"window_s": 60}}
        assert any("cannot be priced before it is sent" in w for w in found(document)), vendor


def test_reaching_people_with_no_recipient_rule_is_warned_for_every_vendor() -> None:
    for vendor, pattern in (("stripe", "POST /v1/invoices/*/send"), ("resend", "POST /emails"), ("twilio", CALLS)):
        warned = found({"vendor": vendor, "endpoints": {"allow": [pattern]}})
        assert any("reaches people, and no recipients rule limits whom" in w for w in warned), vendor
    scoped = {"vendor": "resend", "endpoints": {"allow": ["POST /emails"]}, "recipients": {"domains": ["acme.example"]}}
    assert not any("no recipients rule" in w for w in found(scoped))


def test_the_unknown_country_is_warned_as_admitting_every_sip_address_and_client() -> None:
    assert any("lists ZZ" in w and "SIP" in w for w in found(twilio(recipients={"countries": ["US", "ZZ"]})))
    assert not any("lists ZZ" in w for w in found(twilio()))


def test_a_wildcard_twiml_host_is_warned_and_a_named_one_is_not() -> None:
    warned = found(twilio(recipients={"countries": ["US"], "twiml_urls": ["*.ngrok.app", "twiml.acme.example"]}))
    assert any("twiml_urls allows *.ngrok.app" in w for w in warned)
    assert not any("twiml.acme.example" in w for w in warned)


def test_segments_without_max_recipients_are_warned() -> None:
    document = {"vendor": "resend", "endpoints": {"allow": ["POST /broadcasts"]},
                "recipients": {"domains": ["acme.example"], "segments": ["seg_customers"]}}
    assert any("broadcasts to seg_customers" in w for w in found(document))
    assert not any("seg_customers" in w for w in found({**document, "max_recipients": 500}))


def test_money_without_a_duplicate_guard_and_a_day_long_window_are_warned() -> None:
    refunds = {"vendor": "stripe", "endpoints": {"allow": ["POST /v1/refunds"]}}
    assert any("no duplicates window" in w for w in found(refunds))
    assert not any("duplicates" in w for w in found({**refunds, "duplicates": {"window_s": 60}}))
    assert any("window_s is 86400 s" in w for w in found({**refunds, "duplicates": {"window_s": 86400}}))


def test_derived_keys_without_a_required_run_id_are_warned() -> None:
    refunds = {"vendor": "stripe", "endpoints": {"allow": ["POST /v1/refunds"]}, "duplicates": {"window_s": 60},
               "idempotency": {"derive": True}}
    assert any("only to calls that carry an X-Agent-Run-Id" in w for w in found(refunds))
    assert not any("idempotency" in w for w in found({**refunds, "require_run_id": True}))
    assert not any("idempotency" in w for w in found({**refunds, "idempotency": {"derive": False}}))


def test_stop_conditions_that_halt_nothing_or_on_the_first_hiccup_are_warned() -> None:
    refunds = {"vendor": "stripe", "duplicates": {"window_s": 60}, "endpoints": {"allow": ["POST /v1/refunds"]}}
    sensible = {"max_calls": 500, "max_refusals": {"count": 10, "window_s": 300}, "consecutive_errors": 5}
    assert not any("stop" in w for w in found({**refunds, "stop": sensible}))
    assert any("mode is shadow: a shadow policy halts no run" in w
               for w in found({**refunds, "stop": sensible, "mode": "shadow"}))
    twitchy = found({**refunds, "stop": {"max_refusals": {"count": 1, "window_s": 60}, "consecutive_errors": 1}})
    assert any("the run's first refusal halts it" in w for w in twitchy)
    assert any("one vendor failure (a timeout, a 5xx) halts the run" in w for w in twitchy)


def test_a_priced_after_entry_that_changes_nothing_is_warned() -> None:
    document = {"vendor": "stripe", "duplicates": {"window_s": 60}, "endpoints": {
        "allow": ["POST /v1/subscriptions"], "priced_after": ["POST /v1/subscriptions", "POST /v1/refunds",
                                                              "POST /v1/nowhere"]}}
    warned = found(document)
    assert any("priced_after lists POST /v1/refunds, which is priced before" in w for w in warned)
    assert any("priced_after lists POST /v1/nowhere, which matches no operation" in w for w in warned)
    assert not any("/v1/subscriptions" in w for w in warned)  # the operator opted in


def test_handing_out_a_credential_is_warned_and_an_entry_that_changes_nothing_too() -> None:
    warned = found({"vendor": "resend", "endpoints": {"allow": ["POST /api-keys"]},
                    "credentials": {"hand_out": ["POST /api-keys", "POST /emails"]}})
    assert any("hand_out lists POST /api-keys: the agent gets the credential" in w for w in warned)
    assert any("hand_out lists POST /emails, which matches nothing that issues credentials" in w for w in warned)


RISKY = twilio(recipients={"countries": ["US", "ZZ"], "twiml_urls": ["*.ngrok.app"]})


def test_the_cli_prints_the_new_warnings(tmp_path) -> None:
    from tests.test_cli_quickstart import tollgate

    path = tmp_path / "risky.json"
    path.write_text(json.dumps(RISKY))
    result = tollgate("policy", "validate", str(path), env=dict(os.environ))
    assert f"{path}: warning: recipients.countries lists ZZ" in result.stderr
    assert f"{path}: warning: recipients.twiml_urls allows *.ngrok.app" in result.stderr



def test_a_webhook_endpoint_is_warned_as_issuing_credentials() -> None:
    """It sends the account's events, objects and all, to whoever holds the URL, and answers its signing secret."""
    warned = found({"vendor": "stripe", "endpoints": {"allow": ["POST /v1/webhook_endpoints",
                                                               "POST /v1/webhook_endpoints/*"]}})
    assert sum("issues credentials" in w for w in warned) == 2
    assert not found({"vendor": "stripe", "endpoints": {"allow": ["DELETE /v1/webhook_endpoints/*"]}})
