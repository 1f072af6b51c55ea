"""Webhook subscriptions and their deliveries, as the admin API, the CLI and the console see them.

The signing secret is returned once, by ``create``; nothing else ever shows it. A Slack
incoming webhook's URL is itself a credential (its path is the token), so the whole URL is
sealed with the secret under the master key (as upstream secrets are), and lists, logs and
the ``url`` column only have its scheme, host and first path segment.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import pages
from proxy.alerts import events, signing
from proxy.errors import InvalidInput, NotFound
from proxy.schema import alert_attempts, alert_deliveries, alert_outbox, alert_subscriptions
from proxy.secretbox import SecretBox

FORMATS = ("json", "slack")
DELIVERY_STATUSES = ("pending", "delivered", "failed", "cancelled")
DELIVERY_ORDER = pages.Order("alert_deliveries", (alert_deliveries.c.created_at, alert_deliveries.c.id))


def secret_context(subscription_id: str) -> str:
    """What the sealed secrets are bound to: a ciphertext moved to another row does not open."""
    return f"alert-subscription:{subscription_id}"


@dataclass(frozen=True)
class Sealed:
    """What a subscription keeps under the master key: where to send, and what to sign with."""

    url: str
    secret: str

    def seal(self, box: SecretBox, subscription_id: str) -> bytes:
        return box.seal(json.dumps({"url": self.url, "secret": self.secret}), secret_context(subscription_id))

    @classmethod
    def open(cls, box: SecretBox, subscription_id: str, sealed: bytes) -> Sealed:
        opened = json.loads(box.open(sealed, secret_context(subscription_id)))
        return cls(opened["url"], opened["secret"])


def shown_url(url: str) -> str:
    """Scheme, host and the first path segment: enough to tell receivers apart, never a token."""
    parts = urlsplit(url)
    first, _, rest = parts.path.lstrip("/").partition("/")
    path = f"/{first}" + ("/..." if rest or parts.query else "")
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}{path}"


def _checked_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise InvalidInput("invalid_url", "The webhook URL cannot be read.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise InvalidInput("invalid_url", "The webhook URL must be http(s)://host/... without user or password.")
    if len(url) > 2048 or any(ord(c) < 33 for c in url):
        raise InvalidInput("invalid_url", "The webhook URL must be at most 2048 characters, with no spaces.")
    return url


def _described(row: Any) -> dict[str, Any]:
    return {"id": row.id, "url": row.url, "events": list(row.events), "format": row.format,
            "created_at": row.created_at, "removed_at": row.removed_at}


async def create(conn: AsyncConnection, box: SecretBox, url: str, filters: Sequence[str],
                 fmt: str = "json") -> dict[str, Any]:
    """A new subscription, with its signing ``secret``: the only time it is shown."""
    if fmt not in FORMATS:
        raise InvalidInput("invalid_format", f"format must be one of {', '.join(FORMATS)}.")
    subscription_id = "whk_" + secrets.token_hex(8)
    kept = Sealed(_checked_url(url), signing.new_secret())
    row = (await conn.execute(insert(alert_subscriptions).values(
        id=subscription_id, url=shown_url(kept.url), events=events.parse_filters(filters), format=fmt,
        sealed=kept.seal(box, subscription_id)).returning(alert_subscriptions))).one()
    return {**_described(row), "secret": kept.secret}


async def list_subscriptions(conn: AsyncConnection, include_removed: bool = False) -> list[dict[str, Any]]:
    query = select(alert_subscriptions).order_by(alert_subscriptions.c.created_at, alert_subscriptions.c.id)
    if not include_removed:
        query = query.where(alert_subscriptions.c.removed_at.is_(None))
    return [_described(row) for row in await conn.execute(query)]


async def remove(conn: AsyncConnection, subscription_id: str) -> dict[str, Any]:
    """No further events; its pending deliveries are cancelled, its history stays queryable."""
    row = (await conn.execute(
        update(alert_subscriptions).where(alert_subscriptions.c.id == subscription_id)
        .values(removed_at=func.coalesce(alert_subscriptions.c.removed_at, func.now()))
        .returning(alert_subscriptions))).first()
    if row is None:
        raise NotFound("unknown_subscription", f"No such alert subscription: {subscription_id[:60]}.")
    await conn.execute(update(alert_deliveries).where(alert_deliveries.c.subscription_id == subscription_id,
                                                      alert_deliveries.c.status == "pending")
                       .values(status="cancelled"))
    return _described(row)


async def reseal_all(conn: AsyncConnection, box: SecretBox) -> int:
    """Every signing secret opened (current or previous master key) and sealed under the current
    one: part of ``tollgate master-key rotate`` (proxy/rotation.py), or dropping the previous
    key would leave every subscription's deliveries unsignable."""
    rows = (await conn.execute(select(alert_subscriptions.c.id, alert_subscriptions.c.sealed)
                               .with_for_update())).all()
    for row in rows:
        kept = Sealed.open(box, row.id, row.sealed)
        await conn.execute(update(alert_subscriptions).where(alert_subscriptions.c.id == row.id)
                           .values(sealed=kept.seal(box, row.id)))
    return len(rows)


def _deliveries_query() -> Any:
    d, o = alert_deliveries.c, alert_outbox.c
    last = (select(alert_attempts.c.status_code, alert_attempts.c.error, alert_attempts.c.at)
            .where(alert_attempts.c.delivery_id == d.id).order_by(alert_attempts.c.attempt.desc()).limit(1)
            .lateral("last"))
    return (select(d.id, d.event_id, d.subscription_id, o.kind, o.detail, d.status, d.attempts, d.next_attempt_at,
                   d.delivered_at, d.created_at, last.c.status_code, last.c.error, last.c.at.label("last_attempt_at"))
            .select_from(alert_deliveries.join(alert_outbox, o.id == d.event_id).outerjoin(last, true())))


async def deliveries(conn: AsyncConnection, subscription_id: str | None = None, status: str | None = None,
                     limit: int = pages.DEFAULT_LIMIT, cursor: str | None = None) -> pages.Page:
    """A page of deliveries, newest first, each with its latest attempt's answer."""
    query = _deliveries_query()
    if subscription_id:
        query = query.where(alert_deliveries.c.subscription_id == subscription_id)
    if status:
        query = query.where(alert_deliveries.c.status == status)
    rows, after = DELIVERY_ORDER.cut(list(await conn.execute(DELIVERY_ORDER.window(query, limit, cursor))), limit)
    return pages.Page([{**row._mapping, "event_id": f"evt_{row.event_id}"} for row in rows], after)
