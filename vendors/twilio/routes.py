"""Which Twilio host and which operation a request is, from its path alone (pure).

twilio-python sends each product to a host of its own: the REST API (messages, calls, numbers)
to api.twilio.com, Lookups to lookups.twilio.com, Verify to verify.twilio.com, Messaging
services to messaging.twilio.com, prices (Pricing v1 and v2) to pricing.twilio.com. Tollgate
reaches each through a route prefix (``/twilio/lookups/v2/...`` -> https://lookups.twilio.com/v2/...)
that the adapter's ``hosts`` name; the api host keeps the bare ``/twilio/2010-04-01/...``. Every
operation of every host is in the host's catalogue (``operations/<host>.json``, one per spec,
checked against Twilio's own OpenAPI documents by tests/test_operation_catalogues.py); anything
else is refused as
``unknown_operation``, and every refusal here names the operation it refused (``endpoint``)
so the blocked audit row does too.

The account: paths on the api host carry the Account SID (``/2010-04-01/Accounts/{AccountSid}``),
which must be one; product hosts' paths carry none (the Basic username names it, see adapter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from vendors import base
from vendors.base import RequestRejected
from vendors.catalogue import Catalogue, Entry, Match
from vendors.endpoints import looks_like_id

API_VERSION = "2010-04-01"
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}\Z")
# Twilio's product hosts, by the route prefix that reaches them (TOLLGATE_UPSTREAM_TWILIO_<PREFIX>).
HOSTS: Mapping[str, str] = MappingProxyType({
    "lookups": "https://lookups.twilio.com",
    "verify": "https://verify.twilio.com",
    "messaging": "https://messaging.twilio.com",
    # Prices (free reads). Tollgate reads phone-number prices here itself before the gate to price
    # a number purchase; agents may read it too, as any free read their policy allows.
    "pricing": "https://pricing.twilio.com",
})
OPERATIONS_DIR = Path(__file__).resolve().parent / "operations"
API_HOST = "api"  # the catalogue file of the main host (no route prefix)
# A host whose API has more than one spec (version) has a catalogue file per spec; others, <prefix>.json.
HOST_FILES: Mapping[str, tuple[str, ...]] = MappingProxyType({"pricing": ("pricing.json", "pricing_v2.json")})
# The Sids Tollgate prices and reconciles by: a malformed one is refused, not forwarded.
SID_PREFIXES = {"Messages": ("SM", "MM"), "Calls": ("CA",)}
_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}\Z")


@dataclass(frozen=True)
class Route:
    host: str | None  # a prefix of HOSTS, or None for api.twilio.com
    path: str  # the path on that host
    operation: Entry
    params: Mapping[str, str]  # the path's placeholders
    account: str | None  # the Account SID the path names
    endpoint: str  # the template with its host prefix: "GET /lookups/v2/PhoneNumbers/{PhoneNumber}"

    target: str | None  # the value of the template's last placeholder, if it ends in one

    @property
    def object_id(self) -> str | None:
        """The Sid of the object the call acts on (a number or a name is no object id)."""
        return self.target if self.target is not None and looks_like_id(self.target) else None


@lru_cache(maxsize=1)
def catalogues() -> dict[str | None, Catalogue]:
    """Each host's catalogue, read once per process."""
    found: dict[str | None, Catalogue] = {None: Catalogue.load(OPERATIONS_DIR / f"{API_HOST}.json")}
    for prefix in HOSTS:
        found[prefix] = Catalogue.load(*(OPERATIONS_DIR / name for name in HOST_FILES.get(prefix, (f"{prefix}.json",))))
    return found


def operations() -> tuple[base.Operation, ...]:
    """Every operation of every host, named as policies name them (``GET /lookups/v2/PhoneNumbers/{PhoneNumber}``)."""
    return tuple(entry.described(f"/{host}{entry.template}" if host else entry.template)
                 for host, catalogue in catalogues().items() for entry in catalogue.operations.values())


def split_host(path: str) -> tuple[str | None, str]:
    """``/lookups/v2/PhoneNumbers/+1...`` -> ("lookups", "/v2/PhoneNumbers/+1..."); the api host's paths as they are."""
    first, slash, rest = path.lstrip("/").partition("/")
    if first in HOSTS and slash:
        return first, "/" + rest
    return None, path


def route(method: str, path: str) -> Route:
    host, on_host = split_host(path)
    catalogue = catalogues()[host]
    prefix = f"/{host}" if host else ""
    try:
        found = catalogue.match(method, on_host)
    except RequestRejected as exc:
        exc.endpoint = _prefixed(catalogue.generic_template(method, on_host), prefix)
        raise
    if found is None:
        name = _prefixed(catalogue.generic_template(method, on_host), prefix)
        raise RequestRejected(
            "unknown_operation",
            f"{name} is in none of Twilio's API descriptions that Tollgate knows, so what it does and costs is "
            "unknown: refused.", status=404, endpoint=name)
    endpoint = f"{method} {prefix}{found.operation.template}"
    try:
        account = _account(host, found)
        _check_sids(found)
    except RequestRejected as exc:
        exc.endpoint = endpoint
        raise
    return Route(host, on_host, found.operation, found.params, account, endpoint, found.target)


def _prefixed(template: str, prefix: str) -> str:
    method, _, path = template.partition(" ")
    return f"{method} {prefix}{path}"


def _account(host: str | None, found: Match) -> str | None:
    if host is not None or not found.operation.template.startswith(f"/{API_VERSION}/Accounts/"):
        return None
    account = found.params.get("AccountSid", found.params.get("Sid"))
    if account is None or not ACCOUNT_SID.match(account):
        raise RequestRejected("invalid_path", f"{(account or '')[:40]!r} is not a Twilio Account SID.", status=404)
    return account


def _check_sids(found: Match) -> None:
    """Messages and Calls Sids have their own prefixes: ``Messages/CA....json`` would be read as a
    message Tollgate never priced."""
    segments = found.operation.template.strip("/").split("/")
    if len(segments) != 5 or segments[4] != "{Sid}.json" or segments[3] not in SID_PREFIXES:
        return
    sid = found.params["Sid"]
    if not (_SID.match(sid) and sid[:2] in SID_PREFIXES[segments[3]]):
        raise RequestRejected("invalid_path", f"{sid[:40]!r} is not a {segments[3]} Sid.", status=404)
