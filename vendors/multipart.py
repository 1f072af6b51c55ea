"""A strict reader of multipart/form-data bodies: one reading or a refusal, never a guess.

A multipart body is forwarded as it came, so what the proxy decides on must be what the vendor
reads, and multipart has room for two readings that form bodies do not: a boundary given twice
in the Content-Type, a preamble or an epilogue some parsers scan for parts, the boundary string
inside a part, part headers folded over lines or repeated, ``Content-Transfer-Encoding`` (is the
part base64 or not?), ``filename*`` beside ``filename``, a backslash before a closing quote
(an escape to some parsers, a character to others), a name given twice. Each is refused, and a
body is read only in the canonical shape that SDKs write (stripe-python's
``_multipart_data_generator.py``, curl ``-F``, browsers): ``--boundary CRLF``, each part's
headers, a blank line, its content, ``CRLF --boundary``, and ``--boundary-- CRLF`` at the end.

Why not python-multipart (the parser starlette can use): it is not installed with Tollgate
(starlette names it as an optional extra), and it is a streaming parser that hands parts to
callbacks; the rules above would have to be written around it all the same. A body is at most
``TOLLGATE_MAX_BODY_BYTES`` and already in memory, so reading it whole is simpler to hold strict.

Text parts come back as ``(name, value)`` pairs for vendors.formencoding.build, which reads their
bracket names by the same rules as a form's; a file part comes back as its name, filename, content
type, size and SHA-256, never its bytes (they are forwarded, not kept: no audit row or approval
holds a file, and the digest binds an approval to the exact file).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from vendors.base import RequestRejected
from vendors.formencoding import MAX_PAIRS

MEDIA_TYPE = "multipart/form-data"
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
# RFC 2046's boundary characters, without the space it allows inside one (a space is where parsers differ);
# unquoted, only those that are also token characters and not RFC 2231's apostrophe ("boundary=a=b",
# "boundary=a/b" and "boundary=us'en'x" are each read two ways).
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=?]{1,70}")
_BARE_BOUNDARY = re.compile(r"[0-9A-Za-z+_\-.]{1,70}")
_FORM_DATA = re.compile(r"[ \t]*form-data[ \t]*", re.IGNORECASE)
_PARAM = re.compile(rf'[ \t]*;[ \t]*({_TOKEN})=(?:"([^"]*)"|({_TOKEN}))[ \t]*')
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab is whitespace in a header; the rest is not text
_PART_HEADERS = ("content-disposition", "content-type")
MAX_HEADER_VALUE = 1024


@dataclass(frozen=True)
class FilePart:
    """A part with a filename: what is known of it, without its bytes."""

    name: str
    filename: str
    content_type: str | None
    size: int
    sha256: str


@dataclass(frozen=True)
class Multipart:
    fields: tuple[tuple[str, str], ...]  # the text parts, (name, value), in order
    files: tuple[FilePart, ...]


def boundary_of(content_type: str) -> str:
    """The one boundary of ``multipart/form-data; boundary=...``; any other parameter, or two, refused."""
    media, _, rest = content_type.partition(";")
    if media.strip().lower() != MEDIA_TYPE:
        raise _malformed(f"its Content-Type is {media.strip()[:40]!r}, not {MEDIA_TYPE}")
    params: dict[str, str] = {}
    for item in rest.split(";") if rest else ():
        name, equals, value = item.strip().partition("=")
        name = name.lower()
        if not equals or not _TOKEN_RE.fullmatch(name):
            raise _malformed(f"its Content-Type has a parameter that is not name=value: {item.strip()[:40]!r}")
        if name in params:
            raise _malformed(f"its Content-Type gives {name!r} twice")
        if value.startswith('"'):
            if len(value) < 2 or not value.endswith('"') or '"' in value[1:-1] or "\\" in value:
                raise _malformed("its Content-Type's boundary is not one plain quoted string")
            value = value[1:-1]
        elif not _BARE_BOUNDARY.fullmatch(value):
            raise _malformed("its boundary must be quoted unless it is only letters, digits and +_-.")
        params[name] = value
    if set(params) != {"boundary"}:
        raise _malformed("its Content-Type must carry exactly one parameter, the boundary")
    if not _BOUNDARY.fullmatch(params["boundary"]):
        raise _malformed("its boundary must be 1-70 letters, digits or '()+_,-./:=? (no spaces)")
    return params["boundary"]


def decode(body: bytes, content_type: str, *, where: str = "body") -> Multipart:
    """The body's parts, or RequestRejected (``malformed_multipart``, ``invalid_utf8``,
    ``duplicate_parameter``, ``too_many_parameters``)."""
    dash = b"--" + boundary_of(content_type).encode("ascii")
    fields: list[tuple[str, str]] = []
    files: list[FilePart] = []
    seen: set[str] = set()
    raw_parts = _split(body, dash, where)
    for raw in raw_parts:
        name, filename, media, content = _part(raw, where)
        if name in seen:
            raise RequestRejected("duplicate_parameter", f"Part {name[:60]!r} appears more than once in the "
                                  f"request {where}.", param=name)
        seen.add(name)
        if filename is None:
            fields.append((name, _text(content, where)))
        else:
            files.append(FilePart(name, filename, media, len(content), hashlib.sha256(content).hexdigest()))
    return Multipart(tuple(fields), tuple(files))


def _split(body: bytes, dash: bytes, where: str) -> list[bytes]:
    """The parts between the delimiters; nothing before the first, nothing but CRLF after the last."""
    if not body.startswith(dash + b"\r\n"):
        raise _malformed("it must begin with its boundary line (no preamble)", where)
    delimiter = b"\r\n" + dash
    parts: list[bytes] = []
    pos = len(dash)
    while not body.startswith(b"--", pos):
        if not body.startswith(b"\r\n", pos):
            raise _malformed("a boundary line must end right after the boundary", where)
        end = body.find(delimiter, pos + 2)
        if end < 0:
            raise _malformed("it has no closing boundary", where)
        parts.append(body[pos + 2:end])
        if len(parts) > MAX_PAIRS:
            raise RequestRejected("too_many_parameters", f"The request {where} has more than {MAX_PAIRS} parts.")
        pos = end + len(delimiter)
    if body[pos + 2:] not in (b"", b"\r\n"):
        raise _malformed("it has content after its closing boundary (an epilogue)", where)
    if body.count(dash) != len(parts) + 1:  # inside a part, a parser that scans for it would cut there
        raise _malformed("its boundary appears inside a part", where)
    return parts


def _part(raw: bytes, where: str) -> tuple[str, str | None, str | None, bytes]:
    """(name, filename or None, content type or None, content) of one part."""
    head, blank, content = raw.partition(b"\r\n\r\n")
    if not blank:
        raise _malformed("a part has no blank line after its headers", where)
    headers: dict[str, str] = {}
    for line in head.split(b"\r\n"):
        raw_name, colon, value = line.partition(b":")
        header = raw_name.decode("latin-1").lower()
        if not colon or not _TOKEN_RE.fullmatch(header):
            raise _malformed(f"a part has a header line that is not 'Name: value': {line[:40].decode('latin-1')!r}",
                             where)
        if header not in _PART_HEADERS:  # Content-Transfer-Encoding above all: base64 or not is two readings
            raise _malformed(f"a part carries a {header!r} header; only Content-Disposition and Content-Type "
                             "are read", where)
        if header in headers:
            raise _malformed(f"a part gives its {header!r} header twice", where)
        headers[header] = _header_text(value, where)
    if "content-disposition" not in headers:
        raise _malformed("a part has no Content-Disposition", where)
    name, filename = _disposition(headers["content-disposition"], where)
    media = headers.get("content-type")
    if filename is None and media is not None:
        raise _malformed(f"text part {name[:40]!r} carries a Content-Type; only a file part may", where)
    return name, filename, media, content


def _header_text(value: bytes, where: str) -> str:
    try:
        text = value.decode("utf-8").strip(" \t")
    except UnicodeDecodeError:
        raise RequestRejected("invalid_utf8", f"A part header of the request {where} is not valid UTF-8.") from None
    if _CONTROL.search(text) or len(text) > MAX_HEADER_VALUE:  # a bare CR or LF: a header folded or smuggled
        raise _malformed("a part header holds control characters or is too long", where)
    return text


def _disposition(value: str, where: str) -> tuple[str, str | None]:
    """``form-data; name="..."[; filename="..."]``: the name and the filename, each read once."""
    kind = _FORM_DATA.match(value)
    if kind is None:
        raise _malformed("a part's Content-Disposition is not form-data", where)
    params: dict[str, str] = {}
    pos = kind.end()
    while pos < len(value):
        found = _PARAM.match(value, pos)
        if found is None:
            raise _malformed(f"a part's Content-Disposition cannot be read: {value[:60]!r}", where)
        key, quoted = found.group(1).lower(), found.group(2)
        if key not in ("name", "filename"):  # filename* (RFC 5987) beside filename is two names for one file
            raise _malformed(f"a part's Content-Disposition carries {key!r}; only name and filename are read", where)
        if key in params:
            raise _malformed(f"a part's Content-Disposition gives {key!r} twice", where)
        if quoted is not None and quoted.endswith("\\"):  # \" ends the string here and escapes a quote there
            raise _malformed("a part's Content-Disposition has a backslash before a closing quote", where)
        params[key] = quoted if quoted is not None else found.group(3)
        pos = found.end()
    if not params.get("name"):
        raise _malformed("a part's Content-Disposition names no field", where)
    if "\\" in params["name"]:  # name="\b" is "b" to a parser that reads quoted-pairs: another name
        raise _malformed("a part's name holds a backslash", where)
    return params["name"], params.get("filename")


def _text(content: bytes, where: str) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestRejected("invalid_utf8", f"A text part of the request {where} is not valid UTF-8.") from None


def _malformed(why: str, where: str = "body") -> RequestRejected:
    return RequestRejected("malformed_multipart", f"The multipart request {where} cannot be read one way only: "
                                                  f"{why}.")
