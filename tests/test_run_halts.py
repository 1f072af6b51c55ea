"""Stop conditions and halted runs (issue 18, item 3) through stripe-python against the Stripe
emulator: a run that reaches its key's max_refusals or consecutive_errors is refused run_halted by
every key while other runs go on; max_calls holds exactly across two proxy processes; an operator
stops and resumes one with the CLI, the admin API and the console; the halted_runs view says which
runs are halted and why."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
import stripe

from proxy import halts
from proxy.call import Call, Incoming
from proxy.errors import Refused
from proxy.hotdb import HotDB
from proxy.policy.rules import Stops
from tests.support.processes import tollgate_serve
from tests.support.tollgate import ADMIN_TOKEN, MASTER_KEY, STRIPE_SECRET, audit_rows, policy, settings_for
from tests.test_caps_multiprocess import proxy_env
from tests.test_console import csrf_of, sign_in
from vendors import registry

CHARGE = {"amount": 500, "currency": "usd", "source": "tok_visa"}  # $5.00
SERVER_ERROR = (500, {"type": "api_error", "message": "Stripe broke."})


def client_for(proxy_url: str, key: dict[str, Any]) -> stripe.StripeClient:
    return stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)


def in_run(run_id: str) -> dict[str, Any]:
    return {"headers": {"X-Agent-Run-Id": run_id}}


def charge(client: stripe.StripeClient, run_id: str) -> str:
    return client.v1.charges.create(params=CHARGE, options=in_run(run_id)).id


def refused_code(call: Any) -> str:
    with pytest.raises(stripe.PermissionError) as raised:
        call()
    assert raised.value.http_status == 403
    assert raised.value.headers.get("stripe-should-retry") == "false"  # the SDK must not retry it either
    return raised.value.error.code if raised.value.error else "?"


def test_max_refusals_halts_the_run_for_every_key_and_no_other_run(proxy_url, make_key, sql, run_id):
    stop = {"max_refusals": {"count": 3, "window_s": 300}}
    refunder = make_key(policy(per_call_usd="10.00", stop=stop))
    other_key = make_key(policy())  # no stop conditions of its own: it refuses a halted run all the same
    agent, other = client_for(proxy_url, refunder), client_for(proxy_url, other_key)
    charged = charge(agent, run_id)
    over_limit = {"charge": charged, "amount": 2000}  # $20.00 against a $10.00 per-call limit
    refusals = [refused_code(lambda: agent.v1.refunds.create(params=over_limit, options=in_run(run_id)))
                for _ in range(3)]

    assert refusals == ["per_call_limit"] * 3
    with pytest.raises(stripe.PermissionError) as halted:
        agent.v1.charges.create(params=CHARGE, options=in_run(run_id))
    assert halted.value.error is not None and halted.value.error.code == "run_halted"
    message = str(halted.value)
    assert f"Run {run_id} was halted: max_refusals (3 refusals within 300 s) reached at " in message
    assert f"resume it with `tollgate runs resume {run_id}`" in message
    assert refused_code(lambda: other.v1.charges.create(params=CHARGE, options=in_run(run_id))) == "run_halted"
    assert refused_code(lambda: other.v1.charges.retrieve(charged, options=in_run(run_id))) == "run_halted"
    assert charge(agent, f"{run_id}-next")  # another run of the same key goes on
    assert charge(other, f"{run_id}-other")

    rows = audit_rows(sql, run_id)
    assert [(r["key_id"], r["decision"], r["reason"]) for r in rows] == [
        (refunder["id"], "allowed", None), *[(refunder["id"], "blocked", "per_call_limit")] * 3,
        (refunder["id"], "blocked", "run_halted"), (other_key["id"], "blocked", "run_halted"),
        (other_key["id"], "blocked", "run_halted")]
    assert [r["endpoint"] for r in rows[-3:]] == ["POST /v1/charges", "POST /v1/charges", "GET /v1/charges/{id}"]
    assert all(r["message"].startswith(f"Run {run_id} was halted: max_refusals") for r in rows[-3:])
    [view] = sql.execute("SELECT * FROM halted_runs WHERE agent_run_id = %s", (run_id,)).fetchall()
    assert (view["condition"], view["detail"], view["key_id"]) == ("max_refusals", "3 refusals within 300 s",
                                                                  refunder["id"])


def test_consecutive_upstream_errors_halt_the_run_and_a_success_breaks_the_streak(
        proxy_url, make_key, sql, run_id, stripe_emulator):
    agent = client_for(proxy_url, make_key(policy(stop={"consecutive_errors": 3})))
    emulator = stripe_emulator[1].state

    def failing() -> None:
        emulator.fail_next = SERVER_ERROR
        with pytest.raises(stripe.APIError) as raised:
            agent.v1.charges.create(params=CHARGE, options=in_run(run_id))
        assert raised.value.http_status == 500

    failing()
    failing()
    charge(agent, run_id)  # the vendor answers again: the streak starts over
    failing()
    failing()
    failing()
    posts = sum(1 for r in emulator.received if r.method == "POST")
    assert refused_code(lambda: agent.v1.charges.create(params=CHARGE, options=in_run(run_id))) == "run_halted"
    assert sum(1 for r in emulator.received if r.method == "POST") == posts  # the halted call never left

    rows = audit_rows(sql, run_id)
    assert [r["decision"] for r in rows] == ["error", "error", "allowed", "error", "error", "error", "blocked"]
    assert rows[-1]["message"].startswith(
        f"Run {run_id} was halted: consecutive_errors (3 upstream errors in a row) reached at ")


def test_max_calls_halts_the_call_past_the_limit(proxy_url, make_key, sql, run_id):
    agent = client_for(proxy_url, make_key(policy(stop={"max_calls": 3})))
    for _ in range(3):
        charge(agent, run_id)
    assert refused_code(lambda: agent.v1.charges.create(params=CHARGE, options=in_run(run_id))) == "run_halted"
    rows = audit_rows(sql, run_id)
    assert [r["decision"] for r in rows] == ["allowed"] * 3 + ["blocked"]
    assert "max_calls (more than 3 calls) reached at" in rows[-1]["message"]


def test_calls_without_a_run_id_are_never_counted(proxy_url, make_key, sql):
    key = make_key(policy(stop={"max_calls": 1}))
    agent = client_for(proxy_url, key)
    for _ in range(3):
        agent.v1.charges.create(params=CHARGE)
    rows = sql.execute("SELECT decision FROM audit_events WHERE key_id = %s", (key["id"],)).fetchall()
    assert [r["decision"] for r in rows] == ["allowed"] * 3  # max_calls 1 counts only calls with a run id


def cli(pg_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(DATABASE_URL=pg_url, TOLLGATE_MASTER_KEY=MASTER_KEY)
    return subprocess.run([sys.executable, "-m", "proxy", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_an_operator_stops_and_resumes_a_run_with_the_cli(proxy_url, make_key, sql, run_id, pg_url):
    agent = client_for(proxy_url, make_key(policy()))
    charge(agent, run_id)
    stopped = cli(pg_url, "runs", "stop", run_id, "--reason", "refund loop on ticket 4411")
    assert stopped.returncode == 0, stopped.stderr
    assert f"Run {run_id} was halted: stopped by an operator at " in stopped.stdout

    with pytest.raises(stripe.PermissionError) as halted:
        agent.v1.charges.create(params=CHARGE, options=in_run(run_id))
    assert "(refund loop on ticket 4411)" in str(halted.value)
    shown = cli(pg_url, "runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert f"HALTED: Run {run_id} was halted: stopped by an operator" in shown.stdout

    resumed = cli(pg_url, "runs", "resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    charge(agent, run_id)
    again = cli(pg_url, "runs", "resume", run_id)
    assert again.returncode == 1 and f"Run {run_id} is not halted." in again.stderr
    assert [r["reason"] for r in audit_rows(sql, run_id)] == [None, "run_halted", None]
    assert sql.execute("SELECT count(*) AS n FROM halted_runs WHERE agent_run_id = %s", (run_id,)).fetchone() == {
        "n": 0}


def halted_run_ids(admin: httpx.Client) -> list[str]:
    """Every page of GET /admin/v1/halted-runs."""
    found, cursor = [], None
    while True:
        page = admin.get("/admin/v1/halted-runs", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        found += [run["agent_run_id"] for run in page.json()["data"]]
        if not (cursor := page.json()["next"]):
            return found


def test_an_operator_stops_and_resumes_a_run_with_the_admin_api(proxy_url, make_key, admin, run_id):
    agent = client_for(proxy_url, make_key(policy(stop={"max_calls": 2})))
    stopped = admin.post(f"/admin/v1/runs/{run_id}/stop", json={"reason": "before it starts"})
    assert stopped.status_code == 200, stopped.text  # a run can be stopped before its first call
    assert stopped.json()["halted"] is True and stopped.json()["condition"] == "operator"
    assert refused_code(lambda: agent.v1.charges.create(params=CHARGE, options=in_run(run_id))) == "run_halted"
    story = admin.get(f"/admin/v1/runs/{run_id}").json()
    assert story["halt"]["halted"] and story["halt"]["detail"] == "before it starts"
    assert run_id in halted_run_ids(admin)

    resumed = admin.post(f"/admin/v1/runs/{run_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["halted"] is False
    assert resumed.json()["calls_since_resume"] == 0  # max_calls counts afresh from the resume
    charge(agent, run_id)
    charge(agent, run_id)
    assert refused_code(lambda: agent.v1.charges.create(params=CHARGE, options=in_run(run_id))) == "run_halted"
    assert admin.get(f"/admin/v1/runs/{run_id}").json()["halt"]["condition"] == "max_calls"

    again = admin.post(f"/admin/v1/runs/{run_id}/stop", json={"reason": "too late"})
    assert again.json()["condition"] == "max_calls"  # the first halt stands, and says so
    assert admin.post(f"/admin/v1/runs/{run_id}/resume").status_code == 200
    assert run_id not in halted_run_ids(admin)
    assert admin.post(f"/admin/v1/runs/{run_id}/resume").json()["error"]["code"] == "run_not_halted"
    assert admin.post("/admin/v1/runs/never-seen/resume").status_code == 404
    assert admin.post("/admin/v1/runs/x/stop", json={"reason": 7}).status_code == 400


def test_the_console_run_page_shows_the_halt_and_stops_and_resumes(proxy_url, make_key, run_id):
    agent = client_for(proxy_url, make_key(policy()))
    charge(agent, run_id)
    with httpx.Client(base_url=proxy_url, timeout=10) as browser:
        assert sign_in(browser).status_code == 303
        page = browser.get(f"/console/runs/{run_id}")
        assert page.status_code == 200 and "Stop this run" in page.text
        stopped = browser.post(f"/console/runs/{run_id}/stop", data={"csrf": csrf_of(page.text),
                                                                     "reason": "looping"})
        assert stopped.status_code == 303
        page = browser.get(f"/console/runs/{run_id}")
        assert "was halted: stopped by an operator" in page.text and "(looping)" in page.text
        halted_list = browser.get("/console/runs").text.split("<h2>Recent runs</h2>")[0]
        assert f">{run_id}</a> <code>operator</code>" in halted_list
        assert refused_code(lambda: agent.v1.charges.create(params=CHARGE, options=in_run(run_id))) == "run_halted"
        resumed = browser.post(f"/console/runs/{run_id}/resume", data={"csrf": csrf_of(page.text)})
        assert resumed.status_code == 303
        assert "Stop this run" in browser.get(f"/console/runs/{run_id}").text
    charge(agent, run_id)


MAX_CALLS = 25
RACERS = 80


def test_max_calls_across_two_processes_forwards_exactly_n(pg_url, stripe_emulator, sql, run_id):
    env = proxy_env(pg_url, stripe_emulator[0])
    with tollgate_serve(env) as (first, _), tollgate_serve(env) as (second, _):
        key = httpx.post(f"{first}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, json={
            "vendor": "stripe", "upstream_secret": STRIPE_SECRET,
            "policy": policy(stop={"max_calls": MAX_CALLS})}).json()
        responses = asyncio.run(race([first, second], key["key"], run_id))

    assert sorted({r.status_code for r in responses}) == [200, 403]
    assert sum(r.status_code == 200 for r in responses) == MAX_CALLS
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 403} == {"run_halted"}
    forwarded = [r for r in stripe_emulator[1].state.received
                 if r.headers.get("idempotency-key", "").startswith(f"{run_id}-")]
    assert len(forwarded) == MAX_CALLS  # what the vendor saw, not only what the proxy says
    decisions = sql.execute("SELECT decision, count(*) AS n FROM audit_events WHERE agent_run_id = %s "
                            "GROUP BY decision ORDER BY decision", (run_id,)).fetchall()
    assert decisions == [{"decision": "allowed", "n": MAX_CALLS}, {"decision": "blocked", "n": RACERS - MAX_CALLS}]
    state = sql.execute("SELECT calls, halted_by FROM run_state WHERE run_id = %s", (run_id,)).fetchone()
    assert state == {"calls": RACERS, "halted_by": "max_calls"}


async def race(bases: list[str], token: str, run_id: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=RACERS)) as client:
        async def one(i: int) -> httpx.Response:
            return await client.post(
                f"{bases[i % 2]}/stripe/v1/charges", content=b"amount=100&currency=usd&source=tok_visa",
                headers={"authorization": f"Bearer {token}", "x-agent-run-id": run_id,
                         "content-type": "application/x-www-form-urlencoded", "idempotency-key": f"{run_id}-{i}"})
        return await asyncio.gather(*(one(i) for i in range(RACERS)))


async def test_concurrent_calls_are_counted_together_each_with_a_count_of_its_own(pg_url, sql, run_id):
    """Concurrent calls with run ids are counted in one statement (one transaction, not one
    each: bench/ab.py measured 2.0 transactions per call at c=8 against 0.9 without run ids),
    and each call still gets its own count: of 10 concurrent calls with max_calls 7, exactly 3
    are refused, and the other runs of the batch are counted once per call."""
    hot = await HotDB.open(pg_url, settings_for(pg_url, {}))
    try:
        counter = halts.RunCounter(hot)
        stripe_adapter = registry.load().get("stripe")
        others = [f"{run_id}_other{n}" for n in range(3)]

        def call_in(run: str) -> Call:
            return Call(Incoming("stripe", stripe_adapter, "POST", b"/v1/charges", b"", None), run_id=run)

        answers = await asyncio.gather(*(counter.enter(call_in(r), "key_batch", Stops(max_calls=7))
                                         for r in [run_id] * 10 + others * 2), return_exceptions=True)
    finally:
        await hot.close()
    refused = [a for a in answers if a is not None]
    assert len(refused) == 3 and all(isinstance(a, Refused) and a.reason == "run_halted" for a in refused)
    assert all(a is None for a in answers[10:])
    rows = sql.execute("SELECT run_id, calls, xmin::text AS xmin FROM run_state WHERE run_id = ANY(%s)",
                       (others,)).fetchall()
    assert sorted(r["calls"] for r in rows) == [2, 2, 2]
    assert len({r["xmin"] for r in rows}) == 1  # written by one transaction
