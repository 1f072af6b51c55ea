"""vendors/multipart.py: the strict multipart/form-data reader (pure, no I/O).

What stripe-python 16 writes (its own MultipartDataGenerator) is read exactly; everything a
second parser could read another way is refused. The property at the end holds the reader to
an independent one, the standard library's email parser: whatever Tollgate accepts, that parser
reads the same parts, names, values and file bytes from."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stripe._encode import _api_encode
from stripe._multipart_data_generator import MultipartDataGenerator

from vendors.base import RequestRejected
from vendors.formencoding import MAX_PAIRS
from vendors.multipart import FilePart, Multipart, boundary_of, decode

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
B = "b0undary"
CT = f"multipart/form-data; boundary={B}"


def sdk_body(params: dict[str, Any]) -> tuple[bytes, str]:
    """stripe-python's own encoding of a file upload (stripe/_multipart_data_generator.py)."""
    generator = MultipartDataGenerator()
    generator.add_params(params)
    return generator.get_post_data(), f"multipart/form-data; boundary={generator.boundary}"


def body(*parts: bytes, end: bytes = b"--\r\n") -> bytes:
    return b"".join(b"--" + B.encode() + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + B.encode() + end


def field(name: str, value: bytes) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value


def upload(data: bytes, filename: str = "a.png", name: str = "file") -> bytes:
    return (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data


def refused(data: bytes, content_type: str = CT) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        decode(data, content_type)
    return info.value


# --- what is read, and to what --------------------------------------------------------------


def test_the_sdks_file_upload_is_read_without_keeping_the_file() -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"\r\n--not-the-boundary\r\n"
    stream = io.BytesIO(data)
    stream.name = "receipt.png"
    raw, content_type = sdk_body({"purpose": "dispute_evidence", "file": stream,
                                  "file_link_data": {"create": True, "metadata": {"order": "42"}}})
    read = decode(raw, content_type)
    assert read.fields == (("purpose", "dispute_evidence"), ("file_link_data[create]", "true"),
                           ("file_link_data[metadata][order]", "42"))
    assert read.files == (FilePart("file", "receipt.png", "application/octet-stream", len(data),
                                   hashlib.sha256(data).hexdigest()),)


def test_an_empty_text_part_and_an_empty_file() -> None:
    assert decode(body(field("description", b""), upload(b"", filename="")), CT) == Multipart(
        (("description", ""),), (FilePart("file", "", "application/octet-stream", 0, hashlib.sha256().hexdigest()),))


def test_a_closing_boundary_without_crlf_and_unquoted_or_quoted_boundaries() -> None:
    assert decode(body(field("a", b"1"), end=b"--"), CT).fields == (("a", "1"),)
    assert decode(body(field("a", b"1")), f'multipart/form-data; boundary="{B}"').fields == (("a", "1"),)
    assert decode(body(field("a", b"1")), f"Multipart/Form-Data;boundary={B}").fields == (("a", "1"),)


def test_utf8_values_and_filenames() -> None:
    read = decode(body(field("description", "caf\u00e9 \u2615".encode()), upload(b"x", filename="re\u00e7u.pdf")), CT)
    assert read.fields == (("description", "caf\u00e9 \u2615"),) and read.files[0].filename == "re\u00e7u.pdf"


def test_a_value_may_hold_crlf_and_dashes() -> None:
    assert decode(body(field("a", b"line\r\n--\r\n-- b0und")), CT).fields == (("a", "line\r\n--\r\n-- b0und"),)


def test_a_backslash_inside_a_filename_is_kept_as_it_is() -> None:
    # stripe-python sends str(file.name): a full Windows path. Where the string ends is the same to
    # every reader (a backslash before the closing quote is refused, below); the filename is a label.
    assert decode(body(upload(b"x", filename="C:\\docs\\a.png")), CT).files[0].filename == "C:\\docs\\a.png"


# --- what is refused -----------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [
    f"multipart/form-data; boundary={B}; boundary=other",  # two boundaries: which one?
    f"multipart/form-data; boundary={B}; charset=utf-8",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=has space",
    "multipart/form-data; boundary=a=b",  # a token ends at "=": unquoted, it is read two ways
    "multipart/form-data; boundary=a/b",
    "multipart/form-data; boundary=" + "x" * 71,
    'multipart/form-data; boundary="b0und"ary"',
    'multipart/form-data; boundary="b0un\\dary"',
    f"multipart/form-data; boundary={B};",
    f"multipart/mixed; boundary={B}",
])
def test_content_types_with_more_than_one_reading(content_type: str) -> None:
    with pytest.raises(RequestRejected) as info:
        boundary_of(content_type)
    assert info.value.reason == "malformed_multipart"


AMBIGUOUS = {
    "preamble": b"preamble\r\n" + body(field("a", b"1")),
    "epilogue": body(field("a", b"1"), end=b"--\r\nepilogue"),
    "no closing boundary": body(field("a", b"1"), end=b"\r\n"),
    "truncated": body(field("a", b"1"))[:-12],
    "transport padding": body(field("a", b"1")).replace(f"--{B}\r\n".encode(), f"--{B} \r\n".encode(), 1),
    "bare LF lines": body(field("a", b"1")).replace(b"\r\n", b"\n"),
    "boundary inside a value": body(field("a", b"x--" + B.encode() + b"y")),
    "boundary inside a file": body(upload(b"\n--" + B.encode() + b"\n")),
    "a longer boundary": body(field("a", b"1")).replace(f"--{B}\r\nContent".encode(), f"--{B}x\r\nContent".encode()),
    "transfer encoding": body(b"Content-Transfer-Encoding: base64\r\n" + upload(b"eA==")),
    "unknown part header": body(b"X-Extra: 1\r\n" + field("a", b"1")),
    "folded header": body(b'Content-Disposition: form-data;\r\n name="a"\r\n\r\n1'),
    "two dispositions": body(b'Content-Disposition: form-data; name="b"\r\n' + field("a", b"1")),
    "two content types": body(b"Content-Type: text/plain\r\n" + upload(b"x")),
    "no disposition": body(b"Content-Type: text/plain\r\n\r\n1"),
    "no headers": body(b"\r\n1"),
    "no blank line": body(b'Content-Disposition: form-data; name="a"'),
    "not form-data": body(b'Content-Disposition: attachment; name="a"\r\n\r\n1'),
    "form-data glued": body(b'Content-Disposition: form-dataX; name="a"\r\n\r\n1'),
    "name twice": body(b'Content-Disposition: form-data; name="a"; name="b"\r\n\r\n1'),
    "Name and name": body(b'Content-Disposition: form-data; Name="a"; name="b"\r\n\r\n1'),
    "filename*": body(b"Content-Disposition: form-data; name=\"file\"; filename=\"a\"; filename*=UTF-8''b\r\n\r\nx"),
    "escaped quote": body(b'Content-Disposition: form-data; name="a\\"; filename="b"\r\n\r\n1'),
    "backslash in a name": body(b'Content-Disposition: form-data; name="\\a"\r\n\r\n1'),  # "a" to a quoted-pair reader
    "no name": body(b'Content-Disposition: form-data; filename="a"\r\n\r\n1'),
    "empty name": body(b'Content-Disposition: form-data; name=""\r\n\r\n1'),
    "text after a quote": body(b'Content-Disposition: form-data; name="a"b\r\n\r\n1'),
    "bare CR in a header": body(b'Content-Disposition: form-data; name="a"\rX: 1\r\n\r\n1'),
    "header without a colon": body(b"Content-Disposition form-data\r\n\r\n1"),
    "space before the colon": body(b'Content-Disposition : form-data; name="a"\r\n\r\n1'),
    "typed text part": body(b"Content-Type: text/plain\r\n" + field("a", b"1")),
    "empty body": b"",
}


@pytest.mark.parametrize("data", AMBIGUOUS.values(), ids=AMBIGUOUS.keys())
def test_bodies_with_more_than_one_reading_are_refused(data: bytes) -> None:
    assert refused(data).reason == "malformed_multipart"


def test_a_name_given_twice_is_refused_whatever_its_parts_are() -> None:
    for data in (body(field("a", b"1"), field("a", b"2")), body(field("file", b"1"), upload(b"x"))):
        assert (refused(data).reason, refused(data).param) in {("duplicate_parameter", "a"),
                                                               ("duplicate_parameter", "file")}


def test_invalid_utf8_is_refused_in_text_parts_and_headers() -> None:
    assert refused(body(field("a", b"\xff"))).reason == "invalid_utf8"
    assert refused(body(upload(b"x", filename="a").replace(b'"a"', b'"\xff"'))).reason == "invalid_utf8"


def test_file_bytes_may_be_anything() -> None:
    assert decode(body(upload(b"\xff\x00\r\n\r\n")), CT).files[0].size == 6


def test_too_many_parts_are_refused() -> None:
    assert refused(body(*(field(f"m{i}", b"") for i in range(MAX_PAIRS + 1)))).reason == "too_many_parameters"


# --- properties ------------------------------------------------------------------------------

NAMES = st.sampled_from(["purpose", "file", "expand[0]", "expand[1]", "file_link_data[create]", "metadata[k]",
                         "metadata[k]", "a", "b"])
ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e, exclude_characters='"\\'), max_size=12)
CONTENT = st.one_of(st.text(max_size=20).map(str.encode), st.binary(max_size=40))
PART = st.tuples(NAMES, st.booleans(), CONTENT, ASCII)
PARTS = st.one_of(st.lists(PART, min_size=1, max_size=5, unique_by=lambda part: part[0]),
                  st.lists(PART, min_size=1, max_size=5))
BOUNDARIES = st.text("0123456789abcdefABCDEF'()+_,-./:=?", min_size=1, max_size=70)
MUTATIONS = st.lists(st.sampled_from([
    lambda b, s: b"x" + b, lambda b, s: b + b"x", lambda b, s: b.replace(b"\r\n", b"\n", 1),
    lambda b, s: b.replace(b"\r\n\r\n", b"\r\nContent-Transfer-Encoding: base64\r\n\r\n", 1),
    lambda b, s: b.replace(b"\r\n\r\n", b"\r\n\r\n--" + s + b"\r\n", 1),
    lambda b, s: b.replace(b"\r\n\r\n", b"\r\n\r\n\r\n--" + s + b"\r\n", 1),
    lambda b, s: b.replace(b'name="', b'name="\\', 1), lambda b, s: b.replace(b'"\r\n', b'\\"\r\n', 1),
    lambda b, s: b.replace(b"; name=", b";\r\n name=", 1), lambda b, s: b.replace(b'"; filename', b'"; name="z', 1),
    lambda b, s: b[: len(b) // 2], lambda b, s: b.replace(b"--" + s + b"--", b"--" + s + b"-", 1),
    lambda b, s: b.replace(b"--" + s + b"\r\n", b"--" + s + b"\t\r\n", 1),
]), max_size=2)


def _build(parts: list[tuple[str, bool, bytes, str]], boundary: str) -> bytes:
    out = b""
    for name, is_file, value, filename in parts:
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if is_file:
            disposition += f'; filename="{filename}"\r\nContent-Type: application/octet-stream'
        out += f"--{boundary}\r\n{disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _email_reading(data: bytes, content_type: str) -> list[tuple[str | None, str | None, bytes]]:
    """The standard library's reading of the same body: (name, filename, content) of each part."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + data)
    return [(part.get_param("name", header="content-disposition"), part.get_filename(),
             part.get_payload(decode=True)) for part in message.get_payload()]


def _readable(parts: list[tuple[str, bool, bytes, str]], boundary: str) -> bool:
    """Whether the body as written has one reading: names once, text UTF-8, no boundary inside a value."""
    names = [name for name, _, _, _ in parts]
    try:
        [value.decode("utf-8") for _, is_file, value, _ in parts if not is_file]
    except UnicodeDecodeError:
        return False
    return len(set(names)) == len(names) and not any(b"--" + boundary.encode() in v for _, _, v, _ in parts)


@PROPERTY
@given(PARTS, BOUNDARIES, st.booleans(), MUTATIONS)
def test_whatever_is_read_the_standard_library_reads_the_same(parts, boundary: str, quoted: bool, mutations) -> None:
    data = _build(parts, boundary)
    content_type = "multipart/form-data; boundary=" + (f'"{boundary}"' if quoted else boundary)
    if not quoted and not re.fullmatch(r"[0-9A-Za-z+_.-]+", boundary):
        assert refused(data, content_type).reason == "malformed_multipart"  # "boundary=a=b": read two ways
        return
    for mutate in mutations:
        data = mutate(data, boundary.encode())
    try:
        read = decode(data, content_type)
    except RequestRejected as exc:
        assert exc.reason in {"malformed_multipart", "duplicate_parameter", "invalid_utf8"}
        assert mutations or not _readable(parts, boundary)  # the body as written is refused only when it must be
        return
    ours = ([(name, None, value.encode()) for name, value in read.fields]
            + [(f.name, f.filename.strip(), f.sha256) for f in read.files])
    theirs = [(name, filename.strip() if filename is not None else None,  # email strips a filename: a label
               hashlib.sha256(content).hexdigest() if filename is not None else content)
              for name, filename, content in _email_reading(data, content_type)]
    assert sorted(ours, key=repr) == sorted(theirs, key=repr)
    if not mutations:  # and exactly as it was written
        assert read.fields == tuple((n, v.decode()) for n, is_file, v, _ in parts if not is_file)
        assert [(f.name, f.filename, f.size) for f in read.files] == [
            (n, fn, len(v)) for n, is_file, v, fn in parts if is_file]


@PROPERTY
@given(st.dictionaries(st.sampled_from(["purpose", "description"]), st.text(max_size=20), max_size=2),
       st.dictionaries(st.text("abcxyz_", min_size=1, max_size=6), st.text(max_size=10), max_size=3),
       st.binary(max_size=200), st.booleans())
def test_every_upload_the_sdk_writes_is_read_exactly(text, metadata, data: bytes, create: bool) -> None:
    stream = io.BytesIO(data)
    stream.name = "upload.bin"
    params: dict[str, Any] = {**text, "file": stream, "file_link_data": {"create": create, "metadata": metadata}}
    flat = [(k, str(v)) for k, v in _api_encode({k: v for k, v in params.items() if k != "file"})]
    raw, content_type = sdk_body(params)
    read = decode(raw, content_type)  # its boundary is 60 random hex digits: no value holds it
    assert sorted(read.fields) == sorted(flat)
    assert read.files == (FilePart("file", "upload.bin", "application/octet-stream", len(data),
                                   hashlib.sha256(data).hexdigest()),)
