"""A run's story across vendors: the admin API and `tollgate runs show` tell the same timeline,
with running totals against every cap of the policy version that decided each call."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import resend
import stripe

from tests.support.runid import ResendRunClient
from tests.support.tollgate import MASTER_KEY, RESEND_SECRET, policy


def test_a_run_across_stripe_and_resend(proxy_url, make_key, admin, run_id, pg_url, monkeypatch):
    stripe_key = make_key(policy(caps=[{"usd": "50.00", "window": "run"}, {"requests": 100, "window": "day"}]))
    resend_key = make_key({"vendor": "resend", "endpoints": {"allow": ["POST /emails"]}}, vendor="resend",
                          secret=RESEND_SECRET)
    client = stripe.StripeClient(stripe_key["key"], base_addresses={"api": f"{proxy_url}/stripe"},
                                 max_network_retries=0)
    options = {"headers": {"X-Agent-Run-Id": run_id}}
    client.v1.charges.create(params={"amount": 3000, "currency": "usd", "source": "tok_visa"}, options=options)
    with pytest.raises(stripe.PermissionError):
        client.v1.charges.create(params={"amount": 3000, "currency": "usd", "source": "tok_visa"}, options=options)
    monkeypatch.setattr(resend, "api_key", resend_key["key"])
    monkeypatch.setattr(resend, "api_url", f"{proxy_url}/resend")
    monkeypatch.setattr(resend, "default_http_client", ResendRunClient(run_id))
    resend.Emails.send({"from": "a@acme.example", "to": ["b@acme.example"], "subject": "Receipt", "html": "<p>1</p>"})

    story = admin.get(f"/admin/v1/runs/{run_id}").json()
    assert story["vendors"] == ["resend", "stripe"] and story["decisions"] == {"allowed": 2, "blocked": 1}
    calls = [(c["vendor"], c["endpoint"], c["decision"], c["reason"], c["run_total_usd"]) for c in story["calls"]]
    assert calls == [
        ("stripe", "POST /v1/charges", "allowed", None, "30.000000"),
        ("stripe", "POST /v1/charges", "blocked", "cap_exceeded", "30.000000"),
        ("resend", "POST /emails", "allowed", None, "30.000900"),
    ]
    assert story["calls"][1]["caps"] == [
        {"window": "run", "unit": "usd", "limit": "50.00", "used": "30.000000"},
        {"window": "day", "unit": "requests", "limit": "100", "used": "1"},
    ]
    assert admin.get("/admin/v1/runs/no-such-run").status_code == 404

    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(DATABASE_URL=pg_url, TOLLGATE_MASTER_KEY=MASTER_KEY)
    shown = subprocess.run([sys.executable, "-m", "proxy", "runs", "show", run_id], env=env, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert f"run {run_id}: 3 calls, 30.00 USD" in shown.stdout
    assert "blocked (cap_exceeded)" in shown.stdout and "run 30/50" in shown.stdout
    as_json = subprocess.run([sys.executable, "-m", "proxy", "runs", "show", run_id, "--json"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert json.loads(as_json.stdout)["decisions"] == story["decisions"]


def test_export_ndjson_and_opentelemetry(proxy_url, make_key, run_id, pg_url, tmp_path):
    key = make_key(policy())
    client = stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    client.v1.charges.create(params={"amount": 700, "currency": "usd", "source": "tok_visa"},
                             options={"headers": {"X-Agent-Run-Id": run_id}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(DATABASE_URL=pg_url, TOLLGATE_MASTER_KEY=MASTER_KEY)

    def export(fmt: str) -> str:
        out = tmp_path / f"audit.{fmt}"
        done = subprocess.run([sys.executable, "-m", "proxy", "audit", "export", "--since", "2000-01-01",
                               "--format", fmt, "-o", str(out)], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return out.read_text()

    lines = [json.loads(line) for line in export("ndjson").splitlines()]
    [ours] = [row for row in lines if row["agent_run_id"] == run_id]
    assert (ours["endpoint"], ours["cost_usd"], ours["key_id"]) == ("POST /v1/charges", "7.000000", key["id"])

    records = [record for line in export("otlp-json").splitlines()
               for record in json.loads(line)["resourceLogs"][0]["scopeLogs"][0]["logRecords"]]
    [record] = [r for r in records if {"key": "agent_run_id", "value": {"stringValue": run_id}} in r["attributes"]]
    assert record["body"]["stringValue"] == "stripe POST /v1/charges: allowed" and record["severityText"] == "INFO"
    assert int(record["timeUnixNano"]) > 0
