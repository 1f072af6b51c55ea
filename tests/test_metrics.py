"""/metrics stays bounded whatever an agent sends (issue 17 item 8): in shadow mode, where
calls the allowlist would refuse are forwarded, 3,000 made-up paths grew /metrics from 8 KB
to 853 KB. The endpoint label of a forwarded call is an operation of its adapter's catalogue
or ``unknown``, even for an adapter that names unknown calls by their path (the Acme plug-in
in tests/plugins/acme.py does, as a third party's adapter may)."""

from __future__ import annotations

import uuid

import httpx
from starlette.applications import Starlette

from proxy import bootstrap
from proxy.app import create_app
from tests.plugins.acme import AcmeAdapter
from tests.support import leaks
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, settings_for
from vendors import registry

ACME_SECRET = "acme_live_" + "M" * 24
leaks.remember_secret(ACME_SECRET)


def series(client: httpx.Client) -> list[str]:
    return [line for line in client.get("/metrics").text.splitlines() if line and not line.startswith("#")]


def test_made_up_paths_in_shadow_mode_add_no_series(pg_url: str) -> None:
    vendors = registry.Registry([*registry.built_in(), AcmeAdapter()])
    with serve_asgi(Starlette()) as acme:  # answers 404 to everything: the vendor never heard of these paths
        runtime = bootstrap.runtime(settings_for(pg_url, {"acme": acme}), vendors)
        with serve_asgi(create_app(runtime), lifespan="on") as proxy_url, \
                httpx.Client(base_url=proxy_url, timeout=10) as client:
            created = client.post("/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, json={
                "vendor": "acme", "upstream_secret": ACME_SECRET,
                "policy": {"vendor": "acme", "mode": "shadow", "endpoints": {"allow": ["POST /v1/payments"]}}})
            assert created.status_code == 201, created.text
            agent = {"authorization": f"Bearer {created.json()['key']}"}

            made_up = [f"/acme/v1/{uuid.uuid4().hex}" for _ in range(501)]
            assert client.get(made_up[0], headers=agent).status_code == 404  # forwarded: shadow mode
            after_one = series(client)
            for path in made_up[1:]:
                assert client.get(path, headers=agent).status_code == 404
            after_all = series(client)

    assert len(after_all) == len(after_one)
    text = "\n".join(after_all)
    assert 'decision="shadow_blocked",endpoint="unknown",reason="endpoint_not_allowed",vendor="acme"' in text
    assert not any(path.rsplit("/", 1)[1] in text for path in made_up)
