"""The ASGI application: vendor routes go to the proxy handler as plain ASGI (the hot
path), everything else (admin API, health) to a small Starlette app."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from proxy import __version__, db, fxrates, leases, metrics, migrate, prices, pricetables, vendorprices
from proxy.admin.api import AdminAPI
from proxy.agentapi import PREFIX as AGENT_PREFIX
from proxy.agentapi import AgentAPI
from proxy.alerts.delivery import Deliverer, Options
from proxy.asgi import Receive, Scope, Send
from proxy.audit import archives, chain
from proxy.auth import Authenticator
from proxy.bootstrap import Runtime
from proxy.console.app import create_console
from proxy.console.base import VendorLook
from proxy.gate import Gate
from proxy.handler import ProxyHandler
from proxy.hotdb import HotDB
from proxy.idempotency import Deriver
from proxy.keycache import KeyCache
from proxy.mcp.server import PATH as MCP_PATH
from proxy.mcp.server import McpEndpoint
from proxy.refusals import AuthRefusals
from proxy.upstream import Upstream, create_upstream

PRICE_SYNC_LEASE = "price_sync"
_STARLETTE_PREFIXES = ("/admin/", "/healthz", "/readyz", "/metrics", "/console", AGENT_PREFIX)
log = structlog.get_logger("tollgate.app")


@dataclass
class Services:
    engine: AsyncEngine  # the admin API's and the console's
    hot: HotDB
    upstream: Upstream
    proxy: ProxyHandler
    mcp: McpEndpoint  # /mcp: the vendors' operations as MCP tools, through the same pipeline
    revocations: AsyncEngine  # revocations only: never behind the console (proxy/db.py)
    key_loads: AsyncEngine  # the request path's key-cache misses


class TollgateApp:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.services: Services | None = None
        self._web = Starlette(
            routes=[Route("/healthz", self._healthz), Route("/readyz", self._readyz), Route("/metrics", self._metrics)],
            lifespan=self._lifespan
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(_STARLETTE_PREFIXES):
            assert self.services is not None, "lifespan has not run"
            if scope["path"] == MCP_PATH:
                await self.services.mcp(scope, receive, send)
            else:
                await self.services.proxy(scope, receive, send)
        else:
            await self._web(scope, receive, send)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        settings = self.runtime.settings
        url = self.runtime.database_url
        engine = db.create_engine(url, settings)
        revocations, key_loads = db.create_engine(url, settings, db.REVOKE), db.create_engine(url, settings, db.KEYS)
        hot = await HotDB.open(url, settings)
        upstream = create_upstream(settings)
        gate = Gate(hot, settings.reservation_ttl_s)
        keycache = KeyCache(key_loads, self.runtime.box, settings.key_cache_ttl_s)
        auth = Authenticator(key_loads, self.runtime.box, keycache, settings.key_cache_ttl_s)
        refused = AuthRefusals(hot)
        proxy = ProxyHandler(settings, hot, gate, auth, refused, upstream, self.runtime.vendors,
                             Deriver(key_loads, self.runtime.box))
        mcp = McpEndpoint(proxy, auth, self.runtime.vendors, __version__, key_loads)
        self.services = Services(engine, hot, upstream, proxy, mcp, revocations, key_loads)
        admin = AdminAPI(engine, self.runtime.box, settings.admin_token, self.runtime.vendors, revocations)
        app.router.routes.extend(admin.routes())
        app.router.routes.extend(AgentAPI(engine, self.runtime.box, auth, self.runtime.vendors.names()).routes())
        # The console is a client of the admin API: it calls these same routes in-process.
        looks = {adapter.name: VendorLook(adapter.label, adapter.colour) for adapter in self.runtime.vendors}
        console_app, console = create_console(Starlette(routes=admin.routes()), settings.admin_token, engine,
                                              settings.console_secure_cookie, looks)
        app.router.routes.extend([Route("/console", _to_console), Mount("/console", console_app)])
        rates = fxrates.Refresher(engine, settings.price_max_age_s)
        with contextlib.suppress(Exception):  # the database may be down: the loop below tries again
            await rates.refresh()  # before the first call, so none is priced from the shipped rates alone
        alerts_engine = db.create_engine(url, settings, db.ALERTS)
        alerts = Deliverer(alerts_engine, self.runtime.box, Options.from_settings(settings))
        own_prices = vendorprices.Refresher(engine)
        with contextlib.suppress(Exception):
            await own_prices.refresh()  # likewise: no call priced from the shipped table when the account has its own
        background = [asyncio.create_task(_reconcile_forever(gate, settings.reconcile_interval_s)),
                      asyncio.create_task(_partition_forever(engine)),
                      asyncio.create_task(rates.forever(settings.fx_refresh_interval_s)),
                      asyncio.create_task(own_prices.forever(settings.price_refresh_interval_s)),
                      asyncio.create_task(alerts.forever())]
        if settings.price_sync_interval_s > 0:  # one process a period reads the vendors' price lists again
            background.append(asyncio.create_task(leases.every(
                engine, PRICE_SYNC_LEASE, settings.price_sync_interval_s,
                lambda: _resync_prices(engine, self.runtime, upstream, own_prices))))
        if settings.reprice_interval_s > 0:
            background.append(asyncio.create_task(prices.forever(
                engine, KeyCache(engine, self.runtime.box, 60), upstream, self.runtime.vendors, settings,
                settings.reprice_interval_s)))
        if settings.signing_key:
            signer = chain.load_private(settings.signing_key)
            background.append(asyncio.create_task(_seal_forever(engine, signer, settings.seal_interval_s)))
        else:
            log.warning("audit_sealing_off", hint="set TOLLGATE_SIGNING_KEY to seal the audit trail")
        try:
            async with mcp.running():
                yield
        finally:
            for task in background:
                task.cancel()
            await console.aclose()
            await alerts.aclose()
            await upstream.aclose()
            await refused.aclose()  # the last counts of unauthenticated refusals
            await hot.close()
            for each in (engine, revocations, key_loads, alerts_engine):
                await each.dispose()

    async def _metrics(self, request: Request) -> Response:
        assert self.services is not None
        try:
            open_count = await self.services.hot.fetchval(
                "SELECT count(*) FROM reservations WHERE reconciled_at IS NULL")
            metrics.OPEN_RESERVATIONS.set(open_count)
        except Exception:  # the database may be down: the other metrics still matter then
            pass
        for pool, state, value in self.services.hot.pool_stats():
            metrics.POOL_CONNECTIONS.labels(pool, state).set(value)
        for table in pricetables.describe(self.runtime.settings.price_max_age_s):
            metrics.PRICE_TABLE_AGE.labels(table["table"]).set(-1 if table["age_s"] is None else table["age_s"])
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def _healthz(self, request: Request) -> JSONResponse:
        # Which process answered: with `tollgate serve --workers N` a client (or a test) can tell
        # the workers behind the one port apart. A pid says nothing an attacker can use.
        return JSONResponse({"status": "ok"}, headers={"tollgate-worker": str(os.getpid())})

    async def _readyz(self, request: Request) -> JSONResponse:
        assert self.services is not None
        try:
            async with self.services.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                current = await migrate.current_revision(conn)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        head = migrate.head_revision()
        if current != head:
            return JSONResponse({"status": "migrations_pending", "current": current, "head": head}, status_code=503)
        # How old each price table is: readiness does not depend on it (stale prices are warned of,
        # or refused call by call when so configured), but a probe's body is where operators look.
        # Not where each came from: /readyz answers anyone, and a configured source URL may name an
        # internal host or carry a token (tollgate prices status shows it to the operator).
        prices = [{k: v for k, v in table.items() if k != "source"}
                  for table in pricetables.describe(self.runtime.settings.price_max_age_s)]
        return JSONResponse({"status": "ready", "migration": current, "prices": prices})


async def _to_console(request: Request) -> Response:
    return RedirectResponse("/console/", status_code=307)


async def _reconcile_forever(gate: Gate, interval_s: float) -> None:
    """Every process sweeps expired reservations; SKIP LOCKED lets them share the work."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            closed = await gate.reconcile()
            if closed:
                log.warning("reservations_reconciled", count=closed)
        except Exception as exc:  # the database may be down; try again next time
            log.error("reconcile_failed", error=type(exc).__name__)


async def _partition_forever(engine: AsyncEngine, interval_s: float = 6 * 3600) -> None:
    """Keep audit_events' partitions months ahead, so a row never waits for one."""
    while True:
        try:
            async with engine.begin() as conn:
                made = await archives.ensure(conn)
            if made:
                log.info("audit_partitions_made", count=made)
        except Exception as exc:
            log.error("audit_partitions_failed", error=type(exc).__name__)
        await asyncio.sleep(interval_s)


async def _seal_forever(engine: AsyncEngine, signer: Ed25519PrivateKey, interval_s: float) -> None:
    """Every process offers to seal; an advisory lock lets one at a time do it."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            async with engine.begin() as conn:
                await chain.seal(conn, signer)
        except Exception as exc:
            log.error("seal_failed", error=type(exc).__name__)


async def _resync_prices(engine: AsyncEngine, runtime: Runtime, upstream: Upstream,
                         own_prices: vendorprices.Refresher) -> bool:
    """The lease holder's daily job: read every account's prices, then install them here at once."""
    done = await vendorprices.sync_all(engine, runtime.box, upstream, runtime.settings, runtime.vendors)
    await own_prices.refresh()
    return done


def create_app(runtime: Runtime) -> TollgateApp:
    return TollgateApp(runtime)
