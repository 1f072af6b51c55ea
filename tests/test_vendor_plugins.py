"""Vendors plug in: the proxy core names none, finds adapters through a registry, and serves an
adapter of another distribution (declared in the ``tollgate.vendors`` entry-point group) end
to end with no edit under proxy/. tests/plugins/acme.py is that adapter; ``install_plugin``
writes the dist-info a ``pip install`` of its distribution would."""

from __future__ import annotations

import ast
import os
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.plugins.acme import AcmeAdapter
from tests.support import leaks
from tests.support.processes import proxy_env, tollgate_serve
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, audit_rows
from vendors import registry
from vendors.base import VendorAdapter
from vendors.stripe import StripeAdapter

REPO = Path(__file__).resolve().parents[1]
ACME_SECRET = "acme_live_" + "Q" * 24
leaks.remember_secret(ACME_SECRET)


def install_plugin(directory: Path) -> Path:
    """What installing a distribution that declares the Acme adapter leaves on sys.path."""
    dist = directory / "acme_tollgate-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-tollgate\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\nacme = tests.plugins.acme:AcmeAdapter\n")
    return directory


def test_the_registry_finds_an_installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "acme" not in registry.load().names()
    monkeypatch.syspath_prepend(str(install_plugin(tmp_path)))
    vendors = registry.load()
    assert vendors.names() == ["acme", "resend", "stripe", "twilio"]
    assert isinstance(vendors.get("acme"), AcmeAdapter)
    assert vendors.secret_patterns()[-1] == AcmeAdapter.secret_patterns[0]


def test_two_adapters_of_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="two vendor adapters are named 'stripe'"):
        registry.Registry([*registry.built_in(), StripeAdapter()])


@pytest.mark.parametrize("adapter", [*registry.built_in(), AcmeAdapter()], ids=lambda a: a.name)
def test_every_adapter_speaks_the_protocol(adapter: VendorAdapter) -> None:
    assert isinstance(adapter, VendorAdapter)
    assert re.fullmatch(r"[a-z][a-z0-9]*", adapter.name) and adapter.label and adapter.colour.startswith("#")
    assert all(h == h.lower() for h in adapter.decision_headers | adapter.forward_request_headers)


def _vendor_words() -> re.Pattern[str]:
    words = {w.lower() for a in registry.built_in() for w in (a.name, a.label)}
    return re.compile("|".join(sorted(map(re.escape, words))), re.IGNORECASE)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def vendor_names_in_core() -> list[str]:
    """Every name, attribute and string under proxy/ that names a vendor, docstrings and comments
    aside (documentation may), and every line of the console's templates and static files."""
    words, found = _vendor_words(), []
    for path in sorted((REPO / "proxy").rglob("*")):
        where = path.relative_to(REPO)
        if path.suffix == ".py":
            tree = ast.parse(path.read_text())
            docs = _docstrings(tree)
            for node in ast.walk(tree):
                text = (node.value if isinstance(node, ast.Constant) and isinstance(node.value, str)
                        and id(node) not in docs else node.id if isinstance(node, ast.Name)
                        else node.attr if isinstance(node, ast.Attribute) else None)
                if text and words.search(text):
                    found.append(f"{where}:{node.lineno}: {text[:60]!r}")  # type: ignore[attr-defined]
        elif path.suffix in (".html", ".js", ".css"):
            found += [f"{where}:{n}: {line.strip()[:60]}" for n, line in enumerate(path.read_text().splitlines(), 1)
                      if words.search(line)]
    return found


def test_the_core_names_no_vendor() -> None:
    assert vendor_names_in_core() == []


def test_the_core_scan_would_see_a_vendor_name(tmp_path: Path) -> None:
    """The scan itself: a vendor's name in code is found, in a docstring it is not."""
    tree = ast.parse('"""Stripe is fine here."""\nHEADERS = {"stripe-account"}\n')
    docs, words = _docstrings(tree), _vendor_words()
    named = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in docs
             and words.search(str(n.value))]
    assert named == ["stripe-account"]


@pytest.fixture()
def acme_upstream() -> Iterator[tuple[dict[str, str], list[dict[str, Any]]]]:
    """Acme's API as its docs say (tests/plugins/acme.py): payments in, payments out."""
    received: list[dict[str, Any]] = []
    ids = count(1)

    async def create(request: Request) -> JSONResponse:
        received.append({"headers": dict(request.headers), "body": await request.json()})
        if request.headers.get("authorization") != f"Bearer {ACME_SECRET}":
            return JSONResponse({"error": {"code": "unauthorized", "message": "bad key"}}, 401)
        body = received[-1]["body"]
        return JSONResponse({"id": f"pay_{next(ids)}", "amount_usd": body["amount_usd"],
                             "customer": body.get("customer")}, headers={"acme-request-id": "req_acme"})

    async def receipt(request: Request) -> JSONResponse:
        received.append({"host": "files", "headers": dict(request.headers), "body": await request.body()})
        return JSONResponse({"id": "file_1", "purpose": "receipt"})

    api = Starlette(routes=[Route("/v1/payments", create, methods=["POST"])])
    files = Starlette(routes=[Route("/v1/receipts", receipt, methods=["POST"])])
    with serve_asgi(api) as api_url, serve_asgi(files) as files_url:
        yield {"acme": api_url, "acme_files": files_url}, received


POLICY = {"vendor": "acme", "endpoints": {"allow": ["POST /v1/payments", "GET /v1/payments/*",
                                                   "POST /files/v1/receipts"]},
          "per_call_usd": "50.00", "caps": [{"usd": "100.00", "window": "day"}]}


def test_a_plugged_in_vendor_is_served_end_to_end(pg_url: str, sql: Any, tmp_path: Path,
                                                  acme_upstream: tuple[dict[str, str], list[dict[str, Any]]]) -> None:
    upstreams, received = acme_upstream
    env = proxy_env(pg_url, upstreams)  # TOLLGATE_UPSTREAM_ACME and, for its files host, _ACME_FILES
    env["PYTHONPATH"] = os.pathsep.join([str(install_plugin(tmp_path)), str(REPO)])
    run = f"run_{uuid.uuid4().hex}"
    with tollgate_serve(env) as (base, _process):
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        document = httpx.get(f"{base}/admin/v1/openapi.json", headers=admin).json()
        assert "acme" in document["components"]["schemas"]["KeyCreate"]["properties"]["vendor"]["enum"]
        created = httpx.post(f"{base}/admin/v1/keys", headers=admin, timeout=10,
                             json={"vendor": "acme", "policy": POLICY, "upstream_secret": ACME_SECRET})
        assert created.status_code == 201, created.text
        agent = {"authorization": f"Bearer {created.json()['key']}", "x-agent-run-id": run}

        paid = httpx.post(f"{base}/acme/v1/payments", headers=agent, json={"amount_usd": "12.50", "customer": "cus_1"})
        assert paid.status_code == 200 and paid.json()["id"] == "pay_1", paid.text
        assert received[-1]["headers"]["authorization"] == f"Bearer {ACME_SECRET}"  # the vault key stayed home
        assert "x-agent-run-id" not in received[-1]["headers"]

        too_much = httpx.post(f"{base}/acme/v1/payments", headers=agent, json={"amount_usd": "75.00"})
        assert too_much.status_code == 403 and too_much.json()["error"]["code"] == "per_call_limit"
        elsewhere = httpx.delete(f"{base}/acme/v1/payments/pay_1", headers=agent)
        assert elsewhere.status_code == 403 and elsewhere.json()["error"]["code"] == "endpoint_not_allowed"
        two_accounts = httpx.post(f"{base}/acme/v1/payments", json={"amount_usd": "1.00"},
                                  headers=[*agent.items(), ("acme-account", "a"), ("acme-account", "b")])
        assert two_accounts.status_code == 400 and two_accounts.json()["error"]["code"] == "duplicate_header"
        pasted = httpx.post(f"{base}/acme/v1/payments", json={"amount_usd": "1.00"},
                            headers={**agent, "x-agent-run-id": ACME_SECRET})  # its secret shape is known
        assert pasted.status_code == 400 and pasted.json()["error"]["code"] == "invalid_run_id"
        assert len(received) == 1  # nothing refused reached Acme
        uploaded = httpx.post(f"{base}/acme/files/v1/receipts", headers=agent, content=b"%PDF-1.7")
        assert uploaded.status_code == 200 and uploaded.json()["id"] == "file_1"
        assert received[-1]["host"] == "files" and received[-1]["body"] == b"%PDF-1.7"

    rows = audit_rows(sql, run)
    assert [(r["endpoint"], r["decision"], r["reason"]) for r in rows] == [
        ("POST /v1/payments", "allowed", None),
        ("POST /v1/payments", "blocked", "per_call_limit"),
        ("DELETE /v1/payments/pay_1", "blocked", "endpoint_not_allowed"),
        ("POST /files/v1/receipts", "allowed", None),
    ]
    assert rows[-1]["path"] == "/files/v1/receipts"  # the path the agent called
    assert {r["vendor"] for r in rows} == {"acme"}
    assert rows[0]["cost_usd"] == Decimal("12.50") and rows[0]["cost_source"] == "parsed"
    assert rows[0]["object_id"] == "pay_1" and rows[0]["upstream_request_id"] == "req_acme"
