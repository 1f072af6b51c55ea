"""Request paths, judged on the raw bytes the client sent, before anything decodes them.

The endpoint allowlist is only as good as the path it matches. So instead of
normalising ``/v1/../v1/refunds`` or ``/v1/refunds%2f..`` into something and hoping
the vendor reads it the same way, anything a server could read two ways is refused.
"""

from __future__ import annotations

import re

from vendors.base import RequestRejected

MAX_PATH_BYTES = 2048
# Unreserved characters plus the few sub-delims vendor paths use; no '%' at all:
# vendor object ids never need escaping, so an escape is either noise or a trick.
_SAFE_SEGMENT = re.compile(rb"^[A-Za-z0-9_\-.~:@,=+]+\Z")  # \Z, not $: $ also matches before a final "\n"


def split_vendor(raw_path: bytes) -> tuple[str, bytes]:
    """``/stripe/v1/charges`` -> ("stripe", b"/v1/charges")."""
    _, _, rest = raw_path.partition(b"/")
    vendor, slash, tail = rest.partition(b"/")
    return vendor.decode("latin-1"), slash + tail


def normalise(raw: bytes) -> str:
    if len(raw) > MAX_PATH_BYTES:
        raise RequestRejected("path_too_long", f"The request path is longer than {MAX_PATH_BYTES} bytes.", status=414)
    if not raw.startswith(b"/") or raw == b"/":
        raise RequestRejected("invalid_path", "The request path names no API endpoint.", status=404)
    segments = raw[1:].split(b"/")
    for segment in segments:
        if segment == b"":
            raise RequestRejected("invalid_path",
                                  "The request path contains an empty segment ('//' or a trailing '/').")
        if segment in (b".", b"..") or segment.endswith(b"."):
            raise RequestRejected("invalid_path", "The request path contains a dot segment, which is not allowed.")
        if b"%" in segment:
            raise RequestRejected("invalid_path", "The request path contains a percent-escape, which is not allowed.")
        if not _SAFE_SEGMENT.match(segment):
            raise RequestRejected("invalid_path", "The request path contains characters that are not allowed.")
    return raw.decode("ascii")
