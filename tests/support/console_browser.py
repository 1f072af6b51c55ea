"""Helpers for driving the console in a real headless Chromium (Debian's package; Playwright's
own browser downloads do not work here, so its driver is pointed at /usr/bin/chromium)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from proxy import bootstrap, migrate
from proxy.app import create_app
from tests.support.databases import database_of_its_own
from tests.support.servers import serve_asgi
from tests.support.tollgate import settings_for

CHROMIUM = os.environ.get("TOLLGATE_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium stalls on a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
SCREENSHOTS_ENV = "TOLLGATE_CONSOLE_SCREENSHOTS"  # e.g. docs/console: where the README's pictures come from


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium); skipping only the browser tests"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]'); skipping only the browser tests"
    return None


@contextmanager
def own_database(pg_url: str) -> Iterator[str]:
    """A fresh migrated database on the suite's Postgres, so pages show only this test's data."""
    with database_of_its_own(pg_url, "console") as url:
        migrate.upgrade(url)
        yield url


@contextmanager
def tollgate_on(database_url: str, upstreams: dict[str, str]) -> Iterator[str]:
    runtime = bootstrap.runtime(settings_for(database_url, upstreams))
    with serve_asgi(create_app(runtime), lifespan="on") as base_url:
        yield base_url


# Thirty days of earlier traffic for the spend chart (the flows themselves only add today's calls).
SEED_HISTORY = """
INSERT INTO audit_events (ts, request_id, vendor, method, path, endpoint, decision, state, cost_usd, cost_source)
SELECT date_trunc('day', now()) - make_interval(days => d) + interval '9 hours',
       'seed_' || v || '_' || d, v, 'POST', p, 'POST ' || p, 'allowed', 'final',
       round((CASE v WHEN 'stripe' THEN 40 + 35 * sin(d / 3.0) + d
                     WHEN 'twilio' THEN 8 + 6 * cos(d / 2.0)
                     ELSE 3 + 2 * sin(d) END)::numeric, 2), 'parsed'
  FROM generate_series(1, 29) d,
       (VALUES ('stripe', '/v1/charges'), ('twilio', '/2010-04-01/Accounts/AC/Messages.json'),
               ('resend', '/emails')) AS vendors(v, p)
"""


def seed_history(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SEED_HISTORY)
