"""Issue 17, item 5: anyone can make a well-formed vault key, so refusing one must not cost
an audit row each.

Before: the checksum was CRC32 alone, so 300 made-up keys were 300 database look-ups and 300
``unknown_key`` rows. Now a key issued by this installation carries a tag (an HMAC under a
secret only the installation holds), so a forgery is told without a look-up; keys issued
before the tag existed still work, by look-up among the ids the database marks as such; and
of the refusals of unknown keys and wrong secrets, the first per source and minute writes an
audit row while every one is counted in ``auth_refusals``, where SQL recovers the count.

Real components: a Postgres of the test's own, a real proxy on loopback, stripe-python.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import stripe
from psycopg.rows import dict_row

from proxy import bootstrap, migrate
from proxy.app import create_app
from proxy.secretbox import SecretBox, decode_master_key
from tests.support import leaks
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, MASTER_KEY, STRIPE_SECRET, policy, settings_for

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
COOKBOOK = Path(__file__).resolve().parent.parent / "docs" / "sql-cookbook.md"
CHARGE = {"amount": 100, "currency": "usd", "source": "tok_visa"}


def _base62(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def crc_key(random_id: str | None = None, secret: str | None = None) -> str:
    """A key in the format every key had before the tag: tg_<id>_<secret> + CRC32 in 6 base62
    digits. Anyone can make one: that is the finding."""
    body = f"tg_{random_id or _random(12)}_{secret or _random(32)}"
    return body + _base62(zlib.crc32(body.encode()), 6)


def tagged_forgery() -> str:
    """Today's format with a made-up tag (8 characters) and an honest CRC32 over all of it."""
    body = f"tg_{_random(12)}_{_random(32)}{_random(8)}"
    return body + _base62(zlib.crc32(body.encode()), 6)


def client_for(proxy_url: str, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)


@contextmanager
def proxy_on(url: str, stripe_url: str, **overrides: Any) -> Iterator[str]:
    runtime = bootstrap.runtime(settings_for(url, {"stripe": stripe_url}, **overrides))
    with serve_asgi(create_app(runtime), lifespan="on") as proxy_url:
        yield proxy_url


def new_key(proxy_url: str) -> dict[str, Any]:
    response = httpx.post(f"{proxy_url}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                          json={"vendor": "stripe", "policy": policy(), "upstream_secret": STRIPE_SECRET})
    assert response.status_code == 201, response.text
    return response.json()


def insert_key_as_before(url: str) -> tuple[str, str]:
    """A key as Tollgate wrote it until migration 0014 (no tag, CRC32 only): (key id, token)."""
    random_id, secret = _random(12), _random(32)
    key_id, credential_id, policy_id = f"key_{random_id}", f"cred_{random_id}", f"pol_{random_id}"
    sealed = SecretBox(decode_master_key(MASTER_KEY)).seal(STRIPE_SECRET, credential_id)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO policies (id, vendor, current_version) VALUES (%s, 'stripe', 1)", [policy_id])
        conn.execute("INSERT INTO policy_versions (policy_id, version, document) VALUES (%s, 1, %s)",
                     [policy_id, json.dumps(policy())])
        conn.execute("INSERT INTO upstream_credentials (id, vendor, secret_ciphertext) VALUES (%s, 'stripe', %s)",
                     [credential_id, sealed])
        conn.execute("INSERT INTO vault_keys (id, vendor, secret_hash, credential_id, policy_id) "
                     "VALUES (%s, 'stripe', %s, %s, %s)",
                     [key_id, hashlib.sha256(secret.encode()).digest(), credential_id, policy_id])
    token = crc_key(random_id, secret)
    leaks.remember_secret(token)  # the whole-run secret search looks for it too
    return key_id, token


@pytest.fixture()
def upgraded_db(scratch_db: str) -> Iterator[tuple[str, str, str]]:
    """A database that had a key before this change, upgraded to head: (url, key id, token)."""
    migrate.upgrade(scratch_db, "0014")
    key_id, token = insert_key_as_before(scratch_db)
    migrate.upgrade(scratch_db)
    yield scratch_db, key_id, token


def query(url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(sql, args).fetchall()


def cookbook(name: str) -> str:
    return dict(re.findall(r"```sql\n-- name: (\w+)\n(.*?)```", COOKBOOK.read_text(), re.S))[name]


async def _send(proxy_url: str, tokens: list[str]) -> list[tuple[int, str]]:
    async with httpx.AsyncClient(base_url=proxy_url, timeout=30) as client:
        async def one(token: str) -> tuple[int, str]:
            response = await client.get("/stripe/v1/charges/ch_1", headers={"authorization": f"Bearer {token}"})
            return response.status_code, response.json()["error"]["code"]
        return await asyncio.gather(*(one(token) for token in tokens))


def send(proxy_url: str, tokens: list[str]) -> list[tuple[int, str]]:
    """All at once, as an attacker would: the proxy sees them concurrently."""
    return asyncio.run(_send(proxy_url, tokens))


def metric(proxy_url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{proxy_url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def refusals_counted(url: str, reason: str) -> int:
    """The count, read as an operator would: the cookbook's query, summed over its answer."""
    rows = query(url, cookbook("unauthenticated_callers"))
    return sum(r["refusals"] for r in rows if r["source"] == "127.0.0.1" and r["reason"] == reason)


def test_300_forged_keys_write_at_most_two_rows_and_sql_still_counts_all_300(upgraded_db, stripe_emulator):
    url, _, old_token = upgraded_db
    with proxy_on(url, stripe_emulator[0]) as proxy_url:
        counted_before = metric(proxy_url, "tollgate_auth_refusals_total", recorded="count")
        answers = send(proxy_url, [crc_key() for _ in range(300)])  # the finding: CRC32 is anyone's to compute
        rows = query(url, "SELECT key_id, reason, request_summary FROM audit_events")
        assert 1 <= len(rows) <= 2, f"{len(rows)} rows"  # one per source and minute: two if it straddled a minute
        assert answers == [(401, "unknown_key")] * 300
        # Keys in today's format with a made-up tag: told without a look-up, answered the same way.
        assert send(proxy_url, [tagged_forgery() for _ in range(100)]) == [(401, "unknown_key")] * 100
        rows = query(url, "SELECT key_id, reason, request_summary FROM audit_events")
        assert 1 <= len(rows) <= 2 and {r["reason"] for r in rows} == {"unknown_key"}, rows
        assert all(r["request_summary"]["source"] == "127.0.0.1" for r in rows)
        # Prometheus says the same, with no key id (or anything else unbounded) for a label.
        assert metric(proxy_url, "tollgate_auth_refusals_total", recorded="count") - counted_before == 400 - len(rows)
        assert "key_" not in "".join(line for line in httpx.get(f"{proxy_url}/metrics").text.splitlines()
                                     if line.startswith("tollgate_auth_refusals_total"))

        # The SDK raises its usual auth error for both kinds of forgery.
        for token in (crc_key(), tagged_forgery()):
            with pytest.raises(stripe.AuthenticationError) as raised:
                client_for(proxy_url, token).v1.charges.create(params=CHARGE)
            assert raised.value.error.code == "unknown_key"

        # A real key still works, and so does the key made before the change.
        real = new_key(proxy_url)
        assert client_for(proxy_url, real["key"]).v1.charges.create(params=CHARGE).status == "succeeded"
        assert client_for(proxy_url, old_token).v1.charges.create(params=CHARGE).status == "succeeded"
    # The proxy has stopped, and flushed its counts on the way out.
    assert refusals_counted(url, "unknown_key") == 402


def test_a_key_made_before_the_change_keeps_working_and_a_wrong_secret_under_it_is_recorded(
        upgraded_db, stripe_emulator):
    url, old_id, old_token = upgraded_db
    wrong = crc_key(old_id.removeprefix("key_"), _random(32))
    with proxy_on(url, stripe_emulator[0]) as proxy_url:
        charge = client_for(proxy_url, old_token).v1.charges.create(params=CHARGE)
        assert charge.status == "succeeded"
        assert send(proxy_url, [wrong] * 20) == [(401, "invalid_secret")] * 20
        refused = query(url, "SELECT key_id FROM audit_events WHERE reason = 'invalid_secret'")
        assert 1 <= len(refused) <= 2 and {r["key_id"] for r in refused} == {old_id}
        # Revoking it still works as it always did.
        httpx.post(f"{proxy_url}/admin/v1/keys/{old_id}/revoke",
                   headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).raise_for_status()
        with pytest.raises(stripe.AuthenticationError) as raised:
            client_for(proxy_url, old_token).v1.charges.create(params=CHARGE)
        assert raised.value.error.code == "key_revoked"
    assert refusals_counted(url, "invalid_secret") == 20


def _clear_of_a_minute_change(margin_s: float) -> None:
    """Sampling is per wall-clock minute: start where the next ``margin_s`` stay in this one."""
    into = time.time() % 60
    if into > 60 - margin_s:
        time.sleep(60 - into + 0.5)


def test_forged_keys_are_refused_without_the_database(own_postgres, stripe_emulator):
    """No look-up, no row: with Postgres stopped, forged keys of both formats still get a 401
    (not a 503), while a real key fails closed as ever; their count reaches SQL later."""
    url, stop_postgres, start_postgres = own_postgres
    insert_key_as_before(url)  # an installation with old keys: forged old-format ids are checked against them
    with proxy_on(url, stripe_emulator[0], db_timeout_s=2.0) as proxy_url:
        real = client_for(proxy_url, new_key(proxy_url)["key"])
        real.v1.charges.create(params=CHARGE)  # warm: the key is cached in the process
        _clear_of_a_minute_change(25)
        assert send(proxy_url, [crc_key(), tagged_forgery()]) == [(401, "unknown_key")] * 2  # the minute's row
        stop_postgres()
        forged = [crc_key() for _ in range(20)] + [tagged_forgery() for _ in range(20)]
        assert send(proxy_url, forged) == [(401, "unknown_key")] * 40
        with pytest.raises(stripe.APIError) as raised:
            real.v1.charges.create(params=CHARGE)
        assert raised.value.http_status == 503  # guarantee 1 is untouched
        start_postgres()
        deadline = time.monotonic() + 20
        while httpx.get(f"{proxy_url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "Postgres did not come back"
            time.sleep(0.2)
    assert len(query(url, "SELECT 1 FROM audit_events WHERE reason = 'unknown_key'")) == 1
    assert refusals_counted(url, "unknown_key") == 42


def test_sources_are_bounded_and_processes_add_up(scratch_db):
    """Many addresses still write a bounded number of rows (past MAX_SOURCES a minute they are
    'other'; an IPv6 /64 is one source), and two processes' counts add up in one row."""
    from proxy.config import Settings
    from proxy.hotdb import HotDB
    from proxy.refusals import MAX_SOURCES, AuthRefusals, source_of

    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert source_of("::ffff:198.51.100.7") == "198.51.100.7" and source_of(None) == source_of("x") == "unknown"
    migrate.upgrade(scratch_db)

    def attempt(process: AuthRefusals, client: str) -> bool:
        """One refusal as the handler makes it: True if it wrote (here: would write) its row."""
        claim = process.claim(client, "stripe", "unknown_key", "key_madeup")
        if claim is not None:
            process.recorded(claim)
        return claim is not None

    async def two_processes() -> int:
        hot = await HotDB.open(scratch_db, Settings(database_url=scratch_db))
        try:
            first, second = AuthRefusals(hot), AuthRefusals(hot)
            rows = sum(attempt(first, f"10.0.{i // 256}.{i % 256}") for i in range(1000) for _ in range(2))
            rows += sum(attempt(second, "10.0.0.0") for _ in range(3))
            await first.aclose()
            await second.aclose()
            return rows
        finally:
            await hot.close()

    _clear_of_a_minute_change(10)  # one minute for all of it: rows per minute are the point
    assert asyncio.run(two_processes()) == MAX_SOURCES + 1 + 1  # each source's first, one 'other', and B's first
    counted = {r["source"]: r["refusals"] for r in query(scratch_db, "SELECT source, refusals FROM auth_refusals")}
    assert len(counted) == MAX_SOURCES + 1
    assert counted["other"] == 2 * (1000 - MAX_SOURCES)
    assert counted["10.0.0.0"] == 2 + 3  # two from the first process, three from the second
