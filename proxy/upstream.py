"""The upstream client: httpx's interface over a pluggable transport.

httpx's default transport measured several times slower than aiohttp's client on these
machines (DESIGN.md, performance notes), so the aiohttp transport is the default and
``TOLLGATE_UPSTREAM_TRANSPORT=httpx`` switches back for comparison.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping

import httpx

from proxy.config import Settings


class UpstreamFailure(Exception):
    """The vendor could not be reached or did not answer in time; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str, *, maybe_delivered: bool):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.maybe_delivered = maybe_delivered  # False only when the request surely never left


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    elapsed_ms: float


def _transport(settings: Settings) -> httpx.AsyncBaseTransport:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30)
    if settings.upstream_transport == "httpx":
        return httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    if settings.upstream_transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=limits, trust_env=False)
    raise ValueError(f"Unknown upstream transport {settings.upstream_transport!r} (aiohttp or httpx)")


class Upstream:
    def __init__(self, settings: Settings):
        self._client = httpx.AsyncClient(
            transport=_transport(settings),
            timeout=httpx.Timeout(settings.upstream_timeout_s, connect=settings.upstream_connect_timeout_s),
            follow_redirects=False,  # a redirect to another host would be an SSRF
            trust_env=False,  # never route through an environment proxy
        )

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> UpstreamResponse:
        started = time.perf_counter()
        try:
            response = await self._client.request(method, url, headers=headers, content=body)
        except httpx.ConnectError as exc:
            raise UpstreamFailure("upstream_unreachable", f"Could not connect to the vendor: {exc}",
                                  maybe_delivered=False) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamFailure("upstream_timeout", "The vendor did not answer in time.", maybe_delivered=True) from exc
        except httpx.HTTPError as exc:
            raise UpstreamFailure("upstream_error", f"The connection to the vendor failed: {exc}",
                                  maybe_delivered=True) from exc
        elapsed = (time.perf_counter() - started) * 1000
        return UpstreamResponse(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                                response.content, elapsed)

    async def aclose(self) -> None:
        await self._client.aclose()
