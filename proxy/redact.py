"""Redaction: credentials wherever text is stored or logged, and message content in approvals.

Credentials are recognised by shape (vault keys, admin tokens, the vendors' secrets) so
that an agent pasting one into a header or a parameter does not put it in the audit table.
A secret with no shape (a Twilio auth token is 32 hex digits; a master key is base64) is
recognised by value instead: the process's own secrets (``remember``) and the ones a call
knows (its key's upstream secret and vault secret, handed to ``mask_secrets`` as ``known``),
whole or cut short, from their first ``KNOWN_PREFIX`` characters on.
What an operator needs to approve a call is who, how much and where, not the text of an SMS
or the body of an email: those fields are replaced by their size.
Paths name people too (a Lookup's number, a contact fetched by address): the path the audit row
stores has them masked (``mask_personal_path``), while object ids, which users query by, stay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

# Tollgate's own credentials: vault keys (the public id part kept) and admin tokens. Vendors add
# theirs (``VendorAdapter.secret_patterns``) through ``recognise``, called once per process by
# whoever builds the vendor registry (proxy/bootstrap.py).
_OWN_PATTERNS = (r"(tg_[A-Za-z0-9]{12}_)[A-Za-z0-9]+", r"tga_[A-Za-z0-9_\-]+")
SECRET_VALUES = re.compile("|".join(_OWN_PATTERNS))

# Every shape above contains an underscore: text without one holds no secret, and most
# logged and stored values (methods, statuses, ids, amounts) are decided by this test alone.
SECRET_MARK = "_"


# 12 characters of a random secret (over 60 bits) are no coincidence, and an agent that
# pastes part of one has pasted enough to matter.
KNOWN_PREFIX = 12
_process_secrets: frozenset[str] = frozenset()


def remember(*values: str | None) -> None:
    """Mask these values wherever they appear (the master keys, the admin token, the signing key)."""
    global _process_secrets
    _process_secrets = _process_secrets | {v for v in values if v and len(v) >= KNOWN_PREFIX}


def recognise(vendor_patterns: Iterable[str]) -> None:
    """Mask the vendors' credential shapes too (each must contain an underscore, see SECRET_MARK)."""
    global SECRET_VALUES
    extra = tuple(f"(?:{pattern})" for pattern in vendor_patterns)
    SECRET_VALUES = re.compile("|".join(_OWN_PATTERNS + extra))


def mask_secrets(text: str, known: Iterable[str] = ()) -> str:
    if SECRET_MARK in text:
        text = SECRET_VALUES.sub(_mask, text)
    for secret in (*known, *_process_secrets):
        if len(secret) >= KNOWN_PREFIX and secret[:KNOWN_PREFIX] in text:
            text = _mask_value(text, secret)
    return text


def _mask_value(text: str, secret: str) -> str:
    """``text`` with every run that begins like ``secret`` (for KNOWN_PREFIX characters or more)
    replaced by ``***``, as far as it goes on matching."""
    head, pieces, start = secret[:KNOWN_PREFIX], [], 0
    while (found := text.find(head, start)) >= 0:
        end = found + KNOWN_PREFIX
        while end < len(text) and end - found < len(secret) and text[end] == secret[end - found]:
            end += 1
        pieces += [text[start:found], "***"]
        start = end
    return "".join(pieces) + text[start:]


MASK = "***"  # what stands for a masked credential


def _mask(match: re.Match[str]) -> str:
    return (match.group(1) or "") + MASK


def looks_secret(text: str) -> bool:
    return SECRET_MARK in text and SECRET_VALUES.search(text) is not None


def mask_strings(value: Any, known: tuple[str, ...] = ()) -> Any:
    """Every string inside ``value`` with credentials masked (for audit summaries)."""
    if isinstance(value, str):
        return mask_secrets(value, known)
    if isinstance(value, dict):
        return {k: mask_strings(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_strings(v, known) for v in value]
    return value


CONTENT_FIELDS = frozenset({"body", "html", "text", "react", "content", "attachments"})


def redact_content(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _placeholder(v) if k.lower() in CONTENT_FIELDS else redact_content(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_content(item) for item in value]
    return value


def _placeholder(value: Any) -> str:
    size = len(value) if isinstance(value, (str, list, dict)) else 0
    unit = "characters" if isinstance(value, str) else "items"
    return f"[redacted: {size} {unit}]"


# A path segment that is a phone number: E.164 or national digits with the usual separators, as
# many digits as E.164 allows. An ISO date (Twilio's API version, 2010-04-01) is no phone number.
_PHONE = re.compile(r"\+?[0-9(][0-9 ()\-.]{5,22}\Z")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_SEPARATORS = str.maketrans("", "", " ()-.")
PHONE_HIDDEN = 4  # the digits Twilio's own Message Redaction replaces with XXXX: the last four
# What any segment _mask_segment masks contains: an address's @, an escape (%40, %2B, %20), or a
# start of +, ( or a digit and three digits (a number; Sids and ids start with letters). An ISO
# date (an API version) is the one such start that common paths carry: it is passed over here, so
# those paths cost one scan (about a microsecond) and no split.
_CANDIDATE = re.compile(r"[@%]|/(?![0-9]{4}-[0-9]{2}-[0-9]{2}(?:/|$))[+(]?[0-9]{3}")


def mask_personal_path(path: str) -> str:
    """``path`` with every segment that is a phone number or an email address masked, for the audit
    row: ``/v2/PhoneNumbers/+14155550100`` -> ``/v2/PhoneNumbers/+1415555XXXX`` (the area and exchange
    stay queryable, the subscriber does not: what Twilio's Message Redaction keeps) and
    ``/contacts/ana%40acme.example`` -> ``/contacts/***@acme.example`` (the domain, which policies
    scope by, stays). Object ids (SM..., ch_..., UUIDs) are neither and stay as they are. Judged
    by shape, so a refusal's path (one the adapter never read) is masked too."""
    if not _CANDIDATE.search(path):  # most paths (/v1/charges, Sids, UUIDs): one regex scan, no split
        return path
    return "/".join(_mask_segment(segment) for segment in path.split("/"))


def _mask_segment(segment: str) -> str:
    text = unquote(segment) if "%" in segment else segment
    local, at, domain = text.rpartition("@")
    if at and local and domain:
        return f"{MASK}@{domain}"
    digits = text.translate(_SEPARATORS)
    if _PHONE.match(text) and not _DATE.match(text) and 7 <= len(digits.lstrip("+")) <= 15:
        return digits[:-PHONE_HIDDEN] + "X" * PHONE_HIDDEN
    return segment
