"""The delivery loop: whoever holds the lease sends what is due, signed, and marks it in the
same transaction.

Every process runs ``Deliverer.forever``; each tick takes a Postgres advisory transaction lock
(as the audit sealer does, proxy/audit/chain.py) or does nothing. The holder scans the budget
counters for thresholds (thresholds.py), then takes each subscription that has something
pending (``FOR NO KEY UPDATE SKIP LOCKED``: a refusal's trigger, which only needs a key-share
lock on it, never waits) and its oldest pending deliveries in outbox order, sends them one
after another (subscriptions side by side), and writes each attempt and the delivery's new
state before the commit that releases the lock. So no two processes send one delivery, and a
subscription's events arrive in order: the first failure stops its batch, is retried after
``retry_base_s * 2**attempts`` (at most ``retry_max_s``), and the events behind it wait. A
delivery still failing ``give_up_s`` after it was queued is marked ``failed`` and the next one
goes. Under normal operation nothing is sent twice; if a process dies between a receiver's
2xx and its commit, that delivery is sent again with the same ``id`` (render.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from proxy.alerts import render, signing, thresholds
from proxy.alerts.subscriptions import Sealed
from proxy.config import Settings
from proxy.secretbox import SecretBox

ALERT_LOCK = 0x7011_A1E7  # pg advisory lock id: one deliverer at a time
log = structlog.get_logger("tollgate.alerts")

_SUBSCRIPTIONS = text("""
SELECT s.id, s.format, s.sealed FROM alert_subscriptions s
 WHERE s.removed_at IS NULL
   AND EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.subscription_id = s.id AND d.status = 'pending')
 ORDER BY s.id FOR NO KEY UPDATE SKIP LOCKED
""")
_QUEUE = text("""
SELECT d.id, d.event_id, d.attempts, d.next_attempt_at <= now() AS due, o.kind, o.payload, o.created_at
  FROM alert_deliveries d JOIN alert_outbox o ON o.id = d.event_id
 WHERE d.subscription_id = :subscription AND d.status = 'pending'
 ORDER BY d.event_id LIMIT :batch FOR UPDATE OF d
""")
_ATTEMPT = text("INSERT INTO alert_attempts (delivery_id, attempt, status_code, error, duration_ms) "
                "VALUES (:id, :attempt, :status_code, :error, :duration_ms)")
_DELIVERED = text("UPDATE alert_deliveries SET status = 'delivered', attempts = :attempt, delivered_at = now() "
                  "WHERE id = :id")
_RETRY = text("""
UPDATE alert_deliveries SET attempts = :attempt, next_attempt_at = now() + make_interval(secs => :backoff),
       status = CASE WHEN created_at < now() - make_interval(secs => :give_up) THEN 'failed' ELSE 'pending' END
 WHERE id = :id
""")


@dataclass(frozen=True)
class Options:
    interval_s: float = 5.0
    retry_base_s: float = 10.0
    retry_max_s: float = 600.0
    give_up_s: float = 3 * 86400.0  # as long as Stripe retries its webhooks
    timeout_s: float = 10.0
    batch: int = 20
    thresholds: tuple[int, ...] = thresholds.DEFAULT_THRESHOLDS
    console_base: str = "http://127.0.0.1:8080"

    @classmethod
    def from_settings(cls, settings: Settings) -> Options:
        return cls(interval_s=settings.alert_interval_s, retry_base_s=settings.alert_retry_base_s,
                   retry_max_s=settings.alert_retry_max_s, give_up_s=settings.alert_give_up_s,
                   timeout_s=settings.alert_timeout_s,
                   thresholds=tuple(int(t) for t in settings.alert_thresholds.split(",") if t.strip()),
                   console_base=settings.public_url or f"http://{settings.host}:{settings.port}")

    def backoff_s(self, attempts: int) -> float:
        return float(min(self.retry_base_s * 2 ** min(attempts, 30), self.retry_max_s))


@dataclass(frozen=True)
class Tick:
    busy: bool = False  # another process holds the lease
    delivered: int = 0
    failed: int = 0
    fired: int = 0  # cap thresholds recorded


@dataclass(frozen=True)
class _Due:
    delivery_id: int
    outbox_id: int
    attempts: int
    kind: str
    payload: dict[str, Any]
    created: datetime


@dataclass(frozen=True)
class _Target:
    id: str
    url: str
    format: str
    secret: str
    queue: list[_Due]


@dataclass(frozen=True)
class _Outcome:
    due: _Due
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: Decimal


class Deliverer:
    def __init__(self, engine: AsyncEngine, box: SecretBox, options: Options,
                 client: httpx.AsyncClient | None = None) -> None:
        self._engine = engine
        self._box = box
        self._options = options
        self._client = client or httpx.AsyncClient(timeout=options.timeout_s, follow_redirects=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def tick(self) -> Tick:
        async with self._engine.begin() as conn:
            if not await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": ALERT_LOCK}):
                return Tick(busy=True)
            fired = await thresholds.scan(conn, self._options.thresholds)
            targets = await self._claim(conn)
            sent = await asyncio.gather(*(self._send_in_order(target) for target in targets))
            outcomes = [outcome for batch in sent for outcome in batch]
            for outcome in outcomes:
                await self._record(conn, outcome)
        for target, batch in zip(targets, sent, strict=True):
            for outcome in batch:
                log.info("alert_delivered" if outcome.ok else "alert_delivery_failed", subscription=target.id,
                         event_id=render.event_id(outcome.due.outbox_id), status=outcome.status_code,
                         error=outcome.error)
        return Tick(delivered=sum(o.ok for o in outcomes), failed=sum(not o.ok for o in outcomes), fired=fired)

    async def forever(self) -> None:
        """Tick every ``interval_s``; straight again while a backlog drains."""
        while True:
            try:
                done = await self.tick()
            except Exception as exc:  # the database may be down: try again next time
                log.error("alert_delivery_tick_failed", error=type(exc).__name__)
                done = Tick()
            if not done.delivered:
                await asyncio.sleep(self._options.interval_s)

    async def _claim(self, conn: AsyncConnection) -> list[_Target]:
        targets = []
        for sub in list(await conn.execute(_SUBSCRIPTIONS)):
            rows = list(await conn.execute(_QUEUE, {"subscription": sub.id, "batch": self._options.batch}))
            if not rows or not rows[0].due:
                continue  # its oldest waits for its back-off; the rest wait behind it
            queue = [_Due(r.id, r.event_id, r.attempts, r.kind, _decoded(r.payload), r.created_at) for r in rows]
            kept = Sealed.open(self._box, sub.id, sub.sealed)
            targets.append(_Target(sub.id, kept.url, sub.format, kept.secret, queue))
        return targets

    async def _send_in_order(self, target: _Target) -> list[_Outcome]:
        outcomes = []
        for due in target.queue:
            outcome = await self._send(target, due)
            outcomes.append(outcome)
            if not outcome.ok:
                break
        return outcomes

    async def _send(self, target: _Target, due: _Due) -> _Outcome:
        body = render.body(due.outbox_id, due.kind, due.created, due.payload, target.format,
                           self._options.console_base)
        headers = {"content-type": "application/json", "user-agent": "Tollgate-Alerts/1",
                   signing.HEADER: signing.header_value(target.secret, body),
                   "tollgate-event-id": render.event_id(due.outbox_id)}
        started = time.perf_counter()
        try:
            response = await self._client.post(target.url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # the name only: a message may quote the URL, itself a credential
            return _Outcome(due, False, None, type(exc).__name__, _ms_since(started))
        ok = 200 <= response.status_code < 300
        return _Outcome(due, ok, response.status_code, None if ok else f"HTTP {response.status_code}",
                        _ms_since(started))

    async def _record(self, conn: AsyncConnection, outcome: _Outcome) -> None:
        attempt = outcome.due.attempts + 1
        await conn.execute(_ATTEMPT, {"id": outcome.due.delivery_id, "attempt": attempt,
                                      "status_code": outcome.status_code, "error": outcome.error,
                                      "duration_ms": outcome.duration_ms})
        if outcome.ok:
            await conn.execute(_DELIVERED, {"id": outcome.due.delivery_id, "attempt": attempt})
        else:
            await conn.execute(_RETRY, {"id": outcome.due.delivery_id, "attempt": attempt,
                                        "backoff": self._options.backoff_s(outcome.due.attempts),
                                        "give_up": self._options.give_up_s})


def _decoded(payload: Any) -> dict[str, Any]:
    """jsonb arrives as text through a textual query: numbers stay exact."""
    if isinstance(payload, str):
        decoded: dict[str, Any] = json.loads(payload, parse_float=Decimal)
        return decoded
    return dict(payload)


def _ms_since(started: float) -> Decimal:
    return Decimal(f"{(time.perf_counter() - started) * 1000:.3f}")
