"""CLI commands for the policy engine: policies and versions, spend, approvals, reconcile, runs, prices."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import (
    approvals,
    bootstrap,
    db,
    fxrates,
    halts,
    migrate,
    outcomes,
    pages,
    prices,
    pricetables,
    rotation,
    runs,
    spend,
    vendorprices,
)
from proxy.cli import audit
from proxy.cli import prices as pricecli
from proxy.cli.support import add_limit, read_policy, secret_from_env, settings_from, with_connection
from proxy.keycache import KeyCache
from proxy.policy import store
from proxy.upstream import create_upstream
from vendors import money, pricebook


def register(commands: Any, key_commands: Any, policy_commands: Any) -> None:
    create = policy_commands.add_parser("create", help="store a policy (version 1)")
    create.add_argument("file", metavar="FILE")
    create.add_argument("--name")
    create.set_defaults(run=_policy_create)
    update = policy_commands.add_parser("update", help="add a version to a policy; it becomes current")
    update.add_argument("policy_id", metavar="POLICY_ID")
    update.add_argument("file", metavar="FILE")
    update.set_defaults(run=_policy_update)
    policy_list = policy_commands.add_parser("list", help="list policies, newest first")
    add_limit(policy_list, "policies")
    policy_list.set_defaults(run=_policy_list)
    show = policy_commands.add_parser("show", help="a policy with all its versions")
    show.add_argument("policy_id", metavar="POLICY_ID")
    show.set_defaults(run=_policy_show)

    rotate = key_commands.add_parser("rotate-upstream", help="replace the vendor secret behind a key")
    rotate.add_argument("key_id", metavar="ID")
    rotate.add_argument("--upstream-secret-env", required=True, metavar="VAR")
    rotate.set_defaults(run=_rotate_upstream)
    attach = key_commands.add_parser("attach-policy", help="point a key at another policy")
    attach.add_argument("key_id", metavar="ID")
    attach.add_argument("policy_id", metavar="POLICY_ID")
    attach.set_defaults(run=_attach)
    spent = key_commands.add_parser("spend", help="spend against each cap of a key's policy")
    spent.add_argument("key_id", metavar="ID")
    spent.add_argument("--run", dest="run_id", metavar="RUN_ID", help="for the per-run caps")
    spent.set_defaults(run=_spend)

    approval_commands = commands.add_parser("approvals", help="calls held for approval").add_subparsers(
        title="approvals commands")
    listing = approval_commands.add_parser("list", help="list approvals (pending by default)")
    listing.add_argument("--status", default="pending", help="pending, approved, denied, used, expired or all")
    add_limit(listing, "approvals")
    listing.set_defaults(run=_approvals_list)
    showing = approval_commands.add_parser("show", help="one approval: what would be sent, on which account")
    showing.add_argument("approval_id", metavar="APPROVAL_ID")
    showing.set_defaults(run=_approval_show)
    for name, approve in (("approve", True), ("deny", False)):
        decide = approval_commands.add_parser(name, help=f"{name} a pending approval")
        decide.add_argument("approval_id", metavar="APPROVAL_ID")
        decide.add_argument("--note")
        decide.add_argument("--by", help="who decides (recorded)")
        decide.set_defaults(run=_decide, approve=approve)

    commands.add_parser(
        "reconcile", help="charge and close reservations left by dead processes; prune closed minute/hour counters",
    ).set_defaults(run=_reconcile)

    run_commands = commands.add_parser("runs", help="agent runs").add_subparsers(title="runs commands")
    show_run = run_commands.add_parser("show", help="a run's timeline across vendors, with running totals")
    show_run.add_argument("run_id", metavar="RUN_ID")
    show_run.add_argument("--json", action="store_true")
    show_run.set_defaults(run=_runs_show)
    stop_run = run_commands.add_parser("stop", help="halt a run: every key refuses its calls (run_halted)")
    stop_run.add_argument("run_id", metavar="RUN_ID")
    stop_run.add_argument("--reason", metavar="TEXT", help="why (the agent's refusals quote it)")
    stop_run.set_defaults(run=_runs_stop)
    resume_run = run_commands.add_parser("resume", help="lift a run's halt; its stop conditions count afresh")
    resume_run.add_argument("run_id", metavar="RUN_ID")
    resume_run.set_defaults(run=_runs_resume)

    audit.register(commands)

    price_commands = commands.add_parser("prices", help="vendor prices").add_subparsers(title="prices commands")
    reprice = price_commands.add_parser(
        "reconcile", help="replace estimates with the vendor's price once it has one, and ask the vendor what "
                          "became of calls whose answer did not say (a timeout, a 5xx)")
    reprice.add_argument("--vendor", help="one vendor (default: every vendor)")
    reprice.add_argument("--days", type=int, default=7, help="look this far back")
    reprice.add_argument("--limit", type=int, default=500)
    reprice.set_defaults(run=_prices_reconcile)
    sync = price_commands.add_parser(
        "sync", help="fetch prices from their source: --fx, the exchange rates of a published daily reference; "
                     "--vendor NAME, an account's own prices from the vendor's price list")
    what = sync.add_mutually_exclusive_group(required=True)
    what.add_argument("--fx", action="store_true",
                      help="exchange rates (the ECB's daily euro reference rates by default)")
    what.add_argument("--vendor", metavar="NAME", help="the vendor's own prices, for each of its accounts")
    sync.add_argument("--source", metavar="URL", help="with --fx: where to fetch them (also TOLLGATE_FX_SOURCE)")
    sync.add_argument("--key", metavar="KEY_ID",
                      help="with --vendor: that key's account only, read with its credential")
    sync.add_argument("--all", action="store_true",
                      help="with --vendor: every country the vendor lists, not only those the policies reach")
    sync.set_defaults(run=lambda args: (_prices_sync_fx if args.fx else pricecli.sync_vendor)(args))
    pricecli.register_set(price_commands)
    status = price_commands.add_parser(
        "status", help="how old each price table is, and which are past TOLLGATE_PRICE_MAX_AGE_S")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=_prices_status)


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _policy_create(args: argparse.Namespace) -> int:
    document = read_policy(args.file)
    created = with_connection(args, lambda conn, rt: store.create_policy(conn, document, args.name, rt.vendors.names()),
                              write=True)
    print(f"Created {created['id']} ({created['vendor']}) at version 1.")
    return 0


def _policy_update(args: argparse.Namespace) -> int:
    document = read_policy(args.file)
    updated = with_connection(
        args, lambda conn, rt: store.add_version(conn, args.policy_id, document, rt.vendors.names()), write=True)
    print(f"{updated['id']} is now at version {updated['current_version']}.")
    return 0


def _policy_list(args: argparse.Namespace) -> int:
    async def work(conn: AsyncConnection, runtime: bootstrap.Runtime) -> None:
        print(f"{'ID':<22} {'VENDOR':<8} {'VERSION':<8} {'KEYS':<5} NAME")
        async for row in pages.follow(lambda limit, cursor: store.list_policies(conn, limit, cursor), args.limit):
            print(f"{row['id']:<22} {row['vendor']:<8} {row['current_version']:<8} {row['keys']:<5} "
                  f"{row['name'] or ''}")

    with_connection(args, work, write=False)
    return 0


def _policy_show(args: argparse.Namespace) -> int:
    _print(with_connection(args, lambda conn, rt: store.show_policy(conn, args.policy_id), write=False))
    return 0


def _attach(args: argparse.Namespace) -> int:
    with_connection(args, lambda conn, rt: store.attach(conn, args.key_id, args.policy_id), write=True)
    print(f"{args.key_id} now follows {args.policy_id}; its next request is judged by it.")
    return 0


def _spend(args: argparse.Namespace) -> int:
    _print(with_connection(args, lambda conn, rt: spend.key_spend(conn, args.key_id, args.run_id), write=False))
    return 0


def _approvals_list(args: argparse.Namespace) -> int:
    status = None if args.status == "all" else args.status

    async def work(conn: AsyncConnection, runtime: bootstrap.Runtime) -> None:
        print(f"{'ID':<26} {'STATUS':<9} {'KEY':<18} {'ENDPOINT':<36} {'ACCOUNT':<24} {'USD':>10}  EXPIRES")
        rows = pages.follow(lambda limit, cursor: approvals.list_approvals(conn, status, None, limit, cursor),
                            args.limit)
        async for row in rows:
            account = (row["request"] or {}).get("account") or "-"
            print(f"{row['id']:<26} {row['status']:<9} {row['key_id']:<18} {row['endpoint'] or row['path']:<36} "
                  f"{account:<24} {row['predicted_usd'] or '':>10}  {row['expires_at']}")

    with_connection(args, work, write=False)
    return 0


def _approval_show(args: argparse.Namespace) -> int:
    _print(with_connection(args, lambda conn, rt: approvals.show_approval(conn, args.approval_id), write=False))
    return 0


def _acting_on(approval: dict[str, Any]) -> str:
    """One line an approver can check: the call, the account and headers it acts on."""
    sent = approval["request"] or {}
    headers = ", ".join(f"{name}: {value}" for name, value in (sent.get("headers") or {}).items()) or "none"
    account = sent.get("account") or "the key's own"
    return (f"{approval['method']} {approval['path']} on account {account}"
            f" (headers: {headers}; parameters: {json.dumps(sent.get('params') or {}, sort_keys=True)})")


def _decide(args: argparse.Namespace) -> int:
    decided = with_connection(
        args, lambda conn, rt: approvals.decide(conn, args.approval_id, args.approve, args.by, args.note), write=True)
    print(f"{decided['id']} {decided['status']}: {_acting_on(decided)}."
          + (" The agent's identical retry will pass once." if args.approve else ""))
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    closed = with_connection(args, lambda conn, rt: conn.scalar(text("SELECT tollgate_reconcile(10000)")), write=True)
    print(f"{closed} reservation(s) reconciled.")
    return 0


def _prices_reconcile(args: argparse.Namespace) -> int:
    runtime = bootstrap.runtime(settings_from(args))
    migrate.upgrade(runtime.database_url)
    settings = runtime.settings

    adapters = [a for a in runtime.vendors if args.vendor in (None, a.name)]
    if not adapters:
        print(f"tollgate: no vendor {args.vendor} (those served are: {', '.join(runtime.vendors.names())})",
              file=sys.stderr)
        return 2

    async def run() -> tuple[prices.RepriceReport, prices.RepriceReport]:
        engine = db.create_engine(runtime.database_url, settings)
        upstream = create_upstream(settings)
        keycache = KeyCache(engine, runtime.box, 60)
        resolved = prices.RepriceReport()
        try:
            repriced = await prices.reprice_vendors(engine, keycache, upstream, adapters, settings, args.days,
                                                    args.limit)
            for adapter in adapters:
                base = settings.upstream_for(adapter.name, adapter.default_upstream)
                resolved += await outcomes.resolve(engine, keycache, upstream, adapter, base, args.limit)
            return repriced, resolved
        finally:
            await upstream.aclose()
            await engine.dispose()

    report, uncertain = asyncio.run(run())
    print(f"{report.checked} estimated call(s) checked: {report.repriced} repriced, "
          f"{report.waiting} not priced by the vendor yet, {report.failed} could not be fetched.")
    if report.sealed:
        print(f"{report.sealed} estimated call(s) of the last {args.days} day(s) were already sealed by the audit "
              "chain and keep their estimate (a sealed row is never edited; the vendor's own records hold its price).")
    print(f"{uncertain.checked} call(s) of uncertain outcome checked: {uncertain.repriced} settled from the "
          f"vendor's record, {uncertain.waiting} not told yet (the estimate stands), {uncertain.failed} could "
          "not be asked.")
    return 0


def _prices_sync_fx(args: argparse.Namespace) -> int:
    settings = settings_from(args)  # no master key: exchange rates are no secret
    url = db.resolve_url(settings)
    migrate.upgrade(url)
    source = args.source or settings.fx_source

    async def run() -> tuple[fxrates.Reference, dict[str, Decimal]]:
        engine = db.create_engine(url, settings)
        try:
            return await fxrates.sync(engine, source)
        finally:
            await engine.dispose()

    reference, rates = asyncio.run(run())
    kept = sorted(set(money.shipped_fx_table().usd_per_unit) - set(rates))
    print(f"{len(rates)} exchange rates of {reference.as_of} stored from {source} (USD per unit; "
          f"EUR {rates['eur']}). Each tollgate serve installs them within TOLLGATE_FX_REFRESH_INTERVAL_S "
          f"({settings.fx_refresh_interval_s:g} s); {len(kept)} currencies the reference lacks keep "
          "the shipped rate (vendors/pricing/fx_usd.json).")
    return 0


def _prices_status(args: argparse.Namespace) -> int:
    settings = settings_from(args)  # no master key: prices are no secret
    url = db.resolve_url(settings)
    migrate.upgrade(url)

    async def run() -> None:
        engine = db.create_engine(url, settings)
        try:
            money.install_fx(await fxrates.load(engine))  # what each serve installs, from the same rows
            pricebook.install(await vendorprices.load(engine))
        finally:
            await engine.dispose()

    asyncio.run(run())
    tables = pricetables.describe(settings.price_max_age_s)
    if args.json:
        _print(tables)
        return 0
    print(f"{'TABLE':<34} {'AS OF':<11} {'AGE':<13} {'STALE':<6} SOURCE")
    for table in tables:
        print(f"{table['table']:<34} {table['as_of'] or '-':<11} {pricetables.human_age(table['age_s']):<13} "
              f"{'yes' if table['stale'] else 'no':<6} {table['source']}")
    if any(table["stale"] for table in tables):
        print(f"Stale: older than TOLLGATE_PRICE_MAX_AGE_S ({settings.price_max_age_s:g} s). "
              "`tollgate prices sync --fx` refreshes the exchange rates, `tollgate prices sync --vendor NAME` an "
              "account's own prices; the shipped tables are refreshed by editing vendors/pricing/.")
    return 0


def _runs_show(args: argparse.Namespace) -> int:
    story = with_connection(args, lambda conn, rt: runs.run_story(conn, args.run_id), write=False)
    print(json.dumps(story, indent=2, default=str) if args.json else runs.render_timeline(story))
    return 0


def _runs_stop(args: argparse.Namespace) -> int:
    halted = with_connection(args, lambda conn, rt: halts.stop(conn, args.run_id, args.reason), write=True)
    print(f"{halted['message']} Every key refuses its next call.")
    return 0


def _runs_resume(args: argparse.Namespace) -> int:
    with_connection(args, lambda conn, rt: halts.resume(conn, args.run_id), write=True)
    print(f"Run {args.run_id} resumed: its next call is judged again, its stop conditions counted from now.")
    return 0


def _rotate_upstream(args: argparse.Namespace) -> int:
    secret = secret_from_env(args.upstream_secret_env)
    with_connection(args, lambda conn, rt: rotation.rotate_upstream_secret(conn, rt.box, args.key_id, secret),
                    write=True)
    print(f"{args.key_id} now forwards with the new secret (each process within its key-cache TTL); "
          "agents keep their vault keys.")
    return 0


def rotate_master(args: argparse.Namespace) -> int:
    count = with_connection(args, lambda conn, rt: rotation.reencrypt_all(conn, rt.box), write=True)
    print(f"re-encrypted {count} upstream secret(s) under the current master key; "
          "TOLLGATE_MASTER_KEY_PREVIOUS can now be removed.")
    return 0
