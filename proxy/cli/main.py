"""The ``tollgate`` command. Exit codes: 0 done, 1 the operation was refused (the message
says why), 2 bad usage or configuration."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import bootstrap, db, embedded, keys, logs, migrate, pages, secretbox, workers
from proxy.cli import alerts, delegate, governance
from proxy.cli.support import add_limit, print_json_array, read_policy, secret_from_env, settings_from, with_connection
from proxy.errors import ConfigError, TollgateError
from proxy.policy import rules, warnings
from vendors import registry


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logs.configure(os.environ.get("TOLLGATE_LOG_FORMAT", "console"))
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except ConfigError as exc:
        print(f"tollgate: {exc.message}", file=sys.stderr)
        return 2
    except TollgateError as exc:
        print(f"tollgate: {exc.message}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tollgate",
                                     description="Governance proxy for AI agents calling money-moving SaaS APIs.")
    parser.add_argument("--config", help="TOML settings file (also TOLLGATE_CONFIG)")
    parser.add_argument("--data-dir", help="data directory for the embedded Postgres and generated secrets")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="run the proxy")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, metavar="N",
                       help="worker processes sharing the port, each a whole proxy with its own database pools "
                            "(default: TOLLGATE_WORKERS, else one per core); 1: a single process, no supervisor")
    serve.add_argument("--data-dir", dest="serve_data_dir")
    serve.set_defaults(run=_serve)

    demo = commands.add_parser("demo", help="governed calls to built-in vendor emulators, no vendor account needed")
    demo.add_argument("--data-dir", dest="demo_data_dir", help="keep the demo's database here (default: a temp dir)")
    demo.add_argument("--no-wait", action="store_true", help="play the script, print, stop everything and exit")
    demo.add_argument("--host", dest="demo_host", default="127.0.0.1",
                      help="address Tollgate listens on (0.0.0.0 in a container)")
    demo.add_argument("--port", dest="demo_port", type=int, default=0, help="its port (default: a free one)")
    demo.set_defaults(run=_demo)

    database = commands.add_parser("db", help="the database").add_subparsers(title="db commands")
    database.add_parser("upgrade", help="apply migrations").set_defaults(run=_db_upgrade)
    database.add_parser("url", help="print the database URL in use (for psql)").set_defaults(run=_db_url)
    stop = database.add_parser("stop", help="stop the embedded Postgres (refused while a tollgate serve uses it)")
    stop.add_argument("--force", action="store_true",
                      help="stop it even though a tollgate serve uses it (that proxy then fails closed)")
    stop.set_defaults(run=_db_stop)

    key_commands = commands.add_parser("keys", help="vault keys").add_subparsers(title="keys commands")
    create = key_commands.add_parser("create", help="create a vault key")
    create.add_argument("--vendor", required=True)
    create.add_argument("--policy", required=True, metavar="FILE", help="policy JSON file")
    create.add_argument("--upstream-secret-env", required=True, metavar="VAR",
                        help="environment variable holding the vendor secret (never pass it in argv)")
    create.add_argument("--upstream-account", metavar="SID")
    create.add_argument("--label")
    create.add_argument("--json", action="store_true")
    create.set_defaults(run=_keys_create)
    listing = key_commands.add_parser("list", help="list keys, newest first")
    listing.add_argument("--vendor")
    add_limit(listing, "keys")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_keys_list)
    for name, run, what in (("show", _keys_show, "show a key"), ("revoke", _keys_revoke, "revoke a key")):
        sub = key_commands.add_parser(name, help=what)
        sub.add_argument("key_id", metavar="ID")
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(run=run)

    policies = commands.add_parser("policy", help="policies").add_subparsers(title="policy commands")
    validate = policies.add_parser("validate", help="validate a policy file offline")
    validate.add_argument("file", metavar="FILE")
    validate.set_defaults(run=_policy_validate)

    governance.register(commands, key_commands, policies)
    alerts.register(commands)
    delegate.register(key_commands)

    master = commands.add_parser("master-key", help="master key").add_subparsers(title="master-key commands")
    master.add_parser("new", help="print a new random master key").set_defaults(
        run=lambda args: print(secretbox.new_master_key()))
    master.add_parser("rotate", help="re-encrypt every upstream secret under TOLLGATE_MASTER_KEY "
                      "(older keys in TOLLGATE_MASTER_KEY_PREVIOUS)").set_defaults(run=governance.rotate_master)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from proxy import httpserver
    from proxy.app import create_app

    settings = settings_from(args)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers))
                 if v is not None}
    settings = dataclasses.replace(settings, **overrides)
    if settings.workers < 0:
        raise ConfigError("bad_workers", f"--workers must be 1 or more (0: one per core), not {settings.workers}")
    logs.configure(settings.log_format)
    # Marked before the embedded Postgres starts, so `db stop` sees this process as its user from then on.
    in_use = (embedded.serving(settings.data_dir, f"http://{settings.host}:{settings.port}") if settings.embedded
              else contextlib.nullcontext())
    with in_use:
        # Once, before any worker: the embedded Postgres, the data directory's secrets, the migrations.
        runtime = bootstrap.runtime(settings)
        migrate.upgrade(runtime.database_url)
        count = workers.count(settings)
        if count == 1:
            _print_banner(runtime)
            httpserver.run(create_app(runtime), settings)
            return 0
        try:
            held = workers.hold_port(settings)
        except OSError as exc:
            raise ConfigError("port_in_use", f"cannot listen on {settings.host}:{settings.port}: "
                              f"{exc.strerror}") from None
        with held:
            runtime = dataclasses.replace(runtime, settings=dataclasses.replace(
                runtime.settings, port=held.getsockname()[1]))

            def work(sock: socket.socket, ready_fd: int) -> None:
                httpserver.serve_worker(create_app(runtime), runtime.settings, sock, ready_fd)

            return workers.Supervisor(count, held, work).run(lambda pids: _print_banner(runtime, pids))


def _demo(args: argparse.Namespace) -> int:
    # Imported here: the emulators (and the scripted agent, which names vendors) are not needed by serve.
    from emulators import demo

    chosen = args.demo_data_dir or args.data_dir
    return demo.run(Path(chosen) if chosen else None, wait=not args.no_wait, host=args.demo_host,
                    port=args.demo_port)


def _print_banner(runtime: bootstrap.Runtime, worker_pids: list[int] | None = None) -> None:
    s = runtime.settings
    where = f"embedded Postgres in {embedded.pg_dir(s.data_dir)}" if s.embedded else db.redacted(runtime.database_url)
    token = (f"admin token: {runtime.admin_token_file}" if s.embedded and not os.environ.get("TOLLGATE_ADMIN_TOKEN")
             else "admin token: from TOLLGATE_ADMIN_TOKEN")
    base = f"http://{s.host}:{s.port}"
    routes = ", ".join(f"{adapter.name}: {base}/{adapter.name}" for adapter in runtime.vendors)
    lines = [
        f"Tollgate listening on {base}  ({routes})",
        f"database: {where}",
        token,
        f"console: {base}/console  (sign in with the admin token)",
    ]
    if worker_pids:
        lines.insert(1, f"{len(worker_pids)} workers serving (pids {', '.join(map(str, worker_pids))}); "
                        "Ctrl-C stops them all")
    quickstart = next((a for a in runtime.vendors if a.quickstart), None)
    if quickstart is not None and quickstart.quickstart is not None:
        first = quickstart.quickstart
        lines += [
            "next, in another shell, create a key:",
            f"  export {first.secret_env}={first.secret_example}",
            f"  .venv/bin/tollgate keys create --vendor {quickstart.name} --policy {first.policy_file}"
            f" --upstream-secret-env {first.secret_env}",
        ]
    print("\n".join(lines), flush=True)


def _db_upgrade(args: argparse.Namespace) -> int:
    url = db.resolve_url(settings_from(args))
    migrate.upgrade(url)
    print(f"database at {migrate.head_revision()}")
    return 0


def _db_url(args: argparse.Namespace) -> int:
    print(db.resolve_url(settings_from(args)))
    return 0


def _db_stop(args: argparse.Namespace) -> int:
    data_dir = settings_from(args).data_dir
    done = embedded.stop(data_dir, force=args.force)
    where = embedded.pg_dir(data_dir)
    if done.pid is not None:
        print(f"embedded Postgres in {where} stopped (pid {done.pid})")
    elif done.stale_pid is not None:
        print(f"embedded Postgres in {where} was not running (postmaster.pid names pid {done.stale_pid}, "
              "which is not its server: a crash or a reboot left it)")
    else:
        print(f"embedded Postgres in {where} was not running")
    for serve in done.forced:
        print(f"tollgate: warning: tollgate serve (pid {serve.pid} on {serve.address}) is still running; "
              "it answers 503 until the database is back", file=sys.stderr)
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    secret = secret_from_env(args.upstream_secret_env)
    document = read_policy(args.policy)

    async def work(conn: AsyncConnection, runtime: bootstrap.Runtime) -> tuple[dict[str, Any], str]:
        return await keys.create_key(conn, runtime.box, runtime.vendors, vendor=args.vendor, upstream_secret=secret,
                                     policy_document=document, upstream_account=args.upstream_account,
                                     label=args.label)

    described, token = with_connection(args, work, write=True)
    if args.json:
        print(json.dumps({**described, "key": token}, indent=2))
    else:
        print(f"Created {described['id']} for {described['vendor']} "
              f"(policy {described['policy_id']} v{described['policy_version']}).")
        print("Vault key, shown once; store it now:")
        print(f"  {token}")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    def fetch(conn: AsyncConnection) -> pages.Fetch:
        return lambda limit, cursor: keys.list_keys(conn, args.vendor, limit=limit, cursor=cursor)

    async def work(conn: AsyncConnection, runtime: bootstrap.Runtime) -> None:
        rows = pages.follow(fetch(conn), args.limit)
        if args.json:
            await print_json_array(rows)
            return
        print(f"{'ID':<18} {'VENDOR':<8} {'STATUS':<8} {'POLICY':<22} {'LABEL'}")
        async for row in rows:
            print(f"{row['id']:<18} {row['vendor']:<8} {row['status']:<8} "
                  f"{row['policy_id'] + ' v' + str(row['policy_version']):<22} {row['label'] or ''}")

    with_connection(args, work, write=False)
    return 0


def _keys_show(args: argparse.Namespace) -> int:
    row = with_connection(args, lambda conn, runtime: keys.show_key(conn, args.key_id), write=False)
    print(json.dumps(row, indent=2))
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    row = with_connection(args, lambda conn, runtime: keys.revoke_key(conn, args.key_id), write=True)
    print(json.dumps(row, indent=2) if args.json else f"Revoked {row['id']} at {row['revoked_at']}.")
    return 0


def _policy_validate(args: argparse.Namespace) -> int:
    document = read_policy(args.file)
    vendors = registry.load()
    try:
        rules.validate(document, vendors.names())
    except rules.PolicyInvalid as exc:
        for pointer, reason in exc.errors:
            print(f"{args.file}: {pointer or '/'}: {reason}", file=sys.stderr)
        return 1
    adapter = vendors.get(document["vendor"])
    found = warnings.review(document, adapter.operations() if adapter else ())
    print(f"{args.file}: valid")
    for pattern, operations in found.matches.items():
        shown = ", ".join(operations[:5]) + (f" and {len(operations) - 5} more" if len(operations) > 5 else "")
        print(f"  {pattern}: {len(operations)} operation{'s' * (len(operations) != 1)}{': ' + shown if shown else ''}")
    for warning in found.warnings:
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    return 0
