"""``tollgate keys delegate KEY_ID --run RUN_ID --ttl 15m [--policy FILE]``: mint a child key.

The operator's way to hand a sub-agent a key of its own (proxy/delegation.py): bound to one
run, short-lived, with a policy that only narrows the parent's, counted against the parent's
caps too, and revoked with it. The token is printed once, as ``keys create`` prints it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import bootstrap, delegation
from proxy.cli.support import read_policy, with_connection


def register(key_commands: Any) -> None:
    mint = key_commands.add_parser("delegate", help="mint a child key bound to one run (revoked with its parent)")
    mint.add_argument("key_id", metavar="KEY_ID", help="the parent key")
    mint.add_argument("--run", dest="run_id", metavar="RUN_ID",
                      help="the run its calls record (default: the parent's own run, if it is bound to one)")
    mint.add_argument("--ttl", default=None, metavar="TTL",
                      help="how long it lives: seconds, or 90s, 15m, 2h (default 15m; at most the parent's "
                           "delegation.max_ttl_s)")
    mint.add_argument("--policy", metavar="FILE", help="a narrowing of the parent's policy (JSON)")
    mint.add_argument("--label")
    mint.add_argument("--json", action="store_true")
    mint.set_defaults(run=_delegate)


def _delegate(args: argparse.Namespace) -> int:
    narrowing = read_policy(args.policy) if args.policy else None
    ttl = delegation.parse_ttl(args.ttl) if args.ttl else None

    async def work(conn: AsyncConnection, runtime: bootstrap.Runtime) -> tuple[dict[str, Any], str]:
        return await delegation.mint(conn, runtime.box, args.key_id, run_id=args.run_id, ttl_s=ttl,
                                     policy=narrowing, label=args.label, vendors=runtime.vendors.names())

    described, token = with_connection(args, work, write=True)
    if args.json:
        print(json.dumps({**described, "key": token}, indent=2))
        return 0
    print(f"Delegated {described['id']} from {args.key_id} (depth {described['depth']}) for run "
          f"{described['agent_run_id']}, until {described['expires_at']}.")
    print("Vault key, shown once; hand it to the sub-agent:")
    print(f"  {token}")
    return 0
