"""``tollgate demo``: governed calls to the vendor emulators, without a vendor account.

It lives here, not under proxy/, because the scripted agent names vendors and proxy/ is
vendor-blind; ``proxy/cli`` only dispatches to ``run``. Everything runs in this process (the
emulators and the proxy on uvicorn threads) except the embedded Postgres, which is stopped
through ``proxy.embedded.stop`` on the way out, so Ctrl-C leaves nothing behind.

Tollgate's own log lines (one per request, the generated-secret warnings) go to a file, not the
terminal: the terminal tells the story, and the log is named so a curious reader can follow it.
``tollgate serve`` keeps logging to stderr; only this command redirects it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from sqlalchemy import text

from emulators import resend_api, stripe_api, twilio_api
from emulators.serving import served
from proxy import bootstrap, config, db, embedded, logs, migrate
from proxy.app import create_app

# A checkout has policy-schemas/ at its top; the wheel carries it inside proxy (pyproject.toml).
_CHECKOUT_EXAMPLES = Path(__file__).resolve().parents[1] / "policy-schemas" / "examples"
EXAMPLES = (_CHECKOUT_EXAMPLES if _CHECKOUT_EXAMPLES.is_dir()
            else Path(__file__).resolve().parents[1] / "proxy" / "policy" / "schemas" / "examples")
STRIPE_SECRET = "sk_test_demo" + "0" * 20
TWILIO_ACCOUNT = "AC" + "d3" * 16
TWILIO_TOKEN = "demo_twilio_auth_token"
RESEND_SECRET = "re_demo_" + "0" * 24
AUDIT_COLUMNS = ("id", "vendor", "method", "path", "decision", "reason", "predicted_usd", "cost_usd", "key_id")


@dataclass
class Demo:
    base: str  # the proxy
    admin: httpx.Client
    run_id: str
    database_url: str
    settings: config.Settings


def run(data_dir: Path | None, *, wait: bool, host: str = "127.0.0.1", port: int = 0) -> int:
    """Play the script, print the audit rows, serve until Ctrl-C (unless not ``wait``), stop everything.
    Tollgate listens on ``host`` and ``port`` (0: a free one); the emulators stay on loopback."""
    own_dir = data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="tollgate-demo-")) if data_dir is None else data_dir
    log_path = log_file(directory, own_dir=own_dir)
    log_path.parent.mkdir(parents=True, exist_ok=True)  # a --data-dir may not exist yet
    signal.signal(signal.SIGTERM, _interrupt)  # a `kill` stops it as Ctrl-C does
    with log_path.open("a", encoding="utf-8") as log_stream:
        logs.configure("json", stream=log_stream)
        print(f"Tollgate's log: {log_path}", flush=True)
        code = 0
        try:
            _show(directory, wait=wait, listen=(host, port))
        except KeyboardInterrupt:  # Ctrl-C before the story ended: stop as cleanly, say so
            print("interrupted: stopping everything the demo started", flush=True)
            code = 130
        finally:
            stopped = embedded.stop(directory, force=True)
            print(f"stopped the emulators, Tollgate and the embedded Postgres (pid {stopped.pid})", flush=True)
            if own_dir:
                shutil.rmtree(directory, ignore_errors=True)
    return code


def log_file(directory: Path, *, own_dir: bool) -> Path:
    """Inside a chosen data dir; beside a temporary one, so the log outlives the directory removed on exit."""
    return directory.with_name(f"{directory.name}.log") if own_dir else directory / "demo.log"


def _show(directory: Path, *, wait: bool, listen: tuple[str, int]) -> None:
    with _stack(directory, listen) as demo:
        _play(demo)
        _print_audit(demo)
        print(f"\nconsole: {demo.base}/console  (sign in with the admin token in {directory / 'admin-token'})")
        if wait:
            with contextlib.suppress(KeyboardInterrupt):  # from the line that invites it, not after it
                print("serving until Ctrl-C ...", flush=True)
                signal.pause()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _stack(directory: Path, listen: tuple[str, int]) -> Iterator[Demo]:
    with contextlib.ExitStack() as stack:
        upstreams = {
            "stripe": stack.enter_context(served(stripe_api.create_app(STRIPE_SECRET))),
            "twilio": stack.enter_context(served(twilio_api.create_app(TWILIO_ACCOUNT, TWILIO_TOKEN))),
            "resend": stack.enter_context(served(resend_api.create_app(RESEND_SECRET))),
        }
        print(f"emulators: {', '.join(f'{name} {url}' for name, url in upstreams.items())}", flush=True)
        settings = config.Settings(data_dir=directory, upstreams=upstreams, log_format="json")
        stack.enter_context(embedded.serving(directory, "tollgate demo"))
        runtime = bootstrap.runtime(settings)
        migrate.upgrade(runtime.database_url)
        print(f"embedded Postgres in {embedded.pg_dir(directory)}", flush=True)
        base = stack.enter_context(served(create_app(runtime), lifespan="on", host=listen[0], port=listen[1]))
        print(f"Tollgate on {base}\n", flush=True)
        token = runtime.admin_token_file.read_text().strip()
        admin = stack.enter_context(httpx.Client(base_url=base, headers={"authorization": f"Bearer {token}"},
                                                 timeout=15))
        yield Demo(base, admin, f"demo_{uuid.uuid4().hex[:12]}", runtime.database_url, settings)


def _key(demo: Demo, example: str, secret: str, **overrides: Any) -> tuple[str, str]:
    policy = {**json.loads((EXAMPLES / example).read_text()), **overrides}
    body = {"vendor": policy["vendor"], "policy": policy, "upstream_secret": secret, "label": f"demo {example}"}
    if policy["vendor"] == "twilio":
        body["upstream_account"] = TWILIO_ACCOUNT
    created = demo.admin.post("/admin/v1/keys", json=body)
    created.raise_for_status()
    described = created.json()
    print(f"key {described['id']} for {policy['vendor']} from policy-schemas/examples/{example}", flush=True)
    return str(described["id"]), str(described["key"])


def _play(demo: Demo) -> None:
    stripe_id, stripe_key = _key(demo, "stripe-quickstart.json", STRIPE_SECRET)
    _, twilio_key = _key(demo, "twilio-appointment-reminders.json", TWILIO_TOKEN)
    # The example runs in shadow mode (it logs what it would refuse); the demo enforces it.
    _, resend_key = _key(demo, "resend-receipts.json", RESEND_SECRET, mode="enforce")
    print(f"\nagent run {demo.run_id} ({_sdk_note()}):", flush=True)
    _charge(demo, stripe_key, 1200, "a $12.00 charge")
    _charge(demo, stripe_key, 9900, "a $99.00 charge, over the $50.00 per-call limit")
    for attempt in (2, 3, 4):  # an agent's retry loop: the policy's duplicates window stops it
        _charge(demo, stripe_key, 1200, f"the same $12.00 charge again (a retry loop, attempt {attempt})")
    _sms(demo, twilio_key)
    _email(demo, resend_key)
    revoked = demo.admin.post(f"/admin/v1/keys/{stripe_id}/revoke")
    revoked.raise_for_status()
    print(f"  - revoked the Stripe key {revoked.json()['id']}", flush=True)
    _charge(demo, stripe_key, 500, "a $5.00 charge with the revoked key")


def _sdk_note() -> str:
    try:
        import stripe  # noqa: F401
    except ImportError:
        return "Stripe over plain HTTP (pip install '.[dev]' for the SDK); Twilio and Resend over plain HTTP"
    return "Stripe through the stripe SDK; Twilio and Resend over plain HTTP"


def _charge(demo: Demo, key: str, amount: int, what: str) -> None:
    params = {"amount": amount, "currency": "usd", "source": "tok_visa"}
    try:
        import stripe
    except ImportError:
        response = httpx.post(f"{demo.base}/stripe/v1/charges", data=params, timeout=15,
                              headers={"authorization": f"Bearer {key}", "x-agent-run-id": demo.run_id})
        _said(demo, what, response.headers.get("x-tollgate-request-id"))
        return
    client = stripe.StripeClient(key, base_addresses={"api": f"{demo.base}/stripe"}, max_network_retries=0)
    try:
        headers = {"headers": {"X-Agent-Run-Id": demo.run_id}}
        charge = client.v1.charges.create(params=params, options=headers)  # type: ignore[arg-type]
        request_id = charge.last_response.headers.get("x-tollgate-request-id") if charge.last_response else None
    except stripe.StripeError as exc:
        request_id = exc.headers.get("x-tollgate-request-id") if exc.headers else None
    _said(demo, what, request_id)


def _sms(demo: Demo, key: str) -> None:
    form = {"To": "+14155550123", "MessagingServiceSid": "MG9752274e9e519418a7406176694466fa",
            "Body": "Reminder: your appointment is tomorrow at 10:00."}
    response = httpx.post(f"{demo.base}/twilio/2010-04-01/Accounts/{TWILIO_ACCOUNT}/Messages.json", data=form,
                          auth=(TWILIO_ACCOUNT, key), headers={"x-agent-run-id": demo.run_id}, timeout=15)
    _said(demo, "an SMS to a US number", response.headers.get("x-tollgate-request-id"))


def _email(demo: Demo, key: str) -> None:
    email = {"from": "receipts@acme.example", "to": ["someone@competitor.example"], "subject": "Your receipt",
             "html": "<p>Thank you.</p>"}
    response = httpx.post(f"{demo.base}/resend/emails", json=email, timeout=15,
                          headers={"authorization": f"Bearer {key}", "x-agent-run-id": demo.run_id})
    _said(demo, "an email to a domain the policy does not allow", response.headers.get("x-tollgate-request-id"))


def _said(demo: Demo, what: str, request_id: str | None) -> None:
    row = _rows(demo, "request_id = :request", {"request": request_id})
    if not row:
        print(f"  - {what}: no audit row (request id {request_id})", flush=True)
        return
    found = row[0]
    cost = found["cost_usd"] if found["cost_usd"] is not None else found["predicted_usd"]
    priced = f", ${cost} USD" if cost is not None and found["decision"] == "allowed" else ""
    print(f"  - {what}: {found['decision']} ({found['reason'] or 'no reason'}{priced})", flush=True)


def _rows(demo: Demo, where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    columns = ", ".join(AUDIT_COLUMNS)
    return asyncio.run(_query(demo, f"SELECT {columns} FROM audit_events WHERE {where} ORDER BY id", params))


async def _query(demo: Demo, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    engine = db.create_engine(demo.database_url, demo.settings)
    try:
        async with engine.connect() as conn:
            return [dict(row) for row in (await conn.execute(text(sql), params)).mappings()]
    finally:
        await engine.dispose()


def _print_audit(demo: Demo) -> None:
    """The run's rows laid out as psql's aligned format shows them."""
    rows = _rows(demo, "agent_run_id = :run", {"run": demo.run_id})
    cells = [[("" if row[c] is None else str(row[c])) for c in AUDIT_COLUMNS] for row in rows]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(AUDIT_COLUMNS)]
    print(f"\naudit rows of the run (SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_events ...):")
    print(" " + " | ".join(c.center(w) for c, w in zip(AUDIT_COLUMNS, widths, strict=True)))
    print("-" + "-+-".join("-" * w for w in widths) + "-")
    for line in cells:
        print(" " + " | ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)))
    print(f"({len(cells)} row{'s' * (len(cells) != 1)})", flush=True)
