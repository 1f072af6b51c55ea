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

Every backend bounds the answer too (``TOLLGATE_UPSTREAM_MAX_BODY_BYTES``), counted as it is
decoded, so a compressed answer cannot grow past it either: a 40 MB answer used to be read
into memory and relayed whole. Past the bound the call fails as ``upstream_too_large``, one
the vendor did receive (``maybe_delivered``): it is settled as a timeout is, at its estimate.
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


def too_large(limit: int, status: int) -> UpstreamFailure:
    return UpstreamFailure("upstream_too_large",
                           f"The vendor's answer is larger than the {limit} bytes Tollgate relays, so it was not "
                           "relayed. The call reached the vendor and may have taken effect.",
                           maybe_delivered=True, upstream_status=status)


class Bounded:
    """The answer's decoded chunks, joined, or ``too_large`` as soon as they pass the limit.

    ``exact``: the answer said its length, uncompressed. Over the limit, it is refused unread;
    within it, the HTTP parser reads exactly that many bytes, so the backend reads it whole as
    before the bound (chunk by chunk measured 7-12 us more CPU per 2.6 KB answer)."""

    def __init__(self, limit: int, status: int, headers: Mapping[str, str]):
        declared = headers.get("content-length", "")
        self.exact = declared.isdigit() and headers.get("content-encoding", "identity") == "identity"
        if self.exact and int(declared) > limit:
            raise too_large(limit, status)
        self._limit, self._status = limit, status
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise too_large(self._limit, self._status)
        self._chunks.append(chunk)

    def body(self) -> bytes:
        return self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)


class AiohttpUpstream:
    def __init__(self, settings: Settings):
        self._timeout = aiohttp.ClientTimeout(total=settings.upstream_timeout_s,
                                              sock_connect=settings.upstream_connect_timeout_s)
        self._max_body = settings.upstream_max_body_bytes
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
                status = response.status
                bounded = Bounded(self._max_body, status, response.headers)
                if bounded.exact:
                    content = await response.read()
                else:
                    async for chunk in response.content.iter_any():
                        bounded.add(chunk)
                    content = bounded.body()
                answer = {k.lower(): v for k, v in response.headers.items()}
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
        self._max_body = settings.upstream_max_body_bytes

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> UpstreamResponse:
        started = time.perf_counter()
        try:
            async with self._client.stream(method, url, headers=headers, content=body) as response:
                bounded = Bounded(self._max_body, response.status_code, response.headers)
                if bounded.exact:
                    content = await response.aread()
                else:
                    async for chunk in response.aiter_bytes():
                        bounded.add(chunk)
                    content = bounded.body()
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
                                content, elapsed)

    async def aclose(self) -> None:
        await self._client.aclose()
