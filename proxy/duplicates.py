"""The duplicate guard: the same money-moving or message-sending call, again, within a window.

An agent that retries a refund in a loop draws a fresh Idempotency-Key each time (the SDKs do),
so the vendor runs every copy, and caps only bound how many. A policy with ``duplicates``
makes the first such call claim its fingerprint (proxy/approvals.py: key, method, path,
parameters in any order, host, account and decision headers) in ``duplicate_claims``; a copy
within the window finds the claim and is refused ``duplicate_call``, naming the first call.

Exact across processes: the claim is one INSERT ... ON CONFLICT, so of two identical calls in
flight at once exactly one inserts. A claim past its window is taken over by the same statement
(ON CONFLICT DO UPDATE ... WHERE expired), and the reconcile sweep deletes the ones nobody
repeated. Times are Postgres's ``now()``, so the processes' clocks do not matter.

A retry carrying the first call's Idempotency-Key is the vendor's own replay (it answers from
its cache, nothing happens twice): forwarded, on adapters that name an ``idempotency_header``.
The claim is made before the gate and released when the gate refuses, so a call the caps
stopped does not make its later retry a "duplicate" of something that never happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.errors import Unavailable
from proxy.hotdb import HotDB
from vendors.base import ParsedRequest

# One round trip. The CTE's INSERT either claims (a new row, or an expired one taken over) and
# returns it, or finds a live claim and returns nothing; the SELECT then reads that claim. Its
# snapshot predates a claim committed by a concurrent copy while this INSERT waited on it, so
# it can come back empty: the caller reads once more (_FIRST) in that rare case.
_CLAIM = """
WITH claimed AS (
  INSERT INTO duplicate_claims AS d (key_id, fingerprint, request_id, idempotency_key, expires_at)
  VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
  ON CONFLICT (key_id, fingerprint) DO UPDATE
    SET request_id = excluded.request_id, idempotency_key = excluded.idempotency_key,
        claimed_at = now(), expires_at = excluded.expires_at
    WHERE d.expires_at <= now()
  RETURNING request_id, idempotency_key
)
SELECT true AS claimed, request_id, idempotency_key FROM claimed
UNION ALL
SELECT false, request_id, idempotency_key FROM duplicate_claims
 WHERE key_id = $1 AND fingerprint = $2 AND NOT EXISTS (SELECT 1 FROM claimed)
"""
_FIRST = "SELECT request_id, idempotency_key FROM duplicate_claims WHERE key_id = $1 AND fingerprint = $2"
_RELEASE = "DELETE FROM duplicate_claims WHERE key_id = $1 AND fingerprint = $2 AND request_id = $3"
PRUNE = "DELETE FROM duplicate_claims WHERE expires_at <= now()"


def guarded(request: ParsedRequest) -> bool:
    """Calls whose repeat costs money or reaches someone again: the adapter says which."""
    return request.moves_money or bool(request.recipients)


@dataclass(frozen=True)
class Claim:
    """What the guard found: ``first`` is the request id of the call this one repeats (None: it
    is the first, or the vendor's replay of it)."""

    key_id: str
    fingerprint: str
    request_id: str
    first: str | None = None
    replay: bool = False

    @property
    def holds(self) -> bool:
        """This call made the claim (and releases it if it is not forwarded)."""
        return self.first is None and not self.replay

    def message(self) -> str:
        return (f"Refused as a duplicate of request {self.first}: the same call (key, endpoint and parameters) "
                "was sent already within this key's duplicates window. Retry with that call's Idempotency-Key "
                "to get its answer again, or change the call if it is meant to happen twice.")


async def claim(db: HotDB, key_id: str, fingerprint: str, request_id: str, idempotency_key: str | None,
                replayable: bool, window_s: int) -> Claim:
    """Claim ``fingerprint`` for this call, or say which call holds it. ``replayable``: the vendor
    de-duplicates by ``idempotency_key``, so the same key again is its replay."""
    for _ in range(3):  # a claim can lapse and be swept between the two reads: then claim again
        try:
            row = await db.fetchrow(_CLAIM, key_id, fingerprint, request_id, idempotency_key, float(window_s))
            if row is not None and row["claimed"]:
                return Claim(key_id, fingerprint, request_id)
            if row is None:
                row = await db.fetchrow(_FIRST, key_id, fingerprint)
        except Exception as exc:
            raise Unavailable("database_unavailable", "Tollgate cannot reach its database.") from exc
        if row is not None:
            replay = replayable and idempotency_key is not None and idempotency_key == row["idempotency_key"]
            return Claim(key_id, fingerprint, request_id, first=row["request_id"], replay=replay)
    raise Unavailable("gate_conflict", "The duplicate guard could not decide; try again.")


async def release(db: HotDB, held: Claim) -> None:
    """The claimed call was not forwarded (the gate refused it): its repeat is not a duplicate.
    Best effort: a claim left behind only expires with its window."""
    try:
        await db.fetchrow(_RELEASE, held.key_id, held.fingerprint, held.request_id)
    except Exception:  # the refusal stands either way; the claim lapses at its window's end
        return
