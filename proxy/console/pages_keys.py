"""Keys: the list with spend bars and last call, one key (its delegation chain and children),
create (secret shown once), revoke, attach a policy."""

from __future__ import annotations

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
        Route("/keys/{key_id}", page(key_page), methods=["GET"], name="key"),
        Route("/keys/{key_id}/revoke", page(confirm_revoke), methods=["GET"], name="confirm_revoke"),
        Route("/keys/{key_id}/revoke", page(revoke_key), methods=["POST"], name="revoke_key"),
    ]


KEYS_PER_PAGE = 50
CHOICES = 100  # the newest policies offered by name on the create form (any other can be typed)


async def keys_page(console: Console, request: Request) -> Response:
    """A page of keys, newest first, with their spend bars: the page and its spend are two
    statements whatever the number of keys (the page asked for each key's spend once, and
    at 10,000 keys starved the admin pool)."""
    cursor = request.query_params.get("cursor") or None
    page = await console.client.keys(cursor, KEYS_PER_PAGE, include="spend")
    rows = [{**key, "bars": render.spend_bars(key["spend"], key["last_run_id"])} for key in page.data]
    return console.render(request, "keys.html", keys=rows, next=page.next, paged=cursor is not None)


async def new_key_page(console: Console, request: Request, status: int = 200, error: AdminError | None = None,
                       form: dict[str, str] | None = None) -> Response:
    policies = await console.client.policies(limit=CHOICES)
    return console.render(request, "key_new.html", status=status, vendors=console.vendors, policies=policies.data,
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


async def key_page(console: Console, request: Request) -> Response:
    """One key: who delegated it (its parent, depth and bound run, proxy/delegation.py) and the keys
    delegated from it, which its revocation revokes too."""
    key = await console.client.key(request.path_params["key_id"])
    parent = await console.client.key(key["parent_key_id"]) if key.get("parent_key_id") else None
    return console.render(request, "key.html", key=key, parent=parent)


async def confirm_revoke(console: Console, request: Request) -> Response:
    key = await console.client.key(request.path_params["key_id"])
    return console.render(request, "key_revoke.html", key=key)


async def revoke_key(console: Console, request: Request) -> Response:
    key_id = request.path_params["key_id"]
    revoked = await console.client.post(f"/keys/{segment(key_id)}/revoke")
    request.state.session.flash(f"Revoked {revoked['id']}: its next request is refused.")
    return console.redirect(request, "keys")

