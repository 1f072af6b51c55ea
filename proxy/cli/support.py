"""Helpers shared by the CLI's command modules."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import textwrap
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from proxy import bootstrap, config, db, migrate
from proxy.errors import ConfigError


def settings_from(args: argparse.Namespace) -> config.Settings:
    env = dict(os.environ)
    data_dir = getattr(args, "serve_data_dir", None) or args.data_dir
    if data_dir:
        env["TOLLGATE_DATA_DIR"] = data_dir
    return config.load(args.config, env)


def with_connection(args: argparse.Namespace, work: Callable[..., Coroutine[Any, Any, Any]], write: bool) -> Any:
    runtime = bootstrap.runtime(settings_from(args))
    migrate.upgrade(runtime.database_url)

    async def run() -> Any:
        engine = db.create_engine(runtime.database_url, runtime.settings)
        try:
            async with (engine.begin() if write else engine.connect()) as conn:
                return await work(conn, runtime)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def add_limit(parser: argparse.ArgumentParser, what: str) -> None:
    """``--limit N``: print the newest N; without it, every one, read from the database a page at a time."""
    parser.add_argument("--limit", type=_positive, metavar="N",
                        help=f"only the newest N {what} (default: all of them, fetched a page at a time)")


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 up, not {raw!r}")
    return int(raw)


async def print_json_array(rows: AsyncIterator[Any]) -> None:
    """The rows as one JSON array, printed as they arrive (the same text as json.dumps(list, indent=2))."""
    first = True
    async for row in rows:
        print("[" if first else ",")
        print(textwrap.indent(json.dumps(row, indent=2, default=str), "  "), end="")
        first = False
    print("[]" if first else "\n]")


def secret_from_env(name: str) -> str:
    """The vendor secret held in environment variable ``name`` (secrets never go in argv)."""
    secret = os.environ.get(name)
    if not secret:
        raise ConfigError("missing_upstream_secret", f"environment variable {name} is empty or not set")
    return secret


def read_policy(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError("unreadable_policy", f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError("invalid_policy_json", f"{path} is not valid JSON: {exc}") from None


def plain_connection(args: argparse.Namespace, work: Callable[..., Coroutine[Any, Any, Any]],
                     write: bool = False) -> Any:
    """A connection that needs no master key: auditors' tools (read-only) and the sealer."""
    settings = settings_from(args)

    async def run() -> Any:
        engine = db.create_engine(db.resolve_url(settings), settings)
        try:
            async with (engine.begin() if write else engine.connect()) as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(run())
