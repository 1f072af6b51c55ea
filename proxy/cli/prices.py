"""CLI commands for an account's own vendor prices: ``prices sync --vendor`` and ``prices set``.

The sync reads the vendor's price list with a key's own upstream credential, so it needs the master
key (as ``serve`` does); what it stores, each ``serve`` installs within
TOLLGATE_PRICE_REFRESH_INTERVAL_S. ``prices set`` is for a price no API tells (a Resend plan's rate,
Twilio's Verify and Lookups prices: the adapter's ``settable_prices``, which ``prices kinds`` lists),
so the operator reads it from their own pricing page or contract (proxy/vendorprices.py).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from decimal import Decimal
from typing import Any

from proxy import bootstrap, db, lookups, migrate, vendorprices
from proxy.cli.support import settings_from, with_connection
from proxy.upstream import create_upstream
from vendors import registry
from vendors.base import SettablePrice

RATE = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,12})?\Z")


def register_set(price_commands: Any) -> None:
    rate = price_commands.add_parser(
        "set", help="a price no vendor API tells, for one key or one account (a plan's rate per email, "
                    "a contract's price per Verify verification or Lookups package)")
    rate.add_argument("vendor", metavar="VENDOR")
    rate.add_argument("kind", metavar="KIND", nargs="?",
                      help="which price (`tollgate prices kinds VENDOR` lists them); optional when the vendor has one")
    rate.add_argument("rate", metavar="USD", help="USD per unit, e.g. 0.0004")
    scope = rate.add_mutually_exclusive_group(required=True)
    scope.add_argument("--key", metavar="KEY_ID", help="for this vault key only (wins over its account's)")
    scope.add_argument("--account", metavar="ACCOUNT", help="for every key whose upstream account this is")
    rate.set_defaults(run=_set)
    kinds = price_commands.add_parser("kinds", help="the prices `tollgate prices set` takes for a vendor")
    kinds.add_argument("vendor", metavar="VENDOR")
    kinds.set_defaults(run=_kinds)


def _kinds(args: argparse.Namespace) -> int:
    adapter = registry.load().get(args.vendor)
    settable = vendorprices.settable_of(adapter) if adapter is not None else ()
    if adapter is None or not settable:
        print(f"tollgate: {args.vendor} has no price to set with `tollgate prices set`.", file=sys.stderr)
        return 2
    width = max(len(price.kind) for price in settable)
    for price in settable:
        print(f"{price.kind:<{width}}  USD per {price.unit}: {price.description}")
    return 0


def sync_vendor(args: argparse.Namespace) -> int:
    runtime = bootstrap.runtime(settings_from(args))
    migrate.upgrade(runtime.database_url)
    adapter = runtime.vendors.get(args.vendor)
    if adapter is None or vendorprices.price_sync_of(adapter) is None:
        readable = [a.name for a in runtime.vendors if vendorprices.price_sync_of(a) is not None]
        print(f"tollgate: Tollgate cannot read {args.vendor}'s prices from the vendor (it can: "
              f"{', '.join(readable) or 'none'}); `tollgate prices set` stores a rate of your own.", file=sys.stderr)
        return 2

    async def run() -> list[vendorprices.SyncReport]:
        engine = db.create_engine(runtime.database_url, runtime.settings)
        upstream = create_upstream(runtime.settings)
        try:
            async with engine.connect() as conn:
                found = await vendorprices.targets(conn, runtime.box, adapter.name, args.key, args.all)
            bases = lookups.upstream_bases(runtime.settings, adapter)
            return [await vendorprices.sync(engine, upstream, bases, adapter, target) for target in found]
        finally:
            await upstream.aclose()
            await engine.dispose()

    reports = asyncio.run(run())
    if not reports:
        print(f"tollgate: no active {adapter.name} key with an upstream account: nothing to read prices with.",
              file=sys.stderr)
        return 1
    for report in reports:
        print(f"{adapter.label} account {report.account}: {report.stored} price(s) of {report.countries} "
              f"country(ies) stored, read with key {report.key_id}.")
        for failure in report.failed:
            print(f"  not read: {failure}", file=sys.stderr)
    print(f"Each tollgate serve installs them within TOLLGATE_PRICE_REFRESH_INTERVAL_S "
          f"({runtime.settings.price_refresh_interval_s:g} s); a country not read keeps the shipped price.")
    return 1 if any(report.failed for report in reports) else 0


def _set(args: argparse.Namespace) -> int:
    if not RATE.match(args.rate):
        print(f"tollgate: the rate must be a USD amount such as 0.0004, not {args.rate!r}", file=sys.stderr)
        return 2
    rate = Decimal(args.rate)

    async def work(conn: Any, runtime: bootstrap.Runtime) -> tuple[str, SettablePrice] | None:
        adapter = runtime.vendors.get(args.vendor)
        if adapter is None:
            return None
        return await vendorprices.set_rate(conn, adapter, rate, kind=args.kind, key_id=args.key, account=args.account)

    done = with_connection(args, work, write=True)
    if done is None:
        print(f"tollgate: no vendor {args.vendor}", file=sys.stderr)
        return 2
    scope, price = done
    print(f"{args.vendor} {price.kind}: USD {rate} per {price.unit} stored for {scope}; each tollgate serve uses it "
          "within TOLLGATE_PRICE_REFRESH_INTERVAL_S, over any shipped price.")
    return 0
