"""Small wire helpers every adapter needs: the request's content type, a response's JSON."""

from __future__ import annotations

import json
from typing import Any, Mapping

from vendors.base import RequestRejected


def require_content_type(headers: Mapping[str, str], expected: str, vendor: str) -> None:
    """Refuse a body the vendor would read some other way than the adapter does."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != expected:
        raise RequestRejected(
            "unsupported_content_type",
            f"{vendor} requests must be {expected}, not {content_type or 'missing'!r}.",
        )


def json_object(body: bytes) -> dict[str, Any]:
    """A response body as a JSON object, or {} for anything else: a vendor's answer never crashes pricing."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return obj if isinstance(obj, dict) else {}
