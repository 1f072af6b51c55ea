"""Stop conditions and halted runs: a runaway agent's run is stopped, by name, for every key.

Caps bound what a run can spend; they do not notice an agent that retries a refused call in a
loop or keeps hammering a vendor that fails. A policy's ``stop`` names when its key halts the
run (the X-Agent-Run-Id) it serves: ``max_calls`` (the run has made more calls than that),
``max_refusals`` (that many refusals within a window) or ``consecutive_errors`` (that many
calls in a row the vendor failed). An operator halts one by hand (``tollgate runs stop``, the
admin API, the console's run page). A halted run is refused ``run_halted`` by every key, with
a message naming the condition, until it is resumed.

Exact across processes: the state is one ``run_state`` row per run in Postgres. Each call
carrying a run id counts itself there with one INSERT ... ON CONFLICT beside the gate (the
gate's SQL stays as it is), which returns the run's calls and whether it is halted, so a halt
committed by any process refuses the next request in every process, and of N+1 concurrent
calls exactly N pass ``max_calls: N`` (the row lock orders them, and a batch hands its calls
of one run consecutive counts). Concurrent calls are counted together, one statement and one
commit per batch (``RunCounter``, proxy/groupcommit.py): one per call made a transaction per
call where the gate and the settle make one per batch (bench/ab.py at c=8: 2.1 writing
transactions per call with run ids, 0.9 without; 1.4 batched). A lone call is a batch of one,
its round trip as before. Calls without a run id make no round trip at all. Refusals and
vendor errors are judged after the call's outcome is recorded, only on those paths: one count
over the run's audit rows (the last one committed sees every earlier one), before the response
goes back, so the agent's next call meets the halt.

Every halt goes through ``tollgate_halt_run`` (migrations/sql/v0022.py), one statement that
halts a run not halted yet and returns its row only then: whatever else a halt must set off,
such as an alert's outbox row, belongs in that function, in the halt's own transaction.

Measured on these 2-core machines (shared, load average 7-9): one sequential stripe-python
client, 400 charges with a run id interleaved with 400 without, through ``tollgate serve`` to
the Stripe emulator on an embedded Postgres, after 50 of each to warm up. The run id costs
1.0-1.8 ms of median latency (three runs: 17.5 -> 18.7, 23.3 -> 24.3, 32.0 -> 33.8 ms), the
counting round trip on the relaxed pool; the same statement on the durable pool cost 4.6-6.2 ms
(25.4 -> 30.0, 35.3 -> 41.5 ms), a second fsync per call, hence the relaxed pool (see _ENTER).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import pages
from proxy.call import Call, run_id_of
from proxy.errors import Conflict, InvalidInput, NotFound, Refused, RequestRejected, Unavailable
from proxy.groupcommit import GroupCommit
from proxy.hotdb import HotDB
from proxy.policy.rules import Stops
from proxy.schema import run_state

log = structlog.get_logger(__name__)

# Counts the call and says whether its run is halted. Taken on every call with a run id, on the
# relaxed pool (synchronous_commit off): its commit is visible to every process at once, as any
# commit is, and its WAL is flushed by the durable gate commit this call makes next, so a call
# that is forwarded is always counted durably; only the count of a call refused before its gate
# can be lost, to a Postgres crash. A durable commit here cost a second fsync per call.
# One row per run of the batch, with its calls in the batch ($1 may name a run many times: one
# statement may not update a row twice). Rows in run_id order, so two batches lock shared runs
# in one order and cannot deadlock.
_ENTER = """
INSERT INTO run_state AS r (run_id, calls)
SELECT u.run_id, count(*) FROM unnest($1::text[]) u(run_id) GROUP BY u.run_id ORDER BY u.run_id
ON CONFLICT (run_id) DO UPDATE SET calls = r.calls + excluded.calls, last_call_at = now()
RETURNING run_id, calls, halted_at, halted_by, halted_detail
"""
_HALT = "SELECT halted_at, halted_by, halted_detail FROM tollgate_halt_run($1, $2, $3, $4)"
_HALTED = "SELECT halted_at, halted_by, halted_detail FROM run_state WHERE run_id = $1"
# The run's refusals within the window, since it was last resumed (the index on agent_run_id, ts).
_REFUSALS = """
SELECT count(*) FROM audit_events
 WHERE agent_run_id = $1 AND decision = 'blocked' AND ts > now() - make_interval(secs => $2)
   AND ts > coalesce((SELECT resumed_at FROM run_state WHERE run_id = $1), '-infinity')
"""
# Of the run's last $2 calls that went to the vendor, how many it failed. A call still in flight
# ('allowed', no status yet) breaks the streak; when it fails too, its own count sees the rest.
_ERRORS = """
SELECT count(*) FILTER (WHERE decision = 'error' OR upstream_status >= 500) FROM (
  SELECT decision, upstream_status FROM audit_events
   WHERE agent_run_id = $1 AND decision IN ('allowed', 'shadow_blocked', 'error')
     AND ts > coalesce((SELECT resumed_at FROM run_state WHERE run_id = $1), '-infinity')
   ORDER BY ts DESC, id DESC LIMIT $2) latest
"""
_STATE = text("SELECT * FROM run_state WHERE run_id = :run_id")
_STOP = text("SELECT run_id FROM tollgate_halt_run(:run_id, 'operator', :detail, NULL)")
_RESUME = text("""
UPDATE run_state SET halted_at = NULL, halted_by = NULL, halted_detail = NULL, halted_key_id = NULL,
       resumed_at = now(), calls = 0
 WHERE run_id = :run_id AND halted_at IS NOT NULL
RETURNING run_id
""")
MAX_REASON = 500
HALTED_ORDER = pages.Order("halted_runs", (run_state.c.halted_at, run_state.c.run_id))


@dataclass(frozen=True)
class Halt:
    """Why and when a run was halted, as its refusals say it."""

    run_id: str
    condition: str  # max_calls | max_refusals | consecutive_errors | operator
    detail: str | None
    at: datetime

    def message(self) -> str:
        when = self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.condition == "operator":
            why = f"stopped by an operator at {when}" + (f" ({self.detail})" if self.detail else "")
        else:
            why = f"{self.condition} ({self.detail}) reached at {when}"
        return f"Run {self.run_id} was halted: {why}; resume it with `tollgate runs resume {self.run_id}`."


@dataclass(frozen=True)
class Counted:
    """A call's count in its run (this call included) and the run's halt state as it was read."""

    calls: int
    halted_at: datetime | None
    halted_by: str | None
    halted_detail: str | None

    def __getitem__(self, column: str) -> Any:  # read like the run_state row it stands for
        return getattr(self, column)


class RunCounter:
    """Counts calls into their runs, concurrent calls in one statement (see _ENTER)."""

    def __init__(self, db: HotDB, max_batch: int = 64, lanes: int = 2):
        self._db = db
        self._batches: GroupCommit[str, Counted] = GroupCommit(self._count, max_batch, lanes)

    async def enter(self, call: Call, key_id: str, stops: Stops | None) -> None:
        """Count a call with a run id into its run; raise ``run_halted`` if the run is halted, or
        halt it when the call takes it past the key's ``max_calls``. One round trip per batch;
        none without a run id. Remembers the key's other conditions on the call for ``judge``."""
        if call.run_id is None:
            return
        try:
            row = await self._batches.submit(call.run_id)
            halt = _halt_of(call.run_id, row)
            if halt is None and stops is not None and stops.max_calls is not None and row.calls > stops.max_calls:
                halt = await halt_run(self._db, call.run_id, "max_calls", f"more than {stops.max_calls} calls", key_id)
        except Exception as exc:  # fail closed, as the gate does
            raise Unavailable("database_unavailable", "Tollgate cannot reach its database.") from exc
        if halt is not None:
            raise Refused("run_halted", halt.message(), key_id=key_id)
        if stops is not None and stops.after_calls:
            call.halting = (key_id, stops)

    async def _count(self, run_ids: list[str]) -> list[Counted]:
        rows = {row["run_id"]: row for row in await self._db.fetch_relaxed(_ENTER, run_ids)}  # why relaxed: _ENTER
        # The batch's calls of one run take the counts up to the run's new total, in arrival order.
        in_batch = Counter(run_ids)
        before = {run_id: row["calls"] - in_batch[run_id] for run_id, row in rows.items()}
        counted = []
        for run_id in run_ids:
            before[run_id] += 1
            row = rows[run_id]
            counted.append(Counted(before[run_id], row["halted_at"], row["halted_by"], row["halted_detail"]))
        return counted


async def halt_run(db: HotDB, run_id: str, condition: str, detail: str, key_id: str | None) -> Halt:
    """Halt the run (``tollgate_halt_run``): the halt it has now, this one or one made first."""
    made = await db.fetchrow(_HALT, run_id, condition, detail, key_id)
    if made is not None:
        log.warning("run_halted", agent_run_id=run_id, condition=condition, detail=detail, key_id=key_id)
        return Halt(run_id, condition, detail, made["halted_at"])
    # Halted already (by another process, maybe for another condition): that halt stands.
    row = await db.fetchrow(_HALTED, run_id)
    halt = _halt_of(run_id, row) if row is not None else None
    return halt or Halt(run_id, condition, detail, datetime.now(UTC))  # resumed since: this condition holds


async def judge(db: HotDB, call: Call) -> None:
    """After the call's outcome is recorded: halt its run if this refusal or vendor error is the
    one its key's ``max_refusals`` or ``consecutive_errors`` names. Best effort: a failure
    here leaves the run running, and the next refusal or error judges it again."""
    if call.halting is None or call.outcome is None or call.run_id is None:
        return
    key_id, stops = call.halting
    decision, status = call.outcome
    try:
        if decision == "blocked" and stops.max_refusals is not None:
            seen = await db.fetchval(_REFUSALS, call.run_id, float(stops.refusal_window_s))
            if seen >= stops.max_refusals:
                await halt_run(db, call.run_id, "max_refusals",
                               f"{stops.max_refusals} refusals within {stops.refusal_window_s} s", key_id)
        elif stops.consecutive_errors is not None and (decision == "error" or (status or 0) >= 500):
            failed = await db.fetchval(_ERRORS, call.run_id, stops.consecutive_errors)
            if failed >= stops.consecutive_errors:
                await halt_run(db, call.run_id, "consecutive_errors",
                               f"{stops.consecutive_errors} upstream errors in a row", key_id)
    except Exception as exc:
        log.warning("stop_conditions_unjudged", agent_run_id=call.run_id, error=type(exc).__name__)


def _halt_of(run_id: str, row: Any) -> Halt | None:
    if row["halted_at"] is None:
        return None
    return Halt(run_id, row["halted_by"], row["halted_detail"], row["halted_at"])


# The operator's side (CLI, admin API, console): SQLAlchemy connections, as the rest of admin.

async def state(conn: AsyncConnection, run_id: str) -> dict[str, Any] | None:
    """The run's row as the admin API shows it; None if it never made a call with its run id."""
    row = (await conn.execute(_STATE, {"run_id": run_id})).mappings().first()
    return _described(row) if row is not None else None


async def list_halted(conn: AsyncConnection, limit: int = pages.DEFAULT_LIMIT,
                      cursor: str | None = None) -> pages.Page:
    """The runs halted now, the latest halt first (the partial index on halted_at)."""
    query = select(run_state).where(run_state.c.halted_at.is_not(None))
    rows, after = HALTED_ORDER.cut(list(await conn.execute(HALTED_ORDER.window(query, limit, cursor))), limit)
    return pages.Page([_described(row._mapping) for row in rows], after)


def _described(row: Any) -> dict[str, Any]:
    run_id = row["run_id"]
    halt = _halt_of(run_id, row)
    return {"agent_run_id": run_id, "halted": halt is not None, "halted_at": row["halted_at"],
            "condition": row["halted_by"], "detail": row["halted_detail"], "key_id": row["halted_key_id"],
            "calls_since_resume": row["calls"], "first_call_at": row["first_call_at"],
            "last_call_at": row["last_call_at"], "resumed_at": row["resumed_at"],
            "message": halt.message() if halt else None}


async def stop(conn: AsyncConnection, run_id: str, reason: str | None) -> dict[str, Any]:
    """Halt a run by hand, whether or not it has made a call yet. A run halted already keeps
    its halt (and its condition); the answer says which."""
    _check_run_id(run_id)
    if reason is not None and (len(reason) > MAX_REASON or not reason.isprintable()):
        raise InvalidInput("invalid_field", f"reason must be at most {MAX_REASON} printable characters.")
    await conn.execute(_STOP, {"run_id": run_id, "detail": reason or None})
    stopped = await state(conn, run_id)
    assert stopped is not None
    return stopped


async def resume(conn: AsyncConnection, run_id: str) -> dict[str, Any]:
    """Lift a halt: the run's calls count again from 0, its refusals and errors from now."""
    if (await conn.execute(_RESUME, {"run_id": run_id})).first() is None:
        if await state(conn, run_id) is None:
            raise NotFound("unknown_run", f"No run {run_id} has made a call or been stopped.")
        raise Conflict("run_not_halted", f"Run {run_id} is not halted.")
    resumed = await state(conn, run_id)
    assert resumed is not None
    return resumed


def _check_run_id(run_id: str) -> None:
    try:
        run_id_of({"x-agent-run-id": run_id})
    except RequestRejected as exc:
        raise InvalidInput("invalid_field", exc.message) from None
