"""Shared fixtures: a real Postgres (started by the suite), the Stripe emulator, the
proxy on a loopback port, and helpers to make keys and read audit rows with SQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from emulators.resend_api import create_app as create_resend_emulator
from emulators.stripe_api import create_app as create_stripe_emulator
from emulators.twilio_api import create_app as create_twilio_emulator
from emulators.twilio_products import SPECS as TWILIO_PRODUCTS
from emulators.twilio_products import create_app as create_twilio_product_emulator
from proxy import bootstrap, logs, migrate
from proxy.app import create_app
from tests.support import leaks
from tests.support.databases import database_of_its_own
from tests.support.servers import serve_asgi
from tests.support.tollgate import (
    ADMIN_TOKEN,
    RESEND_SECRET,
    STRIPE_SECRET,
    TWILIO_ACCOUNT,
    TWILIO_TOKEN,
    pgserver_at,
    settings_for,
)


@pytest.fixture(scope="session", autouse=True)
def secrets_never_written() -> Iterator[None]:
    """Guarantee 5 over the whole run (tests/support/leaks.py): in-process logs go to the run's
    output as JSON; at the very end (autouse: set up first, torn down last) everything Tollgate
    wrote is searched for every secret used, and a find fails the run."""
    logs.configure("json", stream=leaks.log_stream())
    yield
    found = leaks.findings()
    assert not found, "secrets in what Tollgate wrote:\n" + "\n".join(found[:20])
    print(f"\nsecret search: nothing found; {leaks.summary()}")
    shutil.rmtree(leaks.OUTPUT, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A migrated database on a real Postgres: TOLLGATE_TEST_DATABASE_URL, or pgserver in a temp dir."""
    external = os.environ.get("TOLLGATE_TEST_DATABASE_URL")
    if external:
        migrate.upgrade(external)
        yield external
        leaks.dump_database(external, "suite")
        return
    with tempfile.TemporaryDirectory(prefix="tollgate-test-pg-") as directory:
        server = pgserver_at(Path(directory))
        url = server.get_uri()
        migrate.upgrade(url)
        yield url
        leaks.dump_database(url, "suite")
        server.cleanup()


@pytest.fixture()
def sql(pg_url: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit psycopg connection, as a user with psql would have."""
    with psycopg.connect(pg_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture(scope="session")
def stripe_emulator() -> Iterator[tuple[str, Any]]:
    app = create_stripe_emulator(STRIPE_SECRET)
    with serve_asgi(app) as base_url:
        yield base_url, app


@pytest.fixture(scope="session")
def stripe_hosts() -> Iterator[dict[str, tuple[str, Any]]]:
    """Emulators of files.stripe.com and meter-events.stripe.com, by route prefix (one app each, so a
    test sees which host got what); nothing a test sends through Tollgate reaches the real Stripe."""
    with contextlib.ExitStack() as stack:
        served = {}
        for prefix in ("files", "meter_events"):
            app = create_stripe_emulator(STRIPE_SECRET)
            served[prefix] = (stack.enter_context(serve_asgi(app)), app)
        yield served


@pytest.fixture(scope="session")
def twilio_emulator() -> Iterator[tuple[str, Any]]:
    app = create_twilio_emulator(TWILIO_ACCOUNT, TWILIO_TOKEN)
    with serve_asgi(app) as base_url:
        yield base_url, app


@pytest.fixture(scope="session")
def twilio_products() -> Iterator[dict[str, tuple[str, Any]]]:
    """Emulators of Twilio's product hosts (lookups, verify, messaging, pricing), by route prefix."""
    with contextlib.ExitStack() as stack:
        served = {}
        for product in TWILIO_PRODUCTS:
            app = create_twilio_product_emulator(product, TWILIO_ACCOUNT, TWILIO_TOKEN)
            served[product] = (stack.enter_context(serve_asgi(app)), app)
        yield served


@pytest.fixture(scope="session")
def resend_emulator() -> Iterator[tuple[str, Any]]:
    app = create_resend_emulator(RESEND_SECRET)
    with serve_asgi(app) as base_url:
        yield base_url, app


@pytest.fixture(scope="session")
def proxy_url(pg_url: str, stripe_emulator, stripe_hosts, twilio_emulator, twilio_products,
              resend_emulator) -> Iterator[str]:
    upstreams = {"stripe": stripe_emulator[0], "twilio": twilio_emulator[0], "resend": resend_emulator[0],
                 **{f"stripe_{prefix}": url for prefix, (url, _) in stripe_hosts.items()},
                 **{f"twilio_{product}": url for product, (url, _) in twilio_products.items()}}
    runtime = bootstrap.runtime(settings_for(pg_url, upstreams))
    with serve_asgi(create_app(runtime), lifespan="on") as base_url:
        yield base_url


@pytest.fixture()
def admin(proxy_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy_url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10) as client:
        yield client


@pytest.fixture()
def make_key(admin: httpx.Client) -> Callable[..., dict[str, Any]]:
    """Create a key through the admin API; returns the 201 body (with the one-time ``key``)."""

    def make(policy: dict[str, Any], vendor: str = "stripe", secret: str = STRIPE_SECRET,
             **extra: Any) -> dict[str, Any]:
        response = admin.post("/admin/v1/keys",
                              json={"vendor": vendor, "policy": policy, "upstream_secret": secret, **extra})
        assert response.status_code == 201, response.text
        return response.json()

    return make


@pytest.fixture()
def run_id() -> str:
    return f"run_{uuid.uuid4().hex}"


@pytest.fixture()
def own_postgres() -> Iterator[tuple[str, Callable[[], None], Callable[[], Any]]]:
    """A Postgres of the test's own, so it can be stopped without harming the others:
    yields (url, stop, start); the URL stays the same across a stop and a start."""
    with tempfile.TemporaryDirectory(prefix="tollgate-own-pg-") as directory:
        server = pgserver_at(Path(directory))
        url = server.get_uri()
        migrate.upgrade(url)
        yield url, server.cleanup, lambda: pgserver_at(Path(directory))
        with contextlib.suppress(psycopg.OperationalError):  # down only if the test failed while it was stopped
            leaks.dump_database(url, "own")
        server.cleanup()


@pytest.fixture()
def scratch_db(pg_url: str) -> Iterator[str]:
    """An empty database of its own on the suite's Postgres (not migrated)."""
    with database_of_its_own(pg_url, "scratch") as url:
        yield url
