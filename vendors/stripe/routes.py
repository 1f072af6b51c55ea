"""Which of Stripe's hosts a request is for, and the operations Tollgate knows but never forwards.

stripe-python 16 sends most operations to api.stripe.com, and a few to hosts of their own
(``stripe/__init__.py``'s ``DEFAULT_UPLOAD_API_BASE``, ``DEFAULT_METER_EVENTS_API_BASE`` and
``DEFAULT_CONNECT_API_BASE``; each service names its ``base_address``): file uploads to
files.stripe.com, the meter event stream to meter-events.stripe.com, Connect OAuth to
connect.stripe.com. Each has a route prefix of its own (``/stripe/files/v1/files``), which is also
how policies name its operations (``POST /files/v1/files``); its upstream comes from the adapter's
``hosts`` or ``TOLLGATE_UPSTREAM_STRIPE_<PREFIX>``, never from the request. The catalogue says which
host each operation is sent to (``operations.json``'s ``host``): an operation sent to another host
than the SDK sends it to is refused with the route it belongs on.

Refused whatever a policy says (``operation_not_served``):

* Connect OAuth (``POST /oauth/token``, ``POST /oauth/deauthorize``). A token exchange answers with
  an access token (and a refresh token) for the connected account: a secret the agent would hold
  and use without Tollgate, which is what a vault key exists to prevent. Deauthorizing disconnects
  an account from the platform, which is no agent's call. Neither is a call Tollgate can govern
  after it answers, so neither is routed (connect.stripe.com has no upstream here).
* ``GET /v1/quotes/{quote}/pdf`` (files host): the answer is a PDF, which Tollgate cannot check
  against a key's customer scope as it checks the JSON of ``GET /v1/quotes/{quote}`` (guarantee 9).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from vendors.base import RequestRejected
from vendors.endpoints import Endpoint
from vendors.stripe.catalogue import PLACEHOLDER, Facts, prefix_of

API = "api"
# Route prefix -> default upstream (the adapter's ``hosts``): the SDK's own defaults.
HOSTS: Mapping[str, str] = MappingProxyType({
    "files": "https://files.stripe.com",
    "meter_events": "https://meter-events.stripe.com",
})
CONNECT = "connect"
_PREFIXES = frozenset({*HOSTS, CONNECT})

NOT_SERVED: Mapping[str, str] = MappingProxyType({
    "POST /connect/oauth/token": (
        "Connect OAuth's token exchange answers with an access token for the connected account, a secret the "
        "agent would use without Tollgate: Tollgate does not forward it, whatever the policy says. Connect "
        "accounts from the platform's own systems and give the agent a vault key bound to the account "
        "(tollgate keys create --upstream-account acct_...)."),
    "POST /connect/oauth/deauthorize": (
        "Connect OAuth's deauthorize disconnects an account from the platform: Tollgate does not forward it, "
        "whatever the policy says; it is an operator's call, made with the platform's own key."),
    "GET /files/v1/quotes/{id}/pdf": (
        "A quote's PDF cannot be checked against the key's customer scope the way GET /v1/quotes/{id} is, so "
        "Tollgate does not forward it; read the quote as JSON instead."),
})


def split(path: str) -> tuple[str | None, str]:
    """``/files/v1/files`` -> ("files", "/v1/files"); api.stripe.com's paths (``/v1/...``) as they are."""
    if path.startswith("/v"):  # every api path: /v1 or /v2 (one test on every call)
        return None, path
    first, _, rest = path[1:].partition("/")
    if first in _PREFIXES:
        return first, "/" + rest
    return None, path


def check(method: str, host: str | None, on_host: str, endpoint: Endpoint[Facts] | None, name: str) -> None:
    """Refuse an operation the catalogue does not hold on this host, or holds and Tollgate never forwards."""
    prefix = f"/{host}" if host else ""
    if endpoint is None:
        name = f"{method} {prefix}{name.partition(' ')[2]}"
        raise RequestRejected(
            "unknown_operation", f"{name} is not an operation stripe-python sends, so Tollgate cannot tell what it "
            "does or costs, and refuses it (vendors/stripe/operations.json lists the ones it knows).",
            status=404, endpoint=name)
    if endpoint.facts.host != (host or API):
        asked = f"{method} {prefix}{PLACEHOLDER.sub('{id}', endpoint.template)}"
        raise RequestRejected(
            "unknown_operation", f"stripe-python sends {method} {PLACEHOLDER.sub('{id}', endpoint.template)} to "
            f"Stripe's {endpoint.facts.host} host, not this one: through Tollgate that is "
            f"/stripe{prefix_of(endpoint.facts.host)}{on_host} (stripe.StripeClient's "
            f"base_addresses={{{endpoint.facts.host!r}: 'http://<tollgate>/stripe{prefix_of(endpoint.facts.host)}'}}).",
            status=404, endpoint=asked)
    refused = NOT_SERVED.get(endpoint.name)
    if refused is not None:
        raise RequestRejected("operation_not_served", refused, status=403, endpoint=endpoint.name)
