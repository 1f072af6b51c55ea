"""The bare pass-through: the ceiling the governed path is measured against (bench/).

``/<vendor>/*`` is forwarded to the upstream with the same ``proxy.upstream.Upstream``
(httpx interface, transport from ``TOLLGATE_UPSTREAM_TRANSPORT``) and the same server as
``tollgate serve`` (proxy/httpserver.py), and nothing else: no key check, no policy, no
database, no log line. Not for production: it
forwards without governance. The headers passed each way are the vendor adapter's, as on
the governed path.

    python -m proxy.bare --vendor stripe --port 8081 --upstream http://127.0.0.1:12111
"""

from __future__ import annotations

import argparse
import dataclasses

from proxy import config, httpserver
from proxy.asgi import Receive, Scope, Send, read_body, send_response
from proxy.errors import UpstreamFailure
from proxy.upstream import Upstream, create_upstream
from vendors import registry
from vendors.base import VendorAdapter

UPSTREAM_AUTH = "Bearer bare_passthrough"


class BareApp:
    def __init__(self, settings: config.Settings, adapter: VendorAdapter):
        self.settings = settings
        self.prefix = "/" + adapter.name
        self.forward_request = adapter.forward_request_headers
        self.forward_response = adapter.forward_response_headers
        self.base = settings.upstream_for(adapter.name, adapter.default_upstream)
        self.upstream: Upstream | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope["path"]
        if scope["type"] != "http" or not path.startswith(self.prefix + "/"):
            await send_response(send, 404, {"content-type": "text/plain"}, b"not found")
            return
        assert self.upstream is not None
        body = await read_body(receive, self.settings.max_body_bytes)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        forwarded = {k: v for k, v in headers.items() if k in self.forward_request}
        forwarded["authorization"] = UPSTREAM_AUTH
        url = self.base + path[len(self.prefix):]
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        try:
            response = await self.upstream.send(scope["method"], url, forwarded, body)
        except UpstreamFailure as failure:
            await send_response(send, 502, {"content-type": "text/plain"}, failure.reason.encode())
            return
        passed = {k: v for k, v in response.headers.items() if k in self.forward_response}
        await send_response(send, response.status, passed, response.body)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.upstream = create_upstream(self.settings)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.upstream is not None:
                    await self.upstream.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxy.bare", description="bare pass-through for benchmarks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--vendor", required=True, help="the vendor route to serve, e.g. the bench's fake upstream's")
    parser.add_argument("--upstream", required=True, help="the vendor's upstream base URL, e.g. http://127.0.0.1:12111")
    args = parser.parse_args(argv)
    adapter = registry.load().get(args.vendor)
    if adapter is None:
        parser.error(f"unknown vendor {args.vendor!r}")
    settings = config.load()  # TOLLGATE_UPSTREAM_TRANSPORT, TOLLGATE_MAX_BODY_BYTES, timeouts: as tollgate serve
    settings = dataclasses.replace(settings, host=args.host, port=args.port,
                                   upstreams={**settings.upstreams, args.vendor: args.upstream})
    print(f"bare pass-through on http://{args.host}:{args.port}/{args.vendor} -> {args.upstream} "
          f"(transport {settings.upstream_transport})", flush=True)
    httpserver.run(BareApp(settings, adapter), settings)  # the same server as `tollgate serve`
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
