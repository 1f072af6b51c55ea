"""What happened and what waits: the overview with the 30-day chart, live calls, runs (stopped and
resumed by hand from their page), approvals."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proxy import pricetables, redact
from proxy.console import render
from proxy.console.base import Console, read_form
from proxy.console.client import segment

DECISIONS = ("allowed", "blocked", "shadow_blocked", "approval_required", "error")
LIVE_ROWS = 50
APPROVALS_PER_PAGE = 50
CHOICES = 100  # the newest keys offered by name in a filter
HALTED_SHOWN = 50  # the latest halts on the runs page; SQL's halted_runs view has them all


def routes(console: Console) -> list[Route]:
    page = console.page
    return [
        Route("/", page(overview), methods=["GET"], name="overview"),
        Route("/calls", page(calls), methods=["GET"], name="calls"),
        Route("/runs", page(runs), methods=["GET"], name="runs"),
        Route("/runs/{run_id}", page(run), methods=["GET"], name="run"),
        Route("/runs/{run_id}/{action:str}", page(halt), methods=["POST"], name="halt_run"),
        Route("/approvals", page(approvals), methods=["GET"], name="approvals"),
        Route("/approvals/{approval_id}/{verdict:str}", page(decide), methods=["POST"], name="decide"),
    ]


async def overview(console: Console, request: Request) -> Response:
    daily, counts = await asyncio.gather(console.client.daily_spend(30), console.client.counts())
    # How old each price table is (this process's, in memory): every USD figure below rests on them.
    prices = [{**table, "age": pricetables.human_age(table["age_s"])} for table in pricetables.describe(float("inf"))]
    return console.render(request, "overview.html", chart=render.spend_chart(daily, console.colours, 30),
                          vendors=console.vendors, active_keys=counts["keys"]["active"],
                          total_keys=counts["keys"]["total"], pending=counts["approvals"]["pending"], prices=prices)


def _call_filters(console: Console, request: Request) -> dict[str, str]:
    params = request.query_params
    return {
        "vendor": params.get("vendor", "") if params.get("vendor") in console.vendors else "",
        "decision": params.get("decision", "") if params.get("decision") in DECISIONS else "",
        "key_id": params.get("key_id", "").strip()[:100],
    }


async def calls(console: Console, request: Request) -> Response:
    """The newest audit rows, or with ?cursor= the older ones after a page (not refreshed);
    ?partial=1 returns only the rows, for the page's refresh script."""
    filters = _call_filters(console, request)
    cursor = request.query_params.get("cursor") or None
    page = await console.client.audit(cursor, limit=LIVE_ROWS, **filters)
    if request.query_params.get("partial") == "1":
        return console.render(request, "_calls_rows.html", rows=page.data)
    keys = await console.client.keys(limit=CHOICES)  # offered by name in the key filter; any id can be typed
    return console.render(request, "calls.html", rows=page.data, filters=filters, vendors=console.vendors,
                          decisions=DECISIONS, keys=keys.data, next=page.next, paged=cursor is not None,
                          params={k: v for k, v in filters.items() if v})


async def runs(console: Console, request: Request) -> Response:
    wanted = request.query_params.get("run_id", "").strip()
    if wanted:
        return console.redirect(request, "run", run_id=wanted)
    recent: dict[str, dict[str, Any]] = {}
    for row in (await console.client.audit(limit=500)).data:
        run_id = row["agent_run_id"]
        if run_id and run_id not in recent and len(recent) < 20:
            recent[run_id] = {"run_id": run_id, "last_ts": row["ts"], "vendor": row["vendor"]}
    halted = await console.client.halted_runs(limit=HALTED_SHOWN)
    return console.render(request, "runs.html", recent=list(recent.values()), halted=halted.data,
                          more_halted=halted.next is not None)


async def run(console: Console, request: Request) -> Response:
    story = await console.client.run(request.path_params["run_id"])
    for call in story["calls"]:
        call["bars"] = render.story_bars(call["caps"])
    return console.render(request, "run.html", story=story)


async def halt(console: Console, request: Request) -> Response:
    """Stop or resume a run (proxy/halts.py): every key refuses a stopped run's calls."""
    action, run_id = request.path_params["action"], request.path_params["run_id"]
    if action not in ("stop", "resume"):
        return console.render(request, "error.html", status=404, title="Not found", message="No such action.")
    form = await read_form(request)
    body = {"reason": form["reason"].strip()[:500]} if action == "stop" and form.get("reason", "").strip() else {}
    done = await console.client.post(f"/runs/{segment(run_id)}/{action}", body)
    request.state.session.flash(done["message"] if done["halted"] else
                                f"Run {run_id} resumed: its next call is judged again.")
    return console.redirect(request, "run", run_id=run_id)


def _shown(approval: dict[str, Any]) -> dict[str, Any]:
    """What exactly would be sent, with message content and anything credential-shaped redacted."""
    request = approval.get("request")
    safe = redact.mask_strings(redact.redact_content(request)) if request is not None else None
    return {**approval, "request": safe}


async def approvals(console: Console, request: Request) -> Response:
    """A page of pending approvals (?cursor= for the next), and the latest decided ones."""
    cursor = request.query_params.get("cursor") or None
    pending, everything = await asyncio.gather(console.client.approvals("pending", cursor, APPROVALS_PER_PAGE),
                                               console.client.approvals(limit=100))
    decided = [a for a in everything.data if a["status"] != "pending"][:20]
    return console.render(request, "approvals.html", pending=[_shown(a) for a in pending.data],
                          decided=[_shown(a) for a in decided], next=pending.next, paged=cursor is not None)


async def decide(console: Console, request: Request) -> Response:
    verdict = request.path_params["verdict"]
    if verdict not in ("approve", "deny"):
        return console.render(request, "error.html", status=404, title="Not found", message="No such action.")
    form = await read_form(request)
    body = {"by": "console"}
    if form.get("note", "").strip():
        body["note"] = form["note"].strip()[:500]
    approval_id = request.path_params["approval_id"]
    decided = await console.client.post(f"/approvals/{segment(approval_id)}/{verdict}", body)
    outcome = ("approved: the agent's identical retry passes once" if verdict == "approve"
               else "denied: the identical retry is refused")
    request.state.session.flash(f"{decided['id']} {outcome}.")
    return console.redirect(request, "approvals")
