"""CLI commands for alerts: ``tollgate alerts add|list|remove|deliveries`` (proxy/alerts)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import bootstrap, pages
from proxy.alerts import subscriptions
from proxy.alerts.events import KINDS
from proxy.cli.support import add_limit, print_json_array, with_connection


def register(commands: Any) -> None:
    alert_commands = commands.add_parser("alerts", help="webhook alerts").add_subparsers(title="alerts commands")
    add = alert_commands.add_parser("add", help="subscribe a webhook URL to events (prints its signing secret once)")
    add.add_argument("url", metavar="URL")
    add.add_argument("--events", required=True, metavar="LIST",
                     help=f"comma-separated: {', '.join(KINDS)}; refusal:REASON for one reason only")
    add.add_argument("--format", choices=subscriptions.FORMATS, default="json",
                     help="json (default), or slack: a Slack incoming webhook's {\"text\": ...}")
    add.add_argument("--json", action="store_true")
    add.set_defaults(run=_add)
    listing = alert_commands.add_parser("list", help="list subscriptions")
    listing.add_argument("--all", action="store_true", help="removed ones too")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_list)
    remove = alert_commands.add_parser("remove", help="remove a subscription (its pending deliveries are cancelled)")
    remove.add_argument("subscription_id", metavar="ID")
    remove.set_defaults(run=_remove)
    sent = alert_commands.add_parser("deliveries", help="deliveries, newest first, with their latest attempt")
    sent.add_argument("--subscription", metavar="ID")
    sent.add_argument("--status", choices=subscriptions.DELIVERY_STATUSES)
    add_limit(sent, "deliveries")
    sent.add_argument("--json", action="store_true")
    sent.set_defaults(run=_deliveries)


def _add(args: argparse.Namespace) -> int:
    async def work(conn: AsyncConnection, runtime: bootstrap.Runtime) -> dict[str, Any]:
        return await subscriptions.create(conn, runtime.box, args.url, args.events.split(","), args.format)

    created = with_connection(args, work, write=True)
    if args.json:
        print(json.dumps(created, indent=2, default=str))
        return 0
    print(f"Subscribed {created['id']} ({created['format']}) to {', '.join(created['events'])}: {created['url']}")
    print("Signing secret, shown once; the receiver checks Tollgate-Signature with it (docs/alerts.md):")
    print(f"  {created['secret']}")
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = with_connection(args, lambda conn, runtime: subscriptions.list_subscriptions(conn, args.all), write=False)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(f"{'ID':<22} {'FORMAT':<6} {'EVENTS':<40} URL")
    for row in rows:
        gone = f"  (removed {row['removed_at']:%Y-%m-%d %H:%M})" if row["removed_at"] else ""
        print(f"{row['id']:<22} {row['format']:<6} {','.join(row['events']):<40} {row['url']}{gone}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    row = with_connection(args, lambda conn, runtime: subscriptions.remove(conn, args.subscription_id), write=True)
    print(f"Removed {row['id']}; its pending deliveries are cancelled.")
    return 0


def _deliveries(args: argparse.Namespace) -> int:
    def fetch(conn: AsyncConnection) -> pages.Fetch:
        return lambda limit, cursor: subscriptions.deliveries(conn, args.subscription, args.status, limit, cursor)

    async def work(conn: AsyncConnection, runtime: bootstrap.Runtime) -> None:
        rows = pages.follow(fetch(conn), args.limit)
        if args.json:
            await print_json_array(rows)
            return
        print(f"{'EVENT':<12} {'KIND':<17} {'SUBSCRIPTION':<22} {'STATUS':<10} {'TRIES':>5}  LAST ANSWER")
        async for row in rows:
            answer = row["error"] or (f"HTTP {row['status_code']}" if row["status_code"] else "")
            print(f"{row['event_id']:<12} {row['kind']:<17} {row['subscription_id']:<22} {row['status']:<10} "
                  f"{row['attempts']:>5}  {answer}")

    with_connection(args, work, write=False)
    return 0
