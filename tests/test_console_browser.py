"""The console in a real headless Chromium, with the official stripe SDK going through the
proxy: sign in, watch a call appear without a reload, revoke a key and see the next call
fail, approve a held request and see the retry pass. Each flow screenshots its page
(into $TOLLGATE_CONSOLE_SCREENSHOTS, e.g. docs/console, or a temporary directory).

Skipped, and only these tests, where there is no Chromium at /usr/bin/chromium."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from tests.support.console_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS_ENV,
    browser_missing,
    own_database,
    seed_history,
    tollgate_on,
)
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, policy

pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")

CHARGE = {"amount": 1500, "currency": "usd", "source": "tok_visa"}


@pytest.fixture(scope="module")
def console_url(pg_url, stripe_emulator, twilio_emulator, resend_emulator) -> Iterator[str]:
    """Tollgate on a database of its own, so the pages (and screenshots) show only this module's data."""
    upstreams = {"stripe": stripe_emulator[0], "twilio": twilio_emulator[0], "resend": resend_emulator[0]}
    with own_database(pg_url) as database_url:
        seed_history(database_url)
        with tollgate_on(database_url, upstreams) as base_url:
            yield base_url


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    target = os.environ.get(SCREENSHOTS_ENV)
    directory = Path(target) if target else tmp_path_factory.mktemp("console-screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def chromium(console_url) -> Iterator[Any]:
    """Started after Tollgate: sync Playwright runs an event loop in this thread, and migrations need their own."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(chromium) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def make_key(console_url: str, document: dict[str, Any], label: str) -> dict[str, Any]:
    response = httpx.post(f"{console_url}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                          json={"vendor": "stripe", "policy": document, "upstream_secret": STRIPE_SECRET,
                                "label": label}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def sdk(console_url: str, key: dict[str, Any]) -> stripe.StripeClient:
    return stripe.StripeClient(key["key"], base_addresses={"api": f"{console_url}/stripe"}, max_network_retries=0)


def run_opts(run_id: str) -> dict[str, Any]:
    return {"headers": {"X-Agent-Run-Id": run_id}}


def sign_in(page, console_url: str, shots: Path | None = None) -> None:
    page.goto(f"{console_url}/console/keys")
    assert "/console/signin" in page.url  # nothing without a session
    if shots:
        page.screenshot(path=str(shots / "signin.png"))
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console_url}/console/keys")


def test_sign_in_and_see_a_call_appear_without_a_reload(page, console_url, shots, run_id):
    key = make_key(console_url, policy(per_call_usd="50.00",
                                       caps=[{"usd": "200.00", "window": "day"}, {"usd": "500.00", "window": "month"},
                                             {"usd": "60.00", "window": "run"}]), "billing-agent")
    client = sdk(console_url, key)
    sign_in(page, console_url, shots)

    page.goto(f"{console_url}/console/calls")
    page.evaluate("window.__sameDocument = true")
    client.v1.charges.create(params=CHARGE, options=run_opts(run_id))
    with pytest.raises(stripe.PermissionError):
        client.v1.charges.create(params={**CHARGE, "amount": 9900}, options=run_opts(run_id))
    client.v1.charges.create(params={**CHARGE, "amount": 2200}, options=run_opts(run_id))
    row = page.locator("#live-calls tr", has_text="per_call_limit")
    row.wait_for()  # the refresh script brought it in
    assert "over the per-call limit" in row.inner_text()  # the rule that blocked it
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    page.screenshot(path=str(shots / "live-calls.png"))

    page.goto(f"{console_url}/console/keys")
    spend = page.locator(f"#key-{key['id']}")
    assert "37.00 of 200.00 USD" in spend.inner_text()
    page.screenshot(path=str(shots / "keys.png"), full_page=True)

    page.goto(f"{console_url}/console/runs")
    page.get_by_label("X-Agent-Run-Id").fill(run_id)
    page.get_by_role("button", name="Show the run").click()
    page.wait_for_url(f"**/console/runs/{run_id}")
    assert "37.00" in page.locator("table.timeline").inner_text()
    page.screenshot(path=str(shots / "run.png"), full_page=True)

    page.goto(f"{console_url}/console/")
    assert page.locator("svg.chart rect").count() > 30
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    page.set_viewport_size({"width": 375, "height": 800})  # a phone
    page.goto(f"{console_url}/console/keys")
    page.screenshot(path=str(shots / "keys-phone.png"), full_page=True)


def test_revoke_a_key_and_the_next_sdk_call_fails(page, console_url, run_id):
    key = make_key(console_url, policy(), "refund-bot")
    client = sdk(console_url, key)
    client.v1.charges.create(params=CHARGE, options=run_opts(run_id))
    sign_in(page, console_url)

    page.locator(f"#key-{key['id']}").get_by_role("link", name=f"Revoke {key['id']}").click()
    page.get_by_role("button", name=f"Yes, revoke {key['id']}").click()
    page.wait_for_url(f"{console_url}/console/keys")
    assert f"Revoked {key['id']}" in page.locator("[role=status]").inner_text()
    assert page.locator(f"#key-{key['id']} .status").inner_text() == "revoked"

    with pytest.raises(stripe.AuthenticationError) as refused:
        client.v1.charges.create(params=CHARGE, options=run_opts(run_id))
    assert refused.value.json_body["error"]["code"] == "key_revoked"


def test_approve_a_held_request_and_the_retry_passes(page, console_url, shots, run_id):
    key = make_key(console_url, policy(caps=[{"usd": "20.00", "window": "run", "action": "require_approval"}]),
                   "payouts-agent")
    client = sdk(console_url, key)
    client.v1.charges.create(params=CHARGE, options=run_opts(run_id))  # $15 of $20
    with pytest.raises(stripe.PermissionError) as held:
        client.v1.charges.create(params=CHARGE, options=run_opts(run_id))  # would make $30: held
    approval_id = held.value.json_body["error"]["approval_id"]
    sign_in(page, console_url)

    page.goto(f"{console_url}/console/approvals")
    card = page.locator(f"#approval-{approval_id}")
    assert '"amount": "1500"' in card.locator("pre").inner_text()  # what exactly would be sent
    facts = card.locator("dl").inner_text()  # and what it acts on
    assert "the key's own (no connected account named)" in facts and f"stripe-version: {stripe.api_version}" in facts
    assert "expires in" in card.locator("time").inner_text()  # the countdown script ran
    page.screenshot(path=str(shots / "approvals.png"), full_page=True)
    card.get_by_role("button", name=f"Approve {approval_id}").click()
    page.wait_for_url(f"{console_url}/console/approvals")
    assert "approved" in page.locator("[role=status]").inner_text()

    retried = client.v1.charges.create(params=CHARGE, options=run_opts(run_id))
    assert retried.amount == 1500


def test_edit_a_policy_with_live_validation(page, console_url, shots):
    key = make_key(console_url, policy(caps=[{"usd": "100.00", "window": "day"}]), "support-agent")
    sign_in(page, console_url)
    page.goto(f"{console_url}/console/policies/{key['policy_id']}")
    editor = page.get_by_label("Document (JSON)")
    editor.fill(json.dumps({"vendor": "stripe", "endpoints": {"allow": ["FETCH /v1/charges"]}}))
    # errors from the schema, as you type (the valid document before it may have listed warnings)
    page.locator("#document-check li", has_text="/endpoints/allow/0").wait_for()

    editor.fill(json.dumps(policy(per_call_usd="25.00", caps=[{"usd": "150.00", "window": "day"}]), indent=2))
    page.locator("#document-check .valid").wait_for()
    page.get_by_role("button", name="Save as v2").click()
    page.wait_for_url(f"**/console/policies/{key['policy_id']}")
    assert "current version v2" in page.locator("main").inner_text()
    assert page.locator("table.diff tr.changed, table.diff tr.added").count() >= 1
    page.screenshot(path=str(shots / "policies.png"), full_page=True)


def test_pages_read_with_javascript_off(chromium, console_url, run_id):
    key = make_key(console_url, policy(per_call_usd="1.00"), "no-js-reader")
    with pytest.raises(stripe.PermissionError):
        sdk(console_url, key).v1.charges.create(params=CHARGE, options=run_opts(run_id))
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 375, "height": 800})
    try:
        page = context.new_page()
        sign_in(page, console_url)
        page.goto(f"{console_url}/console/calls")
        assert page.locator("#live-calls tr").count() >= 1
        page.get_by_label("Decision").select_option("blocked")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**/console/calls?*decision=blocked*")
        assert "per_call_limit" in page.locator("#live-calls").inner_text()
        page.goto(f"{console_url}/console/")
        assert page.locator("svg.chart").count() == 1
    finally:
        context.close()
