"""A periodic job that one process of many runs: the first to take the period's lease.

Every proxy process runs the same background loops. Some work is shared (the reconcile sweep
splits it with SKIP LOCKED, the sealer takes an advisory lock for each pass), but a daily job that
reads a vendor's price list must run once a day, not once per process: a lock held only while it
runs would let a second process, waking a minute later, run it again. So the lease is a row
(``background_leases``) whose ``taken_at`` one statement moves forward only when the period is
over; the process whose statement moved it runs the job, and every other finds it taken until the
next period. A job that fails gives the lease back after ``retry_s``, so the next try is minutes
away, not a day (and may be another process's). A process that dies mid-job holds the period; the
job runs again the next.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger(__name__)

_TAKE = text(
    "INSERT INTO background_leases (name, holder, taken_at) VALUES (:name, :holder, now()) "
    "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, taken_at = now() "
    "WHERE background_leases.taken_at <= now() - make_interval(secs => :every) RETURNING holder"
)
# Back-dated so the period ends retry_s from now.
_GIVE_BACK = text(
    "UPDATE background_leases SET taken_at = now() - make_interval(secs => :every) + make_interval(secs => :retry) "
    "WHERE name = :name AND holder = :holder"
)


def holder_name() -> str:
    """Who holds a lease, for an operator reading the table: host, process and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


async def take(engine: AsyncEngine, name: str, holder: str, every_s: float) -> bool:
    """True: this process holds ``name`` for the period of ``every_s`` that starts now."""
    async with engine.begin() as conn:
        return (await conn.scalar(_TAKE, {"name": name, "holder": holder, "every": every_s})) is not None


async def give_back(engine: AsyncEngine, name: str, holder: str, every_s: float, retry_s: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(_GIVE_BACK, {"name": name, "holder": holder, "every": every_s, "retry": retry_s})


async def every(engine: AsyncEngine, name: str, every_s: float, job: Callable[[], Awaitable[bool]], *,
                check_s: float = 60.0, retry_s: float = 300.0, holder: str | None = None) -> None:
    """Run ``job`` once per ``every_s`` across all processes, checking every ``check_s`` whether the
    period's lease is free. ``job`` returns False (or raises) when it did not succeed: the lease is
    given back, to be taken again after ``retry_s``."""
    holder = holder or holder_name()
    while True:
        try:
            if await take(engine, name, holder, every_s):
                done = False
                try:
                    done = await job()
                finally:
                    if not done:
                        await give_back(engine, name, holder, every_s, min(retry_s, every_s))
        except Exception as exc:  # the database or the vendor may be down; the next check tries again
            log.error("background_job_failed", job=name, error=type(exc).__name__)
        await asyncio.sleep(min(check_s, every_s))
