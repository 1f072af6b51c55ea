"""Twilio: the adapter (``adapter``), which host and operation a request is (``routes``, from the
catalogues in ``operations/``, one per host, classified from Twilio's own OpenAPI documents),
what a message or call costs (``messages``, ``pricing``) and Twilio's error shape (``errors``)."""

from vendors.twilio.adapter import TwilioAdapter

__all__ = ["TwilioAdapter"]
