"""CLI commands for the audit trail: export, the signed hash chain, monthly partitions."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import bootstrap
from proxy.audit import archives, chain, export
from proxy.cli.support import plain_connection, settings_from, with_connection
from proxy.errors import ConfigError


def register(commands: Any) -> None:
    audit = commands.add_parser("audit", help="the audit trail").add_subparsers(title="audit commands")
    export_rows = audit.add_parser("export", help="export audit rows as NDJSON or OpenTelemetry logs")
    export_rows.add_argument("--since", required=True, help="ISO date or time, UTC unless it says otherwise")
    export_rows.add_argument("--until")
    export_rows.add_argument("--format", choices=("ndjson", "otlp-json"), default="ndjson")
    export_rows.add_argument("--output", "-o", help="file to write (default: standard output)")
    export_rows.set_defaults(run=_audit_export)
    audit.add_parser("seal", help="seal every finalised audit row into the signed hash chain now").set_defaults(
        run=_audit_seal)
    audit.add_parser("new-signing-key", help="print a new Ed25519 signing key (base64)").set_defaults(
        run=lambda args: print(chain.new_private()))
    audit.add_parser("public-key", help="print the public key that verifies the chain").set_defaults(
        run=_audit_public_key)
    verify = audit.add_parser("verify", help="check the chain and its signatures (read-only)")
    verify.add_argument("--public-key", required=True, metavar="PEM_FILE")
    verify.set_defaults(run=_audit_verify)
    audit.add_parser("partitions", help="audit_events' monthly partitions (making the next ones)").set_defaults(
        run=_audit_partitions)
    archive = audit.add_parser("archive", help="sign a past month into the chain and detach its partition")
    which = archive.add_mutually_exclusive_group(required=True)
    which.add_argument("--month", type=_month, help="YYYY-MM (UTC), before the current month")
    which.add_argument("--partition", help="a partition's name, as `tollgate audit partitions` lists it")
    archive.set_defaults(run=_audit_archive)


def _audit_export(args: argparse.Namespace) -> int:
    since, until = _moment(args.since), _moment(args.until) if args.until else None
    write = export.write_otlp if args.format == "otlp-json" else export.write_ndjson
    with open(args.output, "w") if args.output else contextlib.nullcontext(sys.stdout) as out:

        async def work(conn: AsyncConnection, runtime: bootstrap.Runtime) -> int:
            count = 0
            async for batch in export.rows(conn, since, until):
                write(batch, out)
                count += len(batch)
            return count

        count = with_connection(args, work, write=False)
    print(f"exported {count} audit row(s)", file=sys.stderr)
    return 0


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError("invalid_time", f"{text!r} is not an ISO date or time (e.g. 2026-11-01)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _signer(args: argparse.Namespace) -> Ed25519PrivateKey:
    settings = bootstrap.with_secrets(settings_from(args))
    if not settings.signing_key:
        raise ConfigError("missing_signing_key", "TOLLGATE_SIGNING_KEY is required to seal the audit trail.")
    return chain.load_private(settings.signing_key)


def _audit_seal(args: argparse.Namespace) -> int:
    signer = _signer(args)
    total = 0
    while True:  # seal everything sealable now, a batch per transaction
        report = plain_connection(args, lambda conn: chain.seal(conn, signer), write=True)
        total += report.sealed
        if report.busy:
            print("another sealer is at work; try again in a moment", file=sys.stderr)
            return 1
        if report.sealed < chain.BATCH:
            print(f"sealed {total} audit row(s); chain head at {report.head_seq}")
            return 0


def _audit_public_key(args: argparse.Namespace) -> int:
    print(chain.public_pem(_signer(args)), end="")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    public = chain.load_public(Path(args.public_key).read_text())
    report = plain_connection(args, lambda conn: chain.verify(conn, public))
    if report.ok:
        archived = f", {report.archived} of them in archived partitions" if report.archived else ""
        print(f"audit chain intact: {report.rows} sealed row(s){archived}, {report.heads} signed head(s)")
        return 0
    print(f"audit chain BROKEN: {report.finding.message}", file=sys.stderr)
    return 1


def _month(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month like 2026-10") from None


def _audit_partitions(args: argparse.Namespace) -> int:
    async def work(conn: AsyncConnection) -> list[archives.Partition]:
        await archives.ensure(conn)
        return await archives.partitions(conn)

    listed = plain_connection(args, work, write=True)
    print(json.dumps([p.as_json() for p in listed], indent=2))
    return 0


def _audit_archive(args: argparse.Namespace) -> int:
    signer = _signer(args)
    name = args.partition or archives.partition_name(args.month)
    report = plain_connection(args, lambda conn: archives.archive(conn, signer, name), write=True)
    print(json.dumps(report.as_json(), indent=2))
    return 0
