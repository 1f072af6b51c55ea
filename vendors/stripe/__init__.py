"""Stripe: the adapter (``adapter``) and the catalogue of every operation stripe-python can
send (``catalogue``, read from ``operations.json``)."""

from vendors.stripe.adapter import StripeAdapter

__all__ = ["StripeAdapter"]
