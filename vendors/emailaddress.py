"""Email addresses as Resend takes them: ``a@b.com`` or ``Display Name <a@b.com>``.

``bare(value)`` returns the address lower-cased, which is what scope rules match
(domains and addresses), or raises ValueError. It is deliberately narrower than
RFC 5322: no quoted local parts, no comments, no groups, no lists in one string,
no internationalised (non-ASCII) addresses, and no unquoted display name holding
``@``, ``,``, ``;``, ``:`` or angle brackets: each is a way to make two parsers
disagree on who receives the mail. Quoted display names (``"Acme, Inc" <a@b.com>``)
are fine; the address inside the angle brackets is the one that counts.
"""

from __future__ import annotations

import re

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TLD = r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"  # starts with a letter: no all-numeric "domain"
ADDRESS = re.compile(rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>(?:{_LABEL}\.)+{_TLD})\Z")
_QUOTED_NAME = r'"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*"'
_PLAIN_NAME = r'[^"<>@,;:\\\x00-\x1f\x7f]*?'
NAMED = re.compile(rf"\s*(?:{_QUOTED_NAME}|{_PLAIN_NAME})\s*<(?P<address>[^<>]*)>\s*\Z")
MAX_LENGTH = 254
MAX_LOCAL = 64


def bare(value: str) -> str:
    named = NAMED.match(value)
    address = named.group("address") if named else value.strip()
    found = ADDRESS.match(address)
    if not found or len(address) > MAX_LENGTH or len(found.group("local")) > MAX_LOCAL:
        raise ValueError(f"not an email address: {value[:80]!r}")
    return address.lower()


def domain(address: str) -> str:
    return address.rpartition("@")[2]
