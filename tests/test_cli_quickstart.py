"""The README's quickstart, run as a new user would: ``tollgate serve`` on the embedded
Postgres, a key made with the CLI, the stripe SDK through the proxy, the audit row
read with SQL on ``tollgate db url``, the key revoked with the CLI, and the embedded Postgres
stopped with ``tollgate db stop`` (checked by its postmaster's PID)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
import stripe

from proxy import migrate
from proxy.bootstrap import ConfigError
from proxy.cli.support import secret_from_env
from tests.support.embedded import data_dir_outside_pytest, exited, postmaster_pid
from tests.support.processes import tollgate_serve
from tests.support.tollgate import MASTER_KEY, STRIPE_SECRET

EXAMPLE_POLICY = Path(__file__).resolve().parent.parent / "policy-schemas" / "examples" / "stripe-quickstart.json"


def tollgate(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "proxy", *args], env=env, capture_output=True, text=True,
                            timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"tollgate {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture()
def embedded_env(stripe_emulator):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_") and k != "DATABASE_URL"}
    with data_dir_outside_pytest("tollgate-quickstart-") as data:
        env.update(TOLLGATE_DATA_DIR=str(data), TOLLGATE_UPSTREAM_STRIPE=stripe_emulator[0],
                   STRIPE_SECRET_KEY=STRIPE_SECRET)
        yield env
        tollgate("db", "stop", "--force", env=env, check=False)  # when the test failed before its own stop


def test_quickstart_on_the_embedded_database(embedded_env):
    data_dir = Path(embedded_env["TOLLGATE_DATA_DIR"])
    with tollgate_serve(embedded_env) as (base, _):
        postmaster = postmaster_pid(data_dir)
        _quickstart(base, embedded_env)
    # Stopped as an operator stops it (tollgate_serve sends SIGTERM), then db stop: every
    # `make test` used to leave this Postgres running.
    stopped = tollgate("db", "stop", env=embedded_env)
    assert exited(postmaster), "Postgres still runs after db stop"
    assert stopped.stdout == f"embedded Postgres in {data_dir / 'pg'} stopped (pid {postmaster})\n"


def _quickstart(base: str, embedded_env: dict[str, str]) -> None:
    assert httpx.get(f"{base}/readyz").json()["status"] == "ready"
    data_dir = Path(embedded_env["TOLLGATE_DATA_DIR"])
    assert (data_dir / "admin-token").stat().st_mode & 0o777 == 0o600
    assert (data_dir / "master.key").stat().st_mode & 0o777 == 0o600

    created = tollgate("keys", "create", "--vendor", "stripe", "--policy", str(EXAMPLE_POLICY),
                       "--upstream-secret-env", "STRIPE_SECRET_KEY", "--label", "billing-agent", "--json",
                       env=embedded_env)
    key = json.loads(created.stdout)
    assert key["key"].startswith("tg_") and STRIPE_SECRET not in created.stdout + created.stderr

    client = stripe.StripeClient(key["key"], base_addresses={"api": f"{base}/stripe"}, max_network_retries=0)
    run_id = str(uuid.uuid4())
    headers = {"headers": {"X-Agent-Run-Id": run_id}}
    charge = client.v1.charges.create(params={"amount": 1200, "currency": "usd", "source": "tok_visa"}, options=headers)
    with pytest.raises(stripe.PermissionError, match=r"over the per-call limit of 50\.00 USD"):
        client.v1.charges.create(params={"amount": 9900, "currency": "usd", "source": "tok_visa"}, options=headers)

    url = tollgate("db", "url", env=embedded_env).stdout.strip()
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT decision, reason, object_id, cost_usd FROM audit_events "
                            "WHERE agent_run_id = %s ORDER BY id", (run_id,)).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [("allowed", None, charge.id), ("blocked", "per_call_limit", None)]

    revoked = tollgate("keys", "revoke", key["id"], env=embedded_env)
    assert f"Revoked {key['id']}" in revoked.stdout
    with pytest.raises(stripe.AuthenticationError, match="revoked"):
        client.v1.charges.create(params={"amount": 100, "currency": "usd", "source": "tok_visa"}, options=headers)

    listed = json.loads(tollgate("keys", "list", "--json", env=embedded_env).stdout)
    assert [(k["id"], k["status"]) for k in listed] == [(key["id"], "revoked")]
    shown = tollgate("keys", "show", key["id"], env=embedded_env).stdout
    assert STRIPE_SECRET not in shown and key["key"] not in shown


def test_cli_against_a_configured_database(pg_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(DATABASE_URL=pg_url, STRIPE_SECRET_KEY=STRIPE_SECRET, TOLLGATE_DATA_DIR=str(tmp_path))
    missing = tollgate("keys", "list", env=env, check=False)
    assert missing.returncode == 2 and "TOLLGATE_MASTER_KEY is required" in missing.stderr

    env["TOLLGATE_MASTER_KEY"] = tollgate("master-key", "new", env=env).stdout.strip()
    assert tollgate("db", "upgrade", env=env).stdout.strip() == f"database at {migrate.head_revision()}"
    assert tollgate("db", "url", env=env).stdout.strip() == pg_url
    assert not (tmp_path / "master.key").exists()  # nothing generated next to a real database

    no_secret = tollgate("keys", "create", "--vendor", "stripe", "--policy", str(EXAMPLE_POLICY),
                         "--upstream-secret-env", "UNSET_VARIABLE", env=env, check=False)
    assert no_secret.returncode == 2 and "UNSET_VARIABLE is empty or not set" in no_secret.stderr
    unknown = tollgate("keys", "revoke", "key_doesnotexist", env=env, check=False)
    assert unknown.returncode == 1 and "No such key: key_doesnotexist" in unknown.stderr


def test_policy_validate_names_each_error_by_pointer(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"vendor": "stripe", "endpoints": {"allow": ["charges"]},
                               "caps": [{"usd": "-5", "window": "fortnight"}]}))
    result = tollgate("policy", "validate", str(bad), env=dict(os.environ), check=False)
    assert result.returncode == 1
    assert f"{bad}: /endpoints/allow/0:" in result.stderr
    assert f"{bad}: /caps/0/window:" in result.stderr
    assert f"{bad}: /caps/0/usd:" in result.stderr
    good = tollgate("policy", "validate", str(EXAMPLE_POLICY), env=dict(os.environ))
    assert good.stdout.splitlines()[0] == f"{EXAMPLE_POLICY}: valid" and good.stderr == ""  # no warning
    assert "  GET /v1/charges/*: 1 operation: GET /v1/charges/{id}" in good.stdout.splitlines()


def test_policy_and_approval_commands(pg_url, tmp_path, proxy_url, stripe_emulator, admin):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(DATABASE_URL=pg_url, TOLLGATE_MASTER_KEY=MASTER_KEY, STRIPE_SECRET_KEY=STRIPE_SECRET)
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"vendor": "stripe", "endpoints": {"allow": ["POST /v1/charges"],
                                                                    "require_approval": ["POST /v1/payouts"]},
                                  "caps": [{"usd": "100", "window": "day"}]}))
    created = tollgate("policy", "create", str(strict), "--name", "payouts-held", env=env).stdout
    policy_id = created.split()[1]
    assert created.startswith(f"Created {policy_id} (stripe) at version 1.")
    updated = tollgate("policy", "update", policy_id, str(strict), env=env).stdout
    assert updated.strip() == f"{policy_id} is now at version 2."
    shown = json.loads(tollgate("policy", "show", policy_id, env=env).stdout)
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert policy_id in tollgate("policy", "list", env=env).stdout

    key = admin.post("/admin/v1/keys", json={"vendor": "stripe", "policy_id": policy_id,
                                             "upstream_secret": STRIPE_SECRET}).json()
    client = stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    with pytest.raises(stripe.PermissionError) as held:
        client.v1.payouts.create(params={"amount": 700, "currency": "usd"})
    approval_id = held.value.json_body["error"]["approval_id"]
    assert approval_id in tollgate("approvals", "list", env=env).stdout
    shown = json.loads(tollgate("approvals", "show", approval_id, env=env).stdout)
    assert shown["request"]["params"] == {"amount": "700", "currency": "usd"} and shown["request"]["account"] is None
    approved = tollgate("approvals", "approve", approval_id, "--by", "ops", env=env).stdout
    assert approved.startswith(f"{approval_id} approved: POST /v1/payouts on account the key's own (headers: "
                               f"stripe-version: {stripe.api_version}; parameters: ")
    assert client.v1.payouts.create(params={"amount": 700, "currency": "usd"}).amount == 700

    spent = json.loads(tollgate("keys", "spend", key["id"], env=env).stdout)
    assert [(c["window"], c["spent_usd"], c["remaining"]) for c in spent["caps"]] == [("day", "7.000000", "93.000000")]
    assert tollgate("reconcile", env=env).stdout.strip() == "0 reservation(s) reconciled."
    again = tollgate("approvals", "deny", approval_id, env=env, check=False)
    assert again.returncode == 1 and f"Approval {approval_id} is used, not pending." in again.stderr


def test_the_upstream_secret_is_read_from_the_named_variable_only(monkeypatch):
    monkeypatch.setenv("TOLLGATE_TEST_SECRET", "sk_test_123")
    assert secret_from_env("TOLLGATE_TEST_SECRET") == "sk_test_123"
    monkeypatch.setenv("TOLLGATE_TEST_SECRET", "")
    with pytest.raises(ConfigError, match="TOLLGATE_TEST_SECRET is empty or not set"):
        secret_from_env("TOLLGATE_TEST_SECRET")
    monkeypatch.delenv("TOLLGATE_TEST_SECRET")
    with pytest.raises(ConfigError, match="TOLLGATE_TEST_SECRET is empty or not set"):
        secret_from_env("TOLLGATE_TEST_SECRET")
