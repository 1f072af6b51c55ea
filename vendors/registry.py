"""The one place the list of vendors is built: the built-in adapters, then every adapter that
an installed distribution declares in the ``tollgate.vendors`` entry-point group.

The proxy core never imports an adapter (as mitmproxy's core never imports an addon): it is
handed a ``Registry`` and asks it by name. A vendor of its own distribution declares

    [project.entry-points."tollgate.vendors"]
    acme = "acme_tollgate:AcmeAdapter"

and ``tollgate serve`` routes ``/acme/*`` to it with no edit to Tollgate (docs/vendors.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import metadata

from vendors.base import VendorAdapter
from vendors.resend import ResendAdapter
from vendors.stripe import StripeAdapter
from vendors.twilio import TwilioAdapter

ENTRY_POINT_GROUP = "tollgate.vendors"
# Tollgate's own routes: a vendor by one of these names would be unreachable at /<name>/.
RESERVED_NAMES = frozenset({"admin", "console", "healthz", "readyz", "metrics", "mcp", "tollgate"})


class Registry:
    """Adapters by name, in the order they were registered (built-ins first)."""

    def __init__(self, adapters: Iterable[VendorAdapter]):
        self._adapters: dict[str, VendorAdapter] = {}
        for adapter in adapters:
            if adapter.name in self._adapters:
                raise ValueError(f"two vendor adapters are named {adapter.name!r}")
            if adapter.name in RESERVED_NAMES:
                raise ValueError(f"a vendor adapter may not be named {adapter.name!r}: Tollgate's own route")
            self._adapters[adapter.name] = adapter

    def get(self, name: str) -> VendorAdapter | None:
        return self._adapters.get(name)

    def __getitem__(self, name: str) -> VendorAdapter:
        return self._adapters[name]

    def names(self) -> list[str]:
        return sorted(self._adapters)

    def __iter__(self) -> Iterator[VendorAdapter]:
        return iter(self._adapters.values())

    def __len__(self) -> int:
        return len(self._adapters)

    def secret_patterns(self) -> tuple[str, ...]:
        return tuple(pattern for adapter in self for pattern in adapter.secret_patterns)


def built_in() -> list[VendorAdapter]:
    return [StripeAdapter(), TwilioAdapter(), ResendAdapter()]


def plugged_in() -> list[VendorAdapter]:
    """Adapters of other distributions: each entry point names a class (or factory) of no arguments."""
    return [entry.load()() for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)]


def load() -> Registry:
    return Registry([*built_in(), *plugged_in()])
