"""The web console over HTTP (no browser): sign-in and sign-out, session cookie, CSRF, and that its
actions reach the proxy through the admin API (a revoke from the console stops the next
SDK call; a new key's secret is shown once)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator

import httpx
import pytest
import stripe
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from proxy import db
from proxy.config import Settings
from proxy.console.session import Sessions
from tests.support.tollgate import ADMIN_TOKEN, policy

CHARGE = {"amount": 1200, "currency": "usd", "source": "tok_visa"}


def stripe_client(proxy_url: str, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client: httpx.Client, token: str = ADMIN_TOKEN) -> httpx.Response:
    page = client.get("/console/signin")
    return client.post("/console/signin", data={"csrf": csrf_of(page.text), "token": token, "next": "/console/keys"})


@pytest.fixture()
def browser(proxy_url: str) -> Iterator[httpx.Client]:
    """A cookie-keeping client that does not follow redirects (so each one can be checked)."""
    with httpx.Client(base_url=proxy_url, timeout=10) as client:
        yield client


@pytest.fixture()
def signed_in(browser: httpx.Client) -> httpx.Client:
    assert sign_in(browser).status_code == 303
    return browser


@pytest.mark.parametrize("path", ["/console/", "/console/keys", "/console/calls", "/console/runs",
                                  "/console/approvals", "/console/policies", "/console/keys/new",
                                  "/console/calls?partial=1"])
def test_nothing_is_visible_without_a_session(browser, path):
    response = browser.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/signin?next=")
    assert "key_" not in response.text


def test_console_root_and_static_files_need_no_session(browser):
    assert browser.get("/console").headers["location"] == "/console/"
    css = browser.get("/console/static/console.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert browser.get("/console/static/console.js").status_code == 200


def test_a_wrong_token_is_refused(browser):
    response = sign_in(browser, token="tga_wrong")
    assert response.status_code == 401 and "not the admin token" in response.text
    assert browser.get("/console/keys").status_code == 303


def test_sign_in_without_the_form_token_is_refused(browser):
    browser.get("/console/signin")
    response = browser.post("/console/signin", data={"token": ADMIN_TOKEN})
    assert response.status_code == 403
    assert browser.get("/console/keys").status_code == 303


def test_session_cookie_flags_and_security_headers(browser):
    response = sign_in(browser)
    assert response.status_code == 303 and response.headers["location"] == "/console/keys"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/console" in cookie and "Secure" not in cookie  # plain http here
    assert ADMIN_TOKEN not in cookie
    page = browser.get("/console/keys")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "same-origin"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text  # no inline scripts: the CSP would block them anyway


def test_an_open_redirect_is_not_possible(browser):
    page = browser.get("/console/signin")
    response = browser.post("/console/signin", data={"csrf": csrf_of(page.text), "token": ADMIN_TOKEN,
                                                     "next": "https://evil.example/"})
    assert response.headers["location"] == "/console/"


def test_posts_need_the_sessions_csrf_token(signed_in, make_key):
    key = make_key(policy(), label="csrf-target")
    missing = signed_in.post(f"/console/keys/{key['id']}/revoke")
    wrong = signed_in.post(f"/console/keys/{key['id']}/revoke", data={"csrf": "x" * 43})
    assert missing.status_code == 403 and wrong.status_code == 403
    assert signed_in.get(f"/console/keys/{key['id']}/revoke").status_code == 200  # confirmation page
    shown = httpx.get(f"{signed_in.base_url!s}/admin/v1/keys/{key['id']}",
                      headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    assert shown["status"] == "active"


def test_a_copied_cookie_is_dead_after_sign_out(signed_in, proxy_url, make_key, run_id):
    """Issue 17 item 8: sign-out used to clear only the browser's cookie, and a copy of it
    (with its CSRF token) still revoked keys for 12 hours."""
    key = make_key(policy(), label="after-sign-out")
    csrf = csrf_of(signed_in.get(f"/console/keys/{key['id']}/revoke").text)
    copied = signed_in.cookies["tollgate_console"]
    assert signed_in.post("/console/signout", data={"csrf": csrf}).headers["location"] == "/console/signin"

    with httpx.Client(base_url=proxy_url, cookies={"tollgate_console": copied}, timeout=10) as thief:
        refused = thief.post(f"/console/keys/{key['id']}/revoke", data={"csrf": csrf})
        assert refused.status_code == 303 and refused.headers["location"].startswith("/console/signin?next=")
        assert thief.get("/console/keys").status_code == 303  # nothing to read either
    shown = httpx.get(f"{proxy_url}/admin/v1/keys/{key['id']}", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert shown.json()["status"] == "active"
    charge = stripe_client(proxy_url, key["key"]).v1.charges.create(params=CHARGE,
                                                                     options={"headers": {"X-Agent-Run-Id": run_id}})
    assert charge.amount == 1200  # the key still works

    assert sign_in(signed_in).status_code == 303  # signing in again makes a new session
    assert signed_in.cookies["tollgate_console"] != copied and signed_in.get("/console/keys").status_code == 200


async def test_a_session_is_a_row_holding_only_the_ids_digest(pg_url):
    """The cookie's signature still says which admin token made it (a new token signs everyone
    out), and the database keeps only the SHA-256 of the session id, with its expiry."""
    engine = db.create_engine(pg_url, Settings())
    ours, theirs = Sessions("tga_one", engine), Sessions("tga_two", engine)
    scope = {"type": "http", "method": "GET", "path": "/console/", "headers": [], "scheme": "http",
             "server": ("x", 80), "query_string": b""}
    try:
        session, response = await ours.start(), Response()
        ours.save(Request(scope), response, session)
        cookie = response.headers["set-cookie"].split(";")[0]
        with_cookie = Request({**scope, "headers": [(b"cookie", cookie.encode())]})
        assert (await ours.load(with_cookie)).signed_in is True
        assert (await theirs.load(with_cookie)).signed_in is False
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT expires_at - created_at AS lasts, t::text AS everything "
                                           "FROM console_sessions t WHERE id_hash = :h"),
                                      {"h": hashlib.sha256(session.sid.encode()).digest()})).one()
        assert row.lasts.total_seconds() == 12 * 3600 and session.sid not in row.everything
        await ours.end(session)
        assert (await ours.load(with_cookie)).signed_in is False
        assert ours.token_matches("tga_one") and not ours.token_matches("tga_on")
    finally:
        await engine.dispose()


def test_revoke_from_the_console_blocks_the_next_sdk_call(signed_in, proxy_url, make_key, run_id):
    key = make_key(policy(caps=[{"usd": "100.00", "window": "day"}, {"usd": "50.00", "window": "run"}]),
                   label="console-revoke")
    client = stripe_client(proxy_url, key["key"])
    client.v1.charges.create(params=CHARGE, options={"headers": {"X-Agent-Run-Id": run_id}})

    keys_page = signed_in.get("/console/keys").text
    row = keys_page[keys_page.index(f'id="key-{key["id"]}"'):]
    row = row[:row.index("</tr>")]
    assert "console-revoke" in row and "12.00 of 100.00 USD" in row and "latest run" in row
    assert "12.00 of 50.00 USD" in row and run_id in row  # the last call's run, against the run cap

    confirm = signed_in.get(f"/console/keys/{key['id']}/revoke")
    revoked = signed_in.post(f"/console/keys/{key['id']}/revoke", data={"csrf": csrf_of(confirm.text)})
    assert revoked.status_code == 303 and revoked.headers["location"] == "/console/keys"
    assert f"Revoked {key['id']}" in signed_in.get("/console/keys").text

    with pytest.raises(stripe.AuthenticationError):
        client.v1.charges.create(params=CHARGE, options={"headers": {"X-Agent-Run-Id": run_id}})


def test_a_created_key_is_shown_once_and_never_listed(signed_in, proxy_url, run_id):
    form = signed_in.get("/console/keys/new")
    document = '{"vendor": "stripe", "endpoints": {"allow": ["POST /v1/charges"]}}'
    created = signed_in.post("/console/keys", data={
        "csrf": csrf_of(form.text), "vendor": "stripe", "label": "made-in-console",
        "upstream_secret": "sk_test_" + "E" * 24, "policy": document})
    assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
    token = re.search(r'value="(tg_[^"]+)"', created.text).group(1)
    assert "sk_test_" not in created.text

    charge = stripe_client(proxy_url, token).v1.charges.create(params=CHARGE,
                                                                  options={"headers": {"X-Agent-Run-Id": run_id}})
    assert charge.amount == 1200
    secret_part = token.split("_")[2]
    for path in ("/console/keys", "/console/calls", f"/console/runs/{run_id}", "/console/policies"):
        page = signed_in.get(path)
        assert page.status_code == 200, path
        assert secret_part not in page.text and "sk_test_" not in page.text, path


def test_a_failed_create_keeps_the_form_but_not_the_secret(signed_in):
    form = signed_in.get("/console/keys/new")
    response = signed_in.post("/console/keys", data={
        "csrf": csrf_of(form.text), "vendor": "stripe", "label": "broken", "upstream_secret": "sk_test_SHOULDNOTECHO",
        "policy": '{"vendor": "stripe", "endpoints": {"allow": ["NOPE"]}}'})
    assert response.status_code == 400 and "/endpoints/allow/0" in response.text
    assert "SHOULDNOTECHO" not in response.text and 'value="broken"' in response.text


def test_live_calls_filter_and_show_the_blocking_rule(signed_in, proxy_url, make_key, run_id):
    key = make_key(policy(per_call_usd="5.00"))
    client = stripe_client(proxy_url, key["key"])
    with pytest.raises(stripe.PermissionError):
        client.v1.charges.create(params=CHARGE, options={"headers": {"X-Agent-Run-Id": run_id}})
    page = signed_in.get("/console/calls", params={"key_id": key["id"], "decision": "blocked", "vendor": "stripe"})
    assert page.status_code == 200 and "per_call_limit" in page.text and "over the per-call limit" in page.text
    none = signed_in.get("/console/calls", params={"key_id": key["id"], "decision": "allowed", "partial": "1"})
    assert "No calls match" in none.text and "<html" not in none.text


def test_every_page_renders(signed_in, proxy_url, make_key, run_id):
    key = make_key(policy(caps=[{"usd": "100.00", "window": "day"}, {"requests": 10, "window": "minute"}]))
    stripe_client(proxy_url, key["key"]).v1.charges.create(params=CHARGE,
                                                           options={"headers": {"X-Agent-Run-Id": run_id}})
    for path in ("/console/", "/console/keys", "/console/calls", "/console/runs", f"/console/runs/{run_id}",
                 "/console/approvals", "/console/policies", f"/console/policies/{key['policy_id']}"):
        page = signed_in.get(path)
        assert page.status_code == 200, (path, page.text[:500])
    overview = signed_in.get("/console/").text
    assert "<svg" in overview and "Spend per vendor per day" in overview
    # Each vendor as its adapter names and colours it (the console names none itself).
    assert 'fill="#4f46e5"/></svg>Stripe</span>' in overview and "USD Twilio, 30 days" in overview
    assert '<option value="resend">Resend</option>' in signed_in.get("/console/keys/new").text
    run_page = signed_in.get(f"/console/runs/{run_id}").text
    assert "12.00" in run_page and "POST /v1/charges" in run_page
    assert signed_in.get("/console/runs", params={"run_id": run_id}).headers["location"] == f"/console/runs/{run_id}"
    assert signed_in.get("/console/runs/run_never_seen").status_code == 404


def test_policy_versions_and_live_validation(signed_in, make_key):
    key = make_key(policy())
    page = signed_in.get(f"/console/policies/{key['policy_id']}")
    csrf = csrf_of(page.text)
    bad = signed_in.post("/console/policies/validate", data={"document": '{"vendor": "stripe"}'},
                         headers={"x-csrf-token": csrf})
    assert bad.json()["valid"] is False and bad.json()["errors"]
    assert signed_in.post("/console/policies/validate", data={"document": "{}"}).status_code == 403  # no CSRF

    document = policy(per_call_usd="7.00")
    saved = signed_in.post(f"/console/policies/{key['policy_id']}/versions",
                           data={"csrf": csrf, "document": json.dumps(document)})
    assert saved.status_code == 303
    shown = signed_in.get(f"/console/policies/{key['policy_id']}").text
    assert "v2" in shown and ('class="added"' in shown or 'class="changed"' in shown)


def test_the_admin_api_and_the_console_editor_return_the_new_warnings(admin, signed_in):
    from tests.test_policy_warnings import RISKY

    by_api = admin.post("/admin/v1/policies/validate", json=RISKY).json()
    assert by_api["valid"] and any("lists ZZ" in w for w in by_api["warnings"])
    csrf = csrf_of(signed_in.get("/console/policies").text)
    by_console = signed_in.post("/console/policies/validate", data={"document": json.dumps(RISKY)},
                                headers={"x-csrf-token": csrf}).json()
    assert by_console["warnings"] == by_api["warnings"]


def test_a_keys_page_shows_who_delegated_it_and_its_children(signed_in, admin, make_key, run_id):
    parent = make_key(policy(), label="orchestrator")
    child = admin.post(f"/admin/v1/keys/{parent['id']}/children", json={"agent_run_id": run_id,
                                                                         "label": "refund-worker"}).json()
    page = signed_in.get(f"/console/keys/{parent['id']}")
    assert page.status_code == 200 and f'data-child="{child["id"]}"' in page.text and "refund-worker" in page.text
    assert "Revoke it and every key delegated from it" in page.text
    assert "Every key delegated from it (1 directly" in signed_in.get(f"/console/keys/{parent['id']}/revoke").text
    child_page = signed_in.get(f"/console/keys/{child['id']}").text
    assert f'data-parent="{parent["id"]}"' in child_page and run_id in child_page and "at depth 1" in child_page
    listed = signed_in.get("/console/keys").text
    assert f'delegated from <a href="/console/keys/{parent["id"]}">' in listed
