"""Twilio: the adapter (``adapter``), what a message or call costs (``messages``, ``pricing``)
and Twilio's error shape (``errors``)."""

from vendors.twilio.adapter import TwilioAdapter

__all__ = ["TwilioAdapter"]
