"""The one place that knows which vendors exist. The proxy core asks here by name."""

from __future__ import annotations

from vendors.base import VendorAdapter
from vendors.resend import ResendAdapter
from vendors.stripe import StripeAdapter
from vendors.twilio import TwilioAdapter

ADAPTERS: dict[str, VendorAdapter] = {adapter.name: adapter for adapter in (StripeAdapter(), TwilioAdapter(), ResendAdapter())}


def get(name: str) -> VendorAdapter | None:
    return ADAPTERS.get(name)


def names() -> list[str]:
    return sorted(ADAPTERS)
