"""Approvals: a call held for a human, bound to the exact request.

The gate creates and consumes approvals (one round trip, under a row lock); this module
computes the request fingerprint it matches on, and gives operators list/approve/deny.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Label, Select, and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import pages
from proxy.errors import Conflict, NotFound
from proxy.redact import mask_strings, redact_content
from proxy.schema import approvals
from vendors.base import ParsedRequest


def acts_on(account: str | None, headers: Mapping[str, str], decision_headers: frozenset[str]) -> dict[str, Any]:
    """What the call acts on beyond its path: the account (the agent's, or the one its key is
    bound to and Tollgate sets itself) and the adapter's decision headers as sent."""
    return {"account": account, "headers": {name: headers[name] for name in sorted(decision_headers & headers.keys())}}


def described_request(request: ParsedRequest, acting_on: Mapping[str, Any], known: tuple[str, ...] = ()
                      ) -> dict[str, Any]:
    """What the approver is shown, as the ``request`` column holds it: the parameters that
    would be sent, the account and the headers that decide what they act on (no credentials)."""
    described: dict[str, Any] = mask_strings({"params": redact_content(request.params), **acting_on}, known)
    return described


def fingerprint(key_id: str, request: ParsedRequest, acting_on: Mapping[str, Any] | None = None) -> str:
    """Same key, method, path, parameters (in any order), account and decision headers -> same
    fingerprint: an approval covers exactly what will be sent, so a retry that names another
    connected account (or API version) is another call and asks again.

    The Idempotency-Key header is left out on purpose: SDKs draw a new one per call, and
    the agent's retry after approval is a new call with the same content.
    """
    parts: list[Any] = [key_id, request.method, request.path, request.params]
    if request.host is not None:  # another host of the vendor is another call (main-host prints unchanged)
        parts.append(request.host)
    if acting_on and (acting_on.get("account") or acting_on.get("headers")):  # as above: prints without unchanged
        parts.append({"acts_on": acting_on})
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _described(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for name in ("created_at", "expires_at", "decided_at"):
        out[name] = out[name].isoformat() if out[name] else None
    out["predicted_usd"] = str(out["predicted_usd"]) if out["predicted_usd"] is not None else None
    return out


def _visible_status() -> Label[str]:
    """'pending' past its expiry reads as 'expired': nothing needs to sweep the table."""
    return case(
        (and_(approvals.c.status == "pending", approvals.c.expires_at <= func.now()), "expired"),
        else_=approvals.c.status,
    ).label("status")


def _query() -> Select[Any]:
    columns = [c for c in approvals.c if c.name not in ("status", "fingerprint")]
    return select(*columns, _visible_status())


# Newest first (index approvals_created); the id breaks ties.
APPROVAL_ORDER = pages.Order("approvals", (approvals.c.created_at, approvals.c.id))


async def list_approvals(conn: AsyncConnection, status: str | None = None, key_id: str | None = None,
                         limit: int = pages.DEFAULT_LIMIT, cursor: str | None = None) -> pages.Page:
    query = _query()
    if key_id:
        query = query.where(approvals.c.key_id == key_id)
    if status:
        query = query.where(_visible_status() == status)
    rows, after = APPROVAL_ORDER.cut(list(await conn.execute(APPROVAL_ORDER.window(query, limit, cursor))), limit)
    return pages.Page([_described(r) for r in rows], after)


async def count_pending(conn: AsyncConnection) -> int:
    """Approvals still waiting for a decision (pending and not expired)."""
    found = await conn.scalar(select(func.count()).select_from(approvals).where(
        approvals.c.status == "pending", approvals.c.expires_at > func.now()))
    return int(found or 0)


async def show_approval(conn: AsyncConnection, approval_id: str) -> dict[str, Any]:
    row = (await conn.execute(_query().where(approvals.c.id == approval_id))).first()
    if row is None:
        raise NotFound("unknown_approval", f"No such approval: {approval_id}.")
    return _described(row)


async def decide(conn: AsyncConnection, approval_id: str, approve: bool, by: str | None = None,
                 note: str | None = None) -> dict[str, Any]:
    result = await conn.execute(
        update(approvals)
        .where(approvals.c.id == approval_id, approvals.c.status == "pending", approvals.c.expires_at > func.now())
        .values(status="approved" if approve else "denied", decided_at=func.now(), decided_by=by, note=note)
    )
    if result.rowcount == 0:
        current = await show_approval(conn, approval_id)  # raises NotFound
        raise Conflict("approval_not_pending", f"Approval {approval_id} is {current['status']}, not pending.")
    return await show_approval(conn, approval_id)
