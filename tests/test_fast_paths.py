"""The hot path's shortcuts give the answers of the slow forms they replace.

json_object parses with orjson only where orjson reads the text as json.loads does; log lines
are rendered with orjson and stay redacted; the underscore shortcut in mask_secrets skips only
text that cannot hold a credential.
"""

from __future__ import annotations

import io
import json
import math

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from proxy import logs, redact
from proxy.redact import SECRET_MARK, mask_secrets
from vendors import registry
from vendors.wire import json_object

# Every shape a serving process masks: Tollgate's own and the vendors' (proxy/bootstrap.py does the same).
redact.recognise(registry.load().secret_patterns())
SECRET_VALUES = redact.SECRET_VALUES

BODIES = [
    b'{"amount": 100, "currency": "usd", "id": "ch_1"}',
    b'{"a": 1' + b"0" * 30 + b"}",  # orjson would make this a float
    b'{"a": -18446744073709551617, "b": 9223372036854775807}',
    b'{"a": 1e400}', b'{"a": NaN}', b'{"a": "\\ud800"}', '{"a": 1}'.encode("utf-16"),
    b"\xef\xbb\xbf{}", b"[1, 2]", b"", b"not json", b'{"a": 1, "a": 2}', b'{"f": 0.1, "g": 1e-7}',
]


def _reference(body: bytes) -> object:
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("body", BODIES)
def test_json_object_reads_as_json_loads(body: bytes) -> None:
    assert _same(json_object(body), _reference(body))


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.floats(allow_nan=False), st.text(),
                                                      st.booleans(), st.none()), max_size=6))
def test_json_object_matches_json_on_generated_objects(value: dict) -> None:
    body = json.dumps(value).encode()
    assert _same(json_object(body), _reference(body))


@given(st.from_regex(SECRET_VALUES, fullmatch=True))
def test_every_secret_shape_contains_the_mark(secret: str) -> None:
    # mask_secrets skips text without SECRET_MARK: only sound while every shape requires it.
    assert SECRET_MARK in secret


@given(st.text(alphabet=st.characters(blacklist_characters="_"), max_size=60))
def test_text_without_the_mark_has_nothing_to_mask(text: str) -> None:
    assert SECRET_VALUES.sub("", text) == text and mask_secrets(text) == text


def test_json_log_lines_stay_redacted() -> None:
    stream = io.StringIO()
    logs.configure("json", stream=stream)
    try:
        structlog.get_logger("t").info("request", api_token="plain", note="key tg_ABCDEFGHIJKL_s3cr3tvalue",
                                       stripe="sk_live_abc123", count=2, nested={1: "x"}, big=10**30)
    finally:
        logs.configure("json", stream=logs_stream_default())
    line = json.loads(stream.getvalue())
    assert line["api_token"] == "***" and line["stripe"] == "***"
    assert line["note"] == "key tg_ABCDEFGHIJKL_***" and line["count"] == 2 and line["big"] == 10**30
    assert "s3cr3t" not in stream.getvalue() and "abc123" not in stream.getvalue()


def logs_stream_default() -> io.TextIOBase:
    from tests.support import leaks

    return leaks.log_stream()
