"""The one place that knows which vendors exist. The proxy core asks here by name."""

from __future__ import annotations

from vendors.base import VendorAdapter
from vendors.stripe import StripeAdapter

ADAPTERS: dict[str, VendorAdapter] = {adapter.name: adapter for adapter in (StripeAdapter(),)}


def get(name: str) -> VendorAdapter | None:
    return ADAPTERS.get(name)


def names() -> list[str]:
    return sorted(ADAPTERS)
