"""Request paths, judged on the raw bytes the client sent, before anything decodes them.

The endpoint allowlist is only as good as the path it matches. So instead of
normalising ``/v1/../v1/refunds`` or ``/v1/refunds%2f..`` into something and hoping
the vendor reads it the same way, anything a server could read two ways is refused.
"""

from __future__ import annotations

import re

from vendors.base import RequestRejected

MAX_PATH_BYTES = 2048
# Unreserved characters plus the few sub-delims vendor paths use. Of escapes, only ``%40`` ("@")
# and ``%2B`` ("+"), as SDKs write an email address used as an id (resend-python quotes a
# contact's address into ``/contacts/ana%40acme.example``): each stands for a character that is
# allowed as it is anyway, appears in no vendor's resource names, and splits no segment. Any
# other escape is either noise or a trick (``%2e%2e``, ``%2f``, an escaped letter of a resource
# name that a deny rule would then not see), so it is refused. Either spelling is one segment
# to the vendor (the upstream client may send ``%40`` as ``@``: the same segment), and a
# policy's ``*`` matches either.
_SAFE_SEGMENT = re.compile(rb"^(?:[A-Za-z0-9_\-.~:@,=+]|%40|%2B)+\Z")  # \Z, not $: $ also matches before "\n"


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
        if b"%" in segment and segment.replace(b"%40", b"").replace(b"%2B", b"").find(b"%") >= 0:
            raise RequestRejected("invalid_path", "The request path contains a percent-escape other than %40 (@) "
                                  "or %2B (+), which is not allowed.")
        if not _SAFE_SEGMENT.match(segment):
            raise RequestRejected("invalid_path", "The request path contains characters that are not allowed.")
    return raw.decode("ascii")
