"""Redaction of message content before a request is stored for people to read (approvals).

What an operator needs to decide is who, how much and where; not the text of an SMS or the
body of an email. Those fields are replaced by their size.
"""

from __future__ import annotations

from typing import Any

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
