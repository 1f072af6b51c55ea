"""Keys: the list with spend bars and last call, create (secret shown once), revoke, attach a policy."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proxy.console import render
from proxy.console.base import Console, read_form
from proxy.console.client import AdminError, segment


def routes(console: Console) -> list[Route]:
    page = console.page
    return [
        Route("/keys", page(keys_page), methods=["GET"], name="keys"),
        Route("/keys/new", page(new_key_page), methods=["GET"], name="new_key"),
        Route("/keys", page(create_key), methods=["POST"], name="create_key"),
        Route("/keys/{key_id}/revoke", page(confirm_revoke), methods=["GET"], name="confirm_revoke"),
        Route("/keys/{key_id}/revoke", page(revoke_key), methods=["POST"], name="revoke_key"),
    ]


async def _with_spend(console: Console, key: dict[str, Any]) -> dict[str, Any]:
    run_id = key.get("last_run_id")
    spend = await console.client.key_spend(key["id"])
    bars = [b for b in render.spend_bars(spend) if not (b.label == "calls without a run id" and run_id)]
    if run_id and any(c["window"] == "run" for c in spend["caps"]):
        run_spend = await console.client.key_spend(key["id"], run_id)
        bars += [b for b in render.spend_bars(run_spend, run_id) if b.label == "latest run"]
    return {**key, "bars": bars}


async def keys_page(console: Console, request: Request) -> Response:
    keys = await console.client.keys()
    rows = await asyncio.gather(*(_with_spend(console, k) for k in keys))
    return console.render(request, "keys.html", keys=list(reversed(rows)))


async def new_key_page(console: Console, request: Request, status: int = 200, error: AdminError | None = None,
                       form: dict[str, str] | None = None) -> Response:
    policies = await console.client.policies()
    return console.render(request, "key_new.html", status=status, vendors=console.vendors, policies=policies,
                          error=error, form=form or {})


async def create_key(console: Console, request: Request) -> Response:
    form = await read_form(request)
    # Never the secret.
    kept = {k: form.get(k, "") for k in ("vendor", "label", "upstream_account", "policy_id", "policy")}
    body: dict[str, Any] = {"vendor": form.get("vendor", ""), "upstream_secret": form.get("upstream_secret", "")}
    for name in ("label", "upstream_account", "policy_id"):
        if form.get(name, "").strip():
            body[name] = form[name].strip()
    if form.get("policy", "").strip():
        try:
            body["policy"] = json.loads(form["policy"])
        except ValueError as exc:
            error = AdminError(400, "invalid_json", f"The policy is not valid JSON: {exc}.")
            return await new_key_page(console, request, 400, error, kept)
    try:
        created = await console.client.post("/keys", body)
    except AdminError as exc:
        return await new_key_page(console, request, exc.status, exc, kept)
    # Rendered, not redirected: the secret exists only in this one response (sent no-store).
    return console.render(request, "key_created.html", status=201, key=created)


async def confirm_revoke(console: Console, request: Request) -> Response:
    key = await console.client.key(request.path_params["key_id"])
    return console.render(request, "key_revoke.html", key=key)


async def revoke_key(console: Console, request: Request) -> Response:
    key_id = request.path_params["key_id"]
    revoked = await console.client.post(f"/keys/{segment(key_id)}/revoke")
    request.state.session.flash(f"Revoked {revoked['id']}: its next request is refused.")
    return console.redirect(request, "keys")

