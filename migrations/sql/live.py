"""Which SQL function texts are live at ``alembic upgrade head``, and where each is written.

A migration's SQL is frozen in its own module (v0009.py for 0009) and never changes, so the
text Postgres runs for a function is the text of the last migration that (re)defined it, and
its per-function settings (``SET plan_cache_mode = ...``) are those of that text's SET
clauses plus the ALTER FUNCTION statements of later migrations. This module names both for
every function, so the live SQL can be read as written without replaying the history:
``FUNCTIONS`` lists them, each pointing at a frozen constant (``v0009.GATE``), not a copy.
tests/test_migrations.py compares every function Postgres has after ``upgrade head`` (body,
signature, settings and its whole rendered definition) with this list, and checks that no
later migration module defines or alters a function behind this module's back.

Not live, though still in the history: 0010's ``enable_seqscan = off`` ALTERs of the batch
functions (0012's CREATE OR REPLACE replaced their settings; its texts SET it again), and
0013's and 0014's ``plan_cache_mode`` ALTERs (0021's texts SET the same in their headers).

The window-to-bucket rule (a cap's window minute/hour/day/month/total/run to a counter's
bucket name) is written three times in live SQL: ``tollgate_bucket`` (v0001; tollgate_reprice,
tollgate_gate_batch's delegated batches and proxy/spend.py call it) and inline CASEs over one
to_char of the gate's clock in tollgate_gate and tollgate_gate_fast (v0021, as 0009 and 0013
wrote them), which spare the request path a to_char
per cap. Making those two call one rule would take a migration re-freezing both hot texts
and a measured A/B; instead tests/test_migrations.py proves that the three agree for every
window. tollgate_prune_counters (v0011) relies on the 'minute:' and 'hour:' prefixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import ModuleType

from migrations.sql import v0001, v0007, v0011, v0013, v0021, v0022, v0023

_HEADER = re.compile(r"CREATE (?:OR REPLACE )?FUNCTION\s+(\w+)\s*\(")
_SET_CLAUSE = re.compile(r"\bSET\s+(\w+)\s*=\s*(\w+)")


@dataclass(frozen=True)
class LiveFunction:
    """One live function: the frozen CREATE text that defined it last, and the migrations
    whose ``ALTER FUNCTION ... SET`` statements (in their module's ``SET`` list) still hold."""

    module: ModuleType
    constant: str
    altered_by: tuple[ModuleType, ...] = ()

    @property
    def migration(self) -> str:
        """The migration whose text is live: '0009' for v0009."""
        return self.module.__name__.rpartition(".")[2].removeprefix("v")

    @property
    def source(self) -> str:
        """Where to read it: 'migrations/sql/v0009.py GATE'."""
        return f"migrations/sql/v{self.migration}.py {self.constant}"

    @property
    def text(self) -> str:
        """The CREATE [OR REPLACE] FUNCTION statement, as the migration ran it."""
        text: str = getattr(self.module, self.constant)
        return text

    @property
    def _header(self) -> re.Match[str]:
        found = _HEADER.search(self.text)
        if found is None:
            raise ValueError(f"{self.source} is not a CREATE FUNCTION statement")
        return found

    @property
    def name(self) -> str:
        return self._header.group(1)

    @property
    def argument_types(self) -> tuple[str, ...]:
        """The parameters' types as written ('timestamptz', 'text[]'), without names or defaults."""
        start = self._header.end()
        depth, end = 1, start
        while depth:
            depth += {"(": 1, ")": -1}.get(self.text[end], 0)
            end += 1
        parameters = [p.split() for p in self.text[start:end - 1].split(",") if p.strip()]
        return tuple(" ".join(words[1:words.index("DEFAULT")] if "DEFAULT" in words else words[1:])
                     for words in parameters)

    @property
    def signature(self) -> str:
        """Name and argument types, as ALTER FUNCTION and regprocedure take them."""
        return f"{self.name}({', '.join(self.argument_types)})"

    @property
    def body(self) -> str:
        """What lies between the dollar quotes: pg_proc.prosrc, byte for byte."""
        _, body, _ = self.text.split("$$")
        return body

    @property
    def alters(self) -> tuple[str, ...]:
        """The live ALTER FUNCTION statements on this function, in migration order."""
        return tuple(statement for module in self.altered_by for statement in module.SET
                     if statement.startswith(f"ALTER FUNCTION {self.name}("))

    @property
    def settings(self) -> dict[str, str]:
        """pg_proc.proconfig as a dict: the text's SET clauses, then the ALTERs over them."""
        header = self.text.split("$$")[0]
        settings = dict(_SET_CLAUSE.findall(header[header.index("LANGUAGE"):]))
        for statement in self.alters:
            settings.update(_SET_CLAUSE.findall(statement))
        return settings


FUNCTIONS: tuple[LiveFunction, ...] = (
    LiveFunction(v0001, "BUCKET_FUNCTION"),  # tollgate_bucket
    LiveFunction(v0021, "REPRICE"),  # tollgate_reprice, custom plans (in its text since 0021)
    LiveFunction(v0021, "RECONCILE"),  # tollgate_reconcile, custom plans
    LiveFunction(v0007, "PARTITION_FOR_MONTH"),  # tollgate_audit_partition
    LiveFunction(v0007, "ENSURE_PARTITIONS"),  # tollgate_audit_partitions_ensure
    LiveFunction(v0021, "GATE"),  # tollgate_gate, custom plans
    LiveFunction(v0011, "PRUNE"),  # tollgate_prune_counters
    LiveFunction(v0021, "GATE_BATCH"),  # tollgate_gate_batch, generic plans
    LiveFunction(v0013, "LOCK_COUNTERS"),  # tollgate_lock_counters (no live text calls it since 0021)
    LiveFunction(v0021, "SETTLE"),  # tollgate_settle
    LiveFunction(v0021, "GATE_FAST"),  # tollgate_gate_fast
    LiveFunction(v0021, "SETTLE_BATCH"),  # tollgate_settle_batch (its settings are in its text)
    LiveFunction(v0022, "HALT"),  # tollgate_halt_run: every halt of a run (proxy/halts.py)
    LiveFunction(v0023, "EMIT"),  # tollgate_alert_emit: an alert into the outbox, in the caller's transaction
    LiveFunction(v0023, "REFUSAL"),  # tollgate_alert_refusal, trigger on audit_events (blocked rows)
    LiveFunction(v0023, "APPROVAL"),  # tollgate_alert_approval, trigger on approvals (pending ones)
    LiveFunction(v0023, "KEY_REVOKED"),  # tollgate_alert_key_revoked, trigger on vault_keys
    LiveFunction(v0023, "RUN_HALTED"),  # tollgate_alert_run_halted, triggers on run_state (a halt)
)

BY_NAME: dict[str, LiveFunction] = {f.name: f for f in FUNCTIONS}


def statements() -> list[str]:
    """Every live function's text, then every live ALTER: the live functions, made anew."""
    return [f.text for f in FUNCTIONS] + [a for f in FUNCTIONS for a in f.alters]
