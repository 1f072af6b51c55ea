"""Resend: the adapter (``adapter``) and the catalogue of api.resend.com's operations
(``operations.json``, classified from Resend's own OpenAPI document), as vendors/twilio/ and
vendors/stripe/ keep theirs beside their adapters."""

from vendors.resend.adapter import ResendAdapter, prices

__all__ = ["ResendAdapter", "prices"]
