"""Guarantee 5 over the whole suite: collect everything Tollgate wrote while the tests ran
and search it for every secret the tests used.

What is collected, in one directory per run:
- the JSON log lines of every in-process Tollgate (``log_stream()``, installed by conftest);
- the log file of every ``tollgate serve`` subprocess (``remember_log``, from processes.py);
- every response an in-process Tollgate sent: admin responses, error bodies, proxied
  answers (``RecordingApp``, wrapped around it by servers.py);
- every row of every table of the suite's databases (``dump_database``, at their teardown).

What is searched for: the upstream secrets and tokens of tests/support/tollgate.py, every
vault key an in-process Tollgate handed out (read from the one response that shows it,
POST /admin/v1/keys, a child's POST /admin/v1/keys/{id}/children or /tollgate/v1/delegate, or the
console's POST /console/keys, which is then recorded without it:
showing a new key once is the design), and anything shaped like an unmasked vault key, whichever process minted it.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import psycopg

from tests.support.tollgate import ADMIN_TOKEN, MASTER_KEY, RESEND_SECRET, STRIPE_SECRET, TWILIO_TOKEN

OUTPUT = Path(tempfile.mkdtemp(prefix="tollgate-suite-output-"))
SECRETS: set[str] = {STRIPE_SECRET, TWILIO_TOKEN, RESEND_SECRET, ADMIN_TOKEN, MASTER_KEY}
PREFIX = 16  # a secret cut short is still a secret (proxy/redact.py masks from 12 characters on)
VAULT_KEY = re.compile(r"tg_[0-9A-Za-z]{12}_[0-9A-Za-z]{16,}")  # a masked one ends in "_***"
_log_files: list[Path] = []
_lock = threading.Lock()


def remember_secret(secret: str) -> None:
    SECRETS.add(secret)


def remember_log(path: Path) -> None:
    _log_files.append(path)


def _append(name: str, text: str) -> None:
    with _lock, (OUTPUT / name).open("a", encoding="utf-8", errors="backslashreplace") as sink:
        sink.write(text + "\n")


class _Tee:
    """Where in-process structlog writes: the run's log file, and stderr as pytest has it now."""

    def write(self, text: str) -> int:
        _append("inprocess.log", text.rstrip("\n"))
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def log_stream() -> _Tee:
    return _Tee()


class RecordingApp:
    """ASGI wrapper: records each HTTP response (status, headers, body) the app sends."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def recording(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    _record(scope, start, b"".join(chunks))
            await send(message)

        await self.app(scope, receive, recording)


def _minted_child(shown_once: tuple[Any, ...]) -> bool:
    """A child key minted (proxy/delegation.py) by an operator or by the agent: shown once, too."""
    method, path, status = shown_once
    return method == "POST" and status == 201 and (
        path == "/tollgate/v1/delegate" or (path.startswith("/admin/v1/keys/") and path.endswith("/children")))


def _record(scope: dict[str, Any], start: dict[str, Any], body: bytes) -> None:
    shown_once = (scope["method"], scope["path"], start.get("status"))
    if shown_once == ("POST", "/admin/v1/keys", 201) or _minted_child(shown_once):
        created = json.loads(body)
        remember_secret(created.pop("key"))  # the one place a new key is shown, by design
        body = json.dumps(created).encode()
    elif shown_once == ("POST", "/admin/v1/alerts/subscriptions", 201):
        created = json.loads(body)
        remember_secret(created.pop("secret"))  # a webhook signing secret, likewise shown once
        body = json.dumps(created).encode()
    elif shown_once == ("POST", "/console/keys", 201):  # the console's page for it
        page = body.decode("utf-8", errors="replace")
        for key in set(VAULT_KEY.findall(page)):
            remember_secret(key)
            page = page.replace(key, "<the new key, shown once>")
        body = page.encode()
    headers = " ".join(f"{k.decode('latin-1')}: {v.decode('latin-1')}" for k, v in start.get("headers", []))
    path = scope["path"]  # what the agent asked for: a secret it pasted there is its own, not Tollgate's writing
    for secret in SECRETS:
        path = path.replace(secret[:PREFIX], "<pasted>")
    _append("responses.log", f"{scope['method']} {path} {start.get('status')} {headers}\n"
                             f"{body.decode('utf-8', errors='backslashreplace')}")


def dump_database(url: str, name: str) -> None:
    """Every row of every table in the public schema, as text."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE' ORDER BY table_name").fetchall()]
        for table in tables:
            rows = conn.execute(f'SELECT t::text FROM "{table}" t').fetchall()  # names from the catalog
            _append(f"db-{name}.txt", "\n".join(f"{table}: {row[0]}" for row in rows))


def findings() -> list[str]:
    """Where a secret appears in what Tollgate wrote: ``file: what`` per finding."""
    return scan([*sorted(OUTPUT.iterdir()), *_log_files])


def scan(sources: list[Path]) -> list[str]:
    found = []
    for path in sources:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8", errors="backslashreplace")
        found += [f"{path}: a secret ending {secret[-4:]!r}" for secret in SECRETS if secret in text]
        found += [f"{path}: the first {PREFIX} characters of a secret ending {secret[-4:]!r}" for secret in SECRETS
                  if len(secret) > PREFIX and secret not in text and secret[:PREFIX] in text]
        found += [f"{path}: vault key {match[:16]}..." for match in set(VAULT_KEY.findall(text))]
    return found


def summary() -> str:
    sizes = {p.name: p.stat().st_size for p in OUTPUT.iterdir()}
    return f"{len(SECRETS)} secrets searched in {sizes} and {len(_log_files)} tollgate serve logs"
