"""Alerts: the webhook subscriptions and their latest deliveries, read through the admin API.

Subscribing stays with the CLI and the admin API, where the signing secret is shown once to
the person who will configure the receiver; this page never has a secret to show."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proxy.console.base import Console

RECENT_DELIVERIES = 50


def routes(console: Console) -> list[Route]:
    return [Route("/alerts", console.page(alerts_page), methods=["GET"], name="alerts")]


async def alerts_page(console: Console, request: Request) -> Response:
    subscriptions = await console.client.get("/alerts/subscriptions")
    deliveries = await console.client.get("/alerts/deliveries", limit=RECENT_DELIVERIES)
    return console.render(request, "alerts.html", subscriptions=subscriptions["data"], deliveries=deliveries["data"])
