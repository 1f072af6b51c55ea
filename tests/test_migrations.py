"""Migrations are the only way the schema changes: they must build exactly what
proxy/schema.py declares, go down and up again cleanly, and leave exactly the SQL functions
that migrations/sql/live.py names, as written in the migration modules it points at."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import uuid
from pathlib import Path

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from psycopg.rows import dict_row
from sqlalchemy import create_engine

import migrations.sql
from migrations.sql import live
from proxy import migrate
from proxy.schema import metadata


def _sync_url(url: str) -> str:
    return "postgresql+psycopg://" + url.partition("://")[2]


def test_migrations_build_exactly_the_declared_schema(scratch_db):
    migrate.upgrade(scratch_db)
    engine = create_engine(_sync_url(scratch_db))
    with engine.connect() as conn:
        partitions = {name for (name,) in conn.exec_driver_sql(
            "SELECT c.relname FROM pg_class c WHERE c.relispartition AND c.relkind = 'r'")}
        context = MigrationContext.configure(conn, opts={"include_name": _not_in(partitions)})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def _not_in(partitions: set[str]):
    """Monthly partitions of audit_events are made at run time, not declared in schema.py."""
    return lambda name, type_, parent_names: not (type_ == "table" and name in partitions)


def test_downgrade_to_base_and_up_again(scratch_db):
    migrate.upgrade(scratch_db)
    migrate.downgrade(scratch_db, "base")
    with psycopg.connect(scratch_db) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    assert tables == [("alembic_version",)]
    migrate.upgrade(scratch_db)
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (migrate.head_revision(),)


def test_0015_keeps_the_parameters_of_approvals_filed_before_it(scratch_db):
    migrate.upgrade(scratch_db, "0014")
    old = '{"amount": "700", "currency": "usd"}'
    with psycopg.connect(scratch_db) as conn:
        conn.execute("INSERT INTO approvals (id, key_id, fingerprint, status, reason, method, path, request,"
                     " expires_at) VALUES ('apr_old', 'key_x', 'f', 'pending', 'r', 'POST', '/v1/payouts', %s, now())",
                     (old,))
    migrate.upgrade(scratch_db, "0015")
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("SELECT request FROM approvals").fetchone() == (
            {"params": {"amount": "700", "currency": "usd"}, "account": None, "headers": {}},)
    migrate.downgrade(scratch_db, "0014")
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("SELECT request FROM approvals").fetchone() == ({"amount": "700", "currency": "usd"},)


# Every function of the public schema (all of them are Tollgate's), as Postgres renders it.
FUNCTIONS = """
SELECT p.proname, p.oid::regprocedure::text AS signature, pg_get_functiondef(p.oid) AS definition,
       coalesce(p.proconfig, '{}') AS config
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public' ORDER BY p.proname
"""


def _functions(url: str) -> dict[str, dict]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute(FUNCTIONS).fetchall()
    assert len({r["proname"] for r in rows}) == len(rows), "an overloaded function name"
    return {r["proname"]: r for r in rows}


def _between_dollar_quotes(definition: str) -> str:
    return re.fullmatch(r"(?s).*?\nAS (\$\w*\$)(.*)\1\s*", definition).group(2)


def test_every_function_at_head_is_the_text_migrations_sql_live_names(pg_url, scratch_db):
    """The suite's database is at head. Each of its functions must be in live.py, with the body
    of the text live.py points at byte for byte, that text's argument types and the settings
    live.py declares; and the live texts, run afresh, must render to the same definitions."""
    at_head = _functions(pg_url)
    assert sorted(at_head) == sorted(live.BY_NAME)
    with psycopg.connect(pg_url) as conn:
        resolved = {f.name: conn.execute("SELECT to_regprocedure(%s)::text", [f.signature]).fetchone()[0]
                    for f in live.FUNCTIONS}
    for name, function in at_head.items():
        written = live.BY_NAME[name]
        assert _between_dollar_quotes(function["definition"]) == written.body, written.source
        assert resolved[name] == function["signature"], written.source
        assert dict(c.split("=", 1) for c in function["config"]) == written.settings, written.source

    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute("SET check_function_bodies = off")  # no tables here for the bodies to name
        for statement in live.statements():
            conn.execute(statement)
    made_afresh = _functions(scratch_db)
    assert {n: f["definition"] for n, f in made_afresh.items()} == {n: f["definition"] for n, f in at_head.items()}


def _frozen_modules() -> list:
    names = sorted(m.name for m in pkgutil.iter_modules(migrations.sql.__path__) if re.fullmatch(r"v\d{4}", m.name))
    return [importlib.import_module(f"migrations.sql.{name}") for name in names]


def _statements(module) -> list[str]:
    values = [v for k, v in vars(module).items() if not k.startswith("_")]
    return [s for v in values for s in (v if isinstance(v, list) else [v]) if isinstance(s, str)]


def test_live_names_the_last_migration_that_defined_or_altered_each_function():
    """Every CREATE FUNCTION text is written out in its module's source, not patched together;
    and for each function live.py names the last module that (re)created it, and exactly the
    later modules whose ALTER FUNCTION ... SET still holds."""
    created, altered = {}, {}
    for module in _frozen_modules():
        source = Path(module.__file__).read_text()
        for statement in _statements(module):
            for name in re.findall(r"CREATE (?:OR REPLACE )?FUNCTION\s+(\w+)\s*\(", statement):
                assert statement in source, f"{module.__name__}: {name} is not written out as run"
                created[name] = module
            for name in re.findall(r"^ALTER FUNCTION (\w+)\(.*\)\s+SET\s", statement):
                altered.setdefault(name, []).append(module)
    for name, function in live.BY_NAME.items():
        assert function.module is created[name], name
        later = [m for m in altered.get(name, []) if m.__name__ > function.module.__name__]
        assert list(function.altered_by) == later, name


WINDOWS = ("minute", "hour", "day", "month", "total", "run")
GATE = "SELECT audit_id FROM tollgate_gate(%s, %s, 1, %s::jsonb, %s::jsonb, 1, 60, 'enforce', NULL)"
GATE_FAST = "SELECT audit_id FROM tollgate_gate_fast(%s, %s::jsonb, %s::integer[])"


def _key(sql) -> tuple[str, str]:
    """An active key and its policy (version 1), as bare rows: all the gates read."""
    key, policy = f"key_{uuid.uuid4().hex[:12]}", f"pol_{uuid.uuid4().hex[:12]}"
    sql.execute("INSERT INTO policies (id, vendor, current_version) VALUES (%s, 'stripe', 1)", [policy])
    sql.execute("INSERT INTO upstream_credentials (id, vendor, secret_ciphertext) VALUES (%s, 'stripe', '')", [key])
    sql.execute("INSERT INTO vault_keys (id, vendor, secret_hash, credential_id, policy_id) "
                "VALUES (%s, 'stripe', '', %s, %s)", [key, key, policy])
    return key, policy


def test_the_three_copies_of_the_window_to_bucket_rule_agree_for_every_window(sql):
    """tollgate_bucket and the inline CASEs of tollgate_gate and tollgate_gate_fast (live.py says
    why there are three) name the same bucket for every window, with and without a run, whatever
    the session's time zone. Checked on the reservations the two gates write; rolled back."""
    caps = [{"window": w, "usd": "1000"} for w in WINDOWS]
    with sql.transaction(force_rollback=True):
        sql.execute("SET LOCAL TimeZone = 'Pacific/Chatham'")  # UTC+12:45 or +13:45
        key, policy = _key(sql)
        runs = ["run-a", None]
        rows = [{"request_id": uuid.uuid4().hex, "key_id": key, "vendor": "stripe", "method": "POST",
                 "path": "/v1/charges", "decision": "allowed", "agent_run_id": run} for run in runs * 2]
        made = [sql.execute(GATE, [key, policy, json.dumps(r), json.dumps(caps)]).fetchone()["audit_id"]
                for r in rows[:2]]
        items = [{"key_id": key, "policy_id": policy, "policy_version": 1, "row": r, "caps": caps,
                  "predicted": "1", "ttl": 60, "mode": "enforce", "approval": None} for r in rows]
        made += [r["audit_id"] for r in sql.execute(GATE_FAST, [key, json.dumps(items), [2, 3]])]
        written = sql.execute(
            "SELECT r.audit_id, r.buckets, (SELECT array_agg(tollgate_bucket(w, r.created_at, a.agent_run_id)) "
            "FROM unnest(%s::text[]) w) AS rule FROM reservations r JOIN audit_events a ON a.id = r.audit_id "
            "WHERE r.key_id = %s", [list(WINDOWS), key]).fetchall()
    assert sorted(w["audit_id"] for w in written) == sorted(made) and len(made) == 4
    for w in written:
        assert sorted(w["buckets"]) == sorted(w["rule"]) and len(set(w["rule"])) == len(WINDOWS), w
    assert {b for w in written for b in w["rule"] if b.startswith("run:")} == {"run:run-a", "run:"}


def test_two_processes_migrating_one_database_at_once_both_succeed(scratch_db):
    """Replicas starting together against an empty database: the second waits on the migration
    lock (migrations/env.py) and finds nothing left to do, instead of failing on the first's DDL."""
    import subprocess
    import sys

    code = f"from proxy import migrate; migrate.upgrade({scratch_db!r})"
    both = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [process.communicate(timeout=300)[1] for process in both]
    assert [process.returncode for process in both] == [0, 0], errors
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(migrate.head_revision(),)]
