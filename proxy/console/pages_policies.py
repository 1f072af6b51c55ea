"""Policies: list and create, versions side by side, a new version with live validation, attach to a key."""

from __future__ import annotations

import asyncio
import difflib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proxy.console import render
from proxy.console.base import Console, read_form
from proxy.console.client import AdminError, segment


def routes(console: Console) -> list[Route]:
    page = console.page
    return [
        Route("/policies", page(policies_page), methods=["GET"], name="policies"),
        Route("/policies", page(create_policy), methods=["POST"], name="create_policy"),
        Route("/policies/validate", page(validate), methods=["POST"], name="validate_policy"),
        Route("/policies/{policy_id}", page(policy_page), methods=["GET"], name="policy"),
        Route("/policies/{policy_id}/versions", page(add_version), methods=["POST"], name="add_version"),
        Route("/policies/{policy_id}/attach", page(attach), methods=["POST"], name="attach_policy"),
    ]


POLICIES_PER_PAGE = 50
CHOICES = 100


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise AdminError(400, "invalid_json", f"Not valid JSON: {exc}.") from None


async def policies_page(console: Console, request: Request, status: int = 200, error: AdminError | None = None,
                        draft: str = "", name: str = "") -> Response:
    cursor = request.query_params.get("cursor") or None
    found = await console.client.policies(cursor, POLICIES_PER_PAGE)
    return console.render(request, "policies.html", status=status, policies=found.data, error=error,
                          draft=draft, name=name, next=found.next, paged=cursor is not None)


async def create_policy(console: Console, request: Request) -> Response:
    form = await read_form(request)
    text, name = form.get("document", ""), form.get("name", "").strip()
    try:
        body: dict[str, Any] = {"document": _parse(text)}
        if name:
            body["name"] = name
        created = await console.client.post("/policies", body)
    except AdminError as exc:
        return await policies_page(console, request, exc.status, exc, text, name)
    request.state.session.flash(f"Created {created['id']} (v1).")
    return console.redirect(request, "policy", policy_id=created["id"])


def side_by_side(left: Any, right: Any) -> list[tuple[str, str, str]]:
    """Rows of (left line, right line, kind) with kind 'same', 'changed', 'added' or 'removed'."""
    a, b = render.pretty_json(left).splitlines(), render.pretty_json(right).splitlines()
    rows: list[tuple[str, str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            rows += [(a[i], b[j], "same") for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
            continue
        olds, news = a[i1:i2], b[j1:j2]
        for k in range(max(len(olds), len(news))):
            old, new = (olds[k] if k < len(olds) else ""), (news[k] if k < len(news) else "")
            rows.append((old, new, "changed" if old and new else ("removed" if old else "added")))
    return rows


def _version(policy: dict[str, Any], raw: str | None, default: int) -> dict[str, Any]:
    by_number: dict[int, dict[str, Any]] = {v["version"]: v for v in policy["versions"]}
    try:
        return by_number[int(raw)] if raw else by_number[default]
    except (KeyError, ValueError):
        return by_number[default]


async def policy_page(console: Console, request: Request, status: int = 200, error: AdminError | None = None,
                      draft: str | None = None) -> Response:
    policy = await console.client.policy(request.path_params["policy_id"])
    current = policy["current_version"]
    left = _version(policy, request.query_params.get("left"), max(1, current - 1))
    right = _version(policy, request.query_params.get("right"), current)
    # The newest keys on it, and the newest of its vendor's offered for attaching (any id can be typed).
    attached, vendor_keys = await asyncio.gather(console.client.keys(limit=CHOICES, policy_id=policy["id"]),
                                                 console.client.keys(limit=CHOICES, vendor=policy["vendor"]))
    if draft is None:
        draft = render.pretty_json(policy["versions"][-1]["document"])
    return console.render(request, "policy.html", status=status, policy=policy, left=left, right=right,
                          diff=side_by_side(left["document"], right["document"]), error=error, draft=draft,
                          attached=attached.data, more_attached=attached.next is not None,
                          others=[k for k in vendor_keys.data if k["policy_id"] != policy["id"]])


async def add_version(console: Console, request: Request) -> Response:
    form = await read_form(request)
    policy_id = request.path_params["policy_id"]
    text = form.get("document", "")
    try:
        updated = await console.client.post(f"/policies/{segment(policy_id)}/versions", {"document": _parse(text)})
    except AdminError as exc:
        if exc.status == 404:
            raise
        return await policy_page(console, request, exc.status, exc, text)
    request.state.session.flash(f"{policy_id} is now at v{updated['current_version']}; "
                                "every key on it follows from its next request.")
    return console.redirect(request, "policy", policy_id=policy_id)


async def validate(console: Console, request: Request) -> Response:
    """For the editor's live checks: the admin API's validation result as JSON."""
    form = await read_form(request)
    try:
        document = json.loads(form.get("document", ""))
    except ValueError as exc:
        return JSONResponse({"valid": False, "errors": [{"pointer": "", "reason": f"Not valid JSON: {exc}"}]})
    return JSONResponse(await console.client.post("/policies/validate", document))


async def attach(console: Console, request: Request) -> Response:
    form = await read_form(request)
    policy_id, key_id = request.path_params["policy_id"], form.get("key_id", "")
    key = await console.client.post(f"/keys/{segment(key_id)}/policy", {"policy_id": policy_id})
    request.state.session.flash(f"{key['id']} now follows {key['policy_id']} v{key['policy_version']}, "
                                "from its next request.")
    return console.redirect(request, "policy", policy_id=policy_id)
