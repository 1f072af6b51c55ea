"""Tollgate's errors: one tree, each error with a stable reason code (proxy/reasons.py).

    TollgateError                 reason + message; the root (vendors/base.py, the adapters' seam)
    ├── Refused                   a vendor call stopped before forwarding: the vendor's error shape (403)
    │   ├── RequestRejected       the request cannot be read unambiguously (400, 413, 414, 431)
    │   ├── AuthRefused           the vault key is missing, malformed, wrong or not this vendor's (401)
    │   │   └── MalformedKey      the string is not a vault key at all (vaultkeys.parse)
    │   └── Denial                the policy refuses the call; a verdict the gate records, not raised
    ├── Unavailable               the database cannot decide: fail closed, nothing forwarded (503)
    ├── UpstreamFailure           no answer, or one too large (502, 504); ``maybe_delivered``: it may have acted
    ├── InvalidInput              the admin API or the CLI was given bad input (400)
    │   └── PolicyInvalid         a policy document fails the schema, every error by JSON pointer (policy/rules.py)
    ├── NotFound                  the admin API or the CLI names something that does not exist (404)
    ├── Conflict                  it exists, in a state that does not allow this (409)
    ├── AdminError                the console's view of an admin API refusal (console/client.py)
    └── ConfigError               the process cannot run as configured (the CLI exits 2; bootstrap.py)
        └── MasterKeyError        the master key is malformed or opens no stored secret (secretbox.py)

Reason codes are never renamed; the class says the HTTP status unless the raiser gives one
(an adapter may answer invalid requests with its vendor's own, such as Resend's 422).
"""

from __future__ import annotations

from vendors.base import Refused, RequestRejected, TollgateError

__all__ = [
    "AuthRefused",
    "ConfigError",
    "Conflict",
    "Denial",
    "InvalidInput",
    "MalformedKey",
    "NotFound",
    "Refused",
    "RequestRejected",
    "TollgateError",
    "Unavailable",
    "UpstreamFailure",
]


class AuthRefused(Refused):
    status = 401


class MalformedKey(AuthRefused):
    """The presented string is not a Tollgate vault key (shape or checksum)."""


class Denial(Refused):
    """The policy's refusal of one call (policy/rules.py): returned in a verdict and recorded by
    the gate with the call's audit row, or in shadow mode recorded and not enforced."""

    def __repr__(self) -> str:
        return f"Denial({self.reason!r}, {self.message!r})"


class Unavailable(TollgateError):
    """The database (or another dependency) cannot be reached: fail closed."""

    status = 503


class UpstreamFailure(TollgateError):
    """The vendor could not be reached, did not answer in time, or answered more than Tollgate relays."""

    status = 502

    def __init__(self, reason: str, message: str, *, maybe_delivered: bool, status: int | None = None,
                 upstream_status: int | None = None):
        super().__init__(reason, message, status=status)
        self.maybe_delivered = maybe_delivered  # False only when the request surely never left
        self.upstream_status = upstream_status  # the vendor's status, when it did answer


class InvalidInput(TollgateError):
    status = 400


class NotFound(TollgateError):
    status = 404


class Conflict(TollgateError):
    """The thing exists but is in a state that does not allow this (an approval already decided)."""

    status = 409


class ConfigError(TollgateError):
    """The process cannot start as configured; the CLI prints the message and exits 2."""

    status = 2
