"""Tollgate's own errors: a small hierarchy, each with a stable reason code.

Reason codes end up in the audit table and in admin/CLI error bodies, so they are
never renamed. HTTP status follows the class.
"""

from __future__ import annotations


class TollgateError(Exception):
    status = 500

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class InvalidInput(TollgateError):
    status = 400


class NotFound(TollgateError):
    status = 404


class Unavailable(TollgateError):
    """The database (or another dependency) cannot be reached: fail closed."""

    status = 503


class Conflict(TollgateError):
    """The thing exists but is in a state that does not allow this (an approval already decided)."""

    status = 409
