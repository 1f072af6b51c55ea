"""Hostile input end to end through the real proxy: request lines and Host games that try to
reach another server (SSRF), oversized headers, bodies that cannot be read one way only,
absurd amounts, and key attacks. Each is refused with an error in the vendor's shape (the
SDK's own exception where an SDK can send it), nothing is forwarded, and an audit row is
written whenever a key was identified. The unit tests (test_paths, test_formencoding, the
adapter tests) cover the parsers byte by byte; these prove the whole path."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest
import resend
import stripe

from emulators.stripe_api import create_app as create_stripe_emulator
from tests.support.servers import serve_asgi
from tests.support.tollgate import RESEND_SECRET, STRIPE_SECRET, audit_rows, policy

FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def elsewhere():
    """Another server the agent would like the proxy to reach: it must never hear from it."""
    app = create_stripe_emulator(STRIPE_SECRET)
    with serve_asgi(app) as url:
        yield urlsplit(url).netloc, app


@pytest.fixture()
def stripe_key(make_key):
    return make_key(policy())


@pytest.fixture()
def stripe_seen(stripe_emulator):
    received = stripe_emulator[1].state.received
    return lambda: len(received)


def raw_http(proxy_url: str, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (no client normalises them); return (status, body)."""
    parts = urlsplit(proxy_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("target, host, extra, status", [
    ("http://{elsewhere}/stripe/v1/charges", "{elsewhere}", "", 200),  # absolute URI: only its path counts
    ("http://{elsewhere}/v1/charges", "{elsewhere}", "", 404),  # no vendor prefix: no route
    ("/stripe/v1/charges", "{elsewhere}", "X-Forwarded-Host: {elsewhere}\r\nForwarded: host={elsewhere}\r\n", 200),
    ("/stripe/@{elsewhere}/v1/charges", "{elsewhere}", "", 404),  # userinfo trick: a path no operation has
    ("/stripe//{elsewhere}/v1/charges", "localhost", "", 400),  # scheme-relative path
    ("/stripe/http:%2f%2f{elsewhere}/v1/charges", "localhost", "", 400),
    ("{elsewhere}", "{elsewhere}", "", 400),  # authority-form without CONNECT
])
def test_request_lines_and_host_games_never_reach_another_server(
    proxy_url, stripe_key, elsewhere, stripe_seen, target, host, extra, status
):
    netloc, other = elsewhere
    before_other, before = len(other.state.received), stripe_seen()
    body = b"amount=100&currency=usd&source=tok_visa"
    request = (f"POST {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {stripe_key['key']}\r\n{extra}"
               f"Content-Type: {FORM}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    got, answer = raw_http(proxy_url, request.replace("{elsewhere}", netloc).encode() + body)
    assert got == status, answer
    assert len(other.state.received) == before_other  # the other server heard nothing
    assert stripe_seen() == before + (status == 200)  # the configured upstream, and only when allowed
    if status != 200 and target != "{elsewhere}":
        assert b'"error"' in answer  # Stripe's shape


def test_connect_is_refused_and_reaches_nothing(proxy_url, elsewhere):
    netloc, other = elsewhere
    status, _ = raw_http(proxy_url, f"CONNECT {netloc} HTTP/1.1\r\nHost: {netloc}\r\n\r\n".encode())
    assert status == 400 and other.state.received == []


@pytest.mark.parametrize("headers", [
    {"user-agent": "a" * 200_000},  # would be forwarded if accepted
    {f"x-pad-{i}": "v" * 20 for i in range(3000)},
])
def test_oversized_headers_are_refused_in_stripes_shape(proxy_url, stripe_key, stripe_seen, headers):
    before = stripe_seen()
    response = httpx.post(f"{proxy_url}/stripe/v1/charges", content=b"amount=100&currency=usd",
                          headers={"authorization": f"Bearer {stripe_key['key']}", "content-type": FORM, **headers})
    assert response.status_code == 431, response.text
    assert response.json()["error"]["code"] == "headers_too_large"
    assert stripe_seen() == before


@pytest.mark.parametrize("body, content_type, code", [
    (b"amount=100&currency=usd&description=%FF%FE", FORM, "invalid_utf8"),
    (b"amount=100&currency=usd&description=\xff\xfe", FORM, "invalid_utf8"),
    (b"amount=1e400&currency=usd", FORM, "invalid_amount"),
    (b"amount=99999999999999999999999&currency=usd", FORM, "invalid_amount"),
    (b"amount=-100&currency=usd", FORM, "invalid_amount"),
    (b"amount=100&currency=zzz", FORM, "unknown_currency"),
    (b'{"amount": 100, "currency": "usd"}', "application/json", "unsupported_content_type"),
    (b"amount=100&currency=usd", None, "unsupported_content_type"),
    (b"amount=100&currency=usd", "text/plain", "unsupported_content_type"),
    (b"amount=100&currency=usd&customer=cus_a&customer=cus_b", FORM, "duplicate_parameter"),
    (b"amount=100&currency=usd&metadata[a]=1&metadata%5Ba%5D=2", FORM, "duplicate_parameter"),
])
def test_bad_stripe_bodies_are_refused_recorded_and_not_forwarded(
    proxy_url, stripe_key, stripe_seen, sql, run_id, body, content_type, code
):
    before = stripe_seen()
    headers = {"authorization": f"Bearer {stripe_key['key']}", "x-agent-run-id": run_id}
    if content_type:
        headers["content-type"] = content_type
    response = httpx.post(f"{proxy_url}/stripe/v1/charges", content=body, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", code), error
    assert stripe_seen() == before
    [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["reason"], row["key_id"]) == ("blocked", code, stripe_key["id"])


@pytest.mark.parametrize("params, code", [
    ({"amount": -100, "currency": "usd"}, "invalid_amount"),
    ({"amount": 99999999999999999999999, "currency": "usd"}, "invalid_amount"),
    ({"amount": 100, "currency": "zzz"}, "unknown_currency"),
])
def test_the_stripe_sdk_raises_invalid_request_error(proxy_url, stripe_key, stripe_seen, sql, run_id, params, code):
    client = stripe.StripeClient(stripe_key["key"], base_addresses={"api": f"{proxy_url}/stripe"},
                                 max_network_retries=0)
    before = stripe_seen()
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.charges.create(params={**params, "source": "tok_visa"},
                                 options={"headers": {"X-Agent-Run-Id": run_id}})
    assert raised.value.error.code == code and stripe_seen() == before
    assert [r["reason"] for r in audit_rows(sql, run_id)] == [code]


RESEND_POLICY = {"vendor": "resend", "endpoints": {"allow": ["POST /emails"]}}


@pytest.mark.parametrize("body, content_type", [
    (b'{"from": "a@example.com", "from": "b@example.com", "to": ["x@example.com"], "subject": "s", "text": "t"}',
     "application/json"),
    (b'{"from": "a@example.com", "to": ["x@example.com"], "subject": "\xff", "text": "t"}', "application/json"),
    (b'{"from": "a@example.com", "to": ["x@example.com"], "subject": "s", "text": "t"}', "text/plain"),
    (b'{"from": "a@example.com", "to": ["x@example.com"], "subject": 1e400, "text": "t"}', "application/json"),
])
def test_bad_resend_bodies_are_validation_errors_and_not_forwarded(
    proxy_url, make_key, resend_emulator, sql, run_id, body, content_type
):
    key = make_key(RESEND_POLICY, vendor="resend", secret=RESEND_SECRET)
    received = resend_emulator[1].state.received
    before = len(received)
    response = httpx.post(f"{proxy_url}/resend/emails", content=body,
                          headers={"authorization": f"Bearer {key['key']}", "x-agent-run-id": run_id,
                                   "content-type": content_type})
    assert response.status_code in (400, 415, 422), response.text
    assert response.json()["name"] == "validation_error" and response.json()["message"].startswith("[tollgate:")
    assert len(received) == before
    [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["key_id"]) == ("blocked", key["id"])


def test_a_stripe_key_on_the_resend_route_is_refused_and_recorded(proxy_url, stripe_key, sql, run_id, monkeypatch):
    from tests.support.runid import ResendRunClient

    monkeypatch.setattr(resend, "api_key", stripe_key["key"])
    monkeypatch.setattr(resend, "api_url", f"{proxy_url}/resend")
    monkeypatch.setattr(resend, "default_http_client", ResendRunClient(run_id))
    with pytest.raises(resend.exceptions.InvalidApiKeyError) as raised:
        resend.Emails.send({"from": "a@example.com", "to": ["x@example.com"], "subject": "s", "text": "t"})
    assert "wrong_vendor" in str(raised.value)
    [row] = audit_rows(sql, run_id)
    assert (row["key_id"], row["vendor"], row["reason"]) == (stripe_key["id"], "resend", "wrong_vendor")


@pytest.mark.parametrize("mangle, reason", [
    (lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"), "bad_checksum"),
    (lambda k: k[: len(k) // 2], "malformed_key"),
    (lambda k: k[:-6], "malformed_key"),
])
def test_damaged_keys_are_refused_before_any_lookup(proxy_url, stripe_key, stripe_seen, mangle, reason):
    client = stripe.StripeClient(mangle(stripe_key["key"]), base_addresses={"api": f"{proxy_url}/stripe"},
                                 max_network_retries=0)
    before = stripe_seen()
    with pytest.raises(stripe.AuthenticationError) as raised:
        client.v1.charges.create(params={"amount": 100, "currency": "usd", "source": "tok_visa"})
    assert raised.value.error.code == reason and stripe_seen() == before


@pytest.mark.parametrize("path, status, reason", [
    ("/stripe/v1/../v1/refunds", 400, "invalid_path"),
    ("/stripe/v1/%2e%2e/v1/refunds", 400, "invalid_path"),
    ("/stripe/v1/charges%2f..%2frefunds", 400, "invalid_path"),
    ("/stripe/v1/charges/", 400, "invalid_path"),
    ("/stripe/v1/charges.", 400, "invalid_path"),
    ("/stripe/V1/CHARGES", 404, "unknown_operation"),
    ("/stripe/v1/" + "a" * 3000, 414, "path_too_long"),
    ("/STRIPE/v1/charges", 404, None),  # no such vendor route: no key is looked at
])
def test_path_tricks_end_to_end(proxy_url, stripe_key, stripe_seen, sql, run_id, path, status, reason):
    before = stripe_seen()
    body = b"amount=100&currency=usd&source=tok_visa"
    got, answer = raw_http(proxy_url, (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {stripe_key['key']}\r\n"
        f"X-Agent-Run-Id: {run_id}\r\nContent-Type: {FORM}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n").encode() + body)
    assert got == status and b'"error"' in answer, answer
    assert stripe_seen() == before
    assert [r["reason"] for r in audit_rows(sql, run_id)] == ([reason] if reason else [])


@pytest.mark.parametrize("name", ["Stripe-Account", "Stripe-Context", "Stripe-Version"])
def test_a_header_that_decides_what_a_call_acts_on_is_refused_when_sent_twice(
    proxy_url, stripe_key, stripe_seen, run_id, name
):
    before = stripe_seen()
    request = (f"POST /stripe/v1/charges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {stripe_key['key']}\r\n"
               f"X-Agent-Run-Id: {run_id}\r\nContent-Type: {FORM}\r\nContent-Length: 23\r\n"
               f"{name}: acct_1032D82eZvKYlo2C\r\n{name}: 2024-06-20\r\nConnection: close\r\n\r\n"
               "amount=100&currency=usd").encode()
    status, body = raw_http(proxy_url, request)
    assert status == 400 and b'"duplicate_header"' in body and stripe_seen() == before
