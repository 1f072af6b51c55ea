"""The upstream client: one small interface (``send``), backends chosen by measurement.

Measured on these 2-core machines against a local nginx, CPU per request on one
connection (bench/REPORT.md has the full comparison under load):

    aiohttp ClientSession directly          ~70 us
    httpx AsyncClient + httpx-aiohttp      ~330 us
    httpx AsyncClient, default transport   ~670 us (and it degrades with concurrency)

So the request path uses aiohttp directly by default; ``TOLLGATE_UPSTREAM_TRANSPORT``
selects ``httpx-aiohttp`` or ``httpx`` (httpx's interface) for comparison or if aiohttp
misbehaves with some upstream. Every backend refuses redirects (a redirect to another host
would be an SSRF) and ignores proxy settings from the environment.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx

from proxy.config import Settings
from proxy.errors import UpstreamFailure


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    elapsed_ms: float


class Upstream(Protocol):
    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


def create_upstream(settings: Settings) -> Upstream:
    if settings.upstream_transport == "aiohttp":
        return AiohttpUpstream(settings)
    if settings.upstream_transport in ("httpx", "httpx-aiohttp"):
        return HttpxUpstream(settings)
    raise ValueError(f"Unknown upstream transport {settings.upstream_transport!r} (aiohttp, httpx-aiohttp or httpx)")


class AiohttpUpstream:
    def __init__(self, settings: Settings):
        self._timeout = aiohttp.ClientTimeout(total=settings.upstream_timeout_s,
                                              sock_connect=settings.upstream_connect_timeout_s)
        self._session: aiohttp.ClientSession | None = None  # made on first use, inside the event loop

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, trust_env=False)
        return self._session

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> UpstreamResponse:
        started = time.perf_counter()
        try:
            async with self._client().request(method, url, headers=dict(headers), data=body or None,
                                              allow_redirects=False) as response:
                content = await response.read()
                answer = {k.lower(): v for k, v in response.headers.items()}
                status = response.status
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamFailure("upstream_unreachable", f"Could not connect to the vendor: {exc}",
                                  maybe_delivered=False) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamFailure("upstream_timeout", "The vendor did not answer in time.",
                                  maybe_delivered=True) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailure("upstream_error", f"The connection to the vendor failed: {exc}",
                                  maybe_delivered=True) from exc
        return UpstreamResponse(status, answer, content, (time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class HttpxUpstream:
    def __init__(self, settings: Settings):
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30)
        if settings.upstream_transport == "httpx-aiohttp":
            from httpx_aiohttp import AiohttpTransport

            transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits, trust_env=False)
        else:
            transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.upstream_timeout_s, connect=settings.upstream_connect_timeout_s),
            follow_redirects=False,
            trust_env=False,
        )

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> UpstreamResponse:
        started = time.perf_counter()
        try:
            response = await self._client.request(method, url, headers=headers, content=body)
        except httpx.ConnectError as exc:
            raise UpstreamFailure("upstream_unreachable", f"Could not connect to the vendor: {exc}",
                                  maybe_delivered=False) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamFailure("upstream_timeout", "The vendor did not answer in time.",
                                  maybe_delivered=True) from exc
        except httpx.HTTPError as exc:
            raise UpstreamFailure("upstream_error", f"The connection to the vendor failed: {exc}",
                                  maybe_delivered=True) from exc
        elapsed = (time.perf_counter() - started) * 1000
        return UpstreamResponse(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                                response.content, elapsed)

    async def aclose(self) -> None:
        await self._client.aclose()
