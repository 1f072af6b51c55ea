"""proxy/paths.py: vendor routing and strict path validation on raw bytes (pure)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.paths import MAX_PATH_BYTES, normalise, split_vendor
from vendors.base import RequestRejected

PROPERTY = settings(max_examples=300, deadline=None)
SAFE_PATH = re.compile(r"^(/(?:[A-Za-z0-9_\-.~:@,=+]|%40|%2B)+)+$")


def refused(raw: bytes) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        normalise(raw)
    return info.value


@pytest.mark.parametrize(
    "raw, vendor, rest",
    [
        (b"/stripe/v1/charges", "stripe", b"/v1/charges"),
        (b"/stripe/v1/charges/ch_123", "stripe", b"/v1/charges/ch_123"),
        (b"/twilio/2010-04-01/Accounts/AC0123/Messages.json", "twilio", b"/2010-04-01/Accounts/AC0123/Messages.json"),
        (b"/resend/emails/batch", "resend", b"/emails/batch"),
        (b"/stripe", "stripe", b""),
        (b"/stripe/", "stripe", b"/"),
        (b"/", "", b""),
        (b"//v1/charges", "", b"/v1/charges"),
        (b"/stripe/v1/../v1/refunds", "stripe", b"/v1/../v1/refunds"),  # judged later by normalise
    ],
)
def test_split_vendor(raw: bytes, vendor: str, rest: bytes) -> None:
    assert split_vendor(raw) == (vendor, rest)


def test_split_vendor_does_not_decode_escapes() -> None:
    assert split_vendor(b"/str%69pe/v1/charges") == ("str%69pe", b"/v1/charges")
    assert split_vendor(b"/stripe%2fv1/charges") == ("stripe%2fv1", b"/charges")


@pytest.mark.parametrize(
    "raw",
    [
        b"/v1/charges",
        b"/v1/charges/ch_123",
        b"/v1/charges/ch_3MmlLrLkdIwHu7ix/capture",
        b"/v1/payment_intents/pi_1/confirm",
        b"/v1/customers/cus_NffrFeUfNV2Hib",
        b"/v1/balance",
        b"/2010-04-01/Accounts/AC0123/Messages.json",
        b"/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages/SM0123.json",
        b"/emails",
        b"/emails/batch",
        b"/emails/4ef9a417-02e9-4d39-ad75-9611e0fcc33c",
        b"/v1/a~b/c:d/e@f/g,h/i=j/k+l",
        b"/.well-known",
        b"/contacts/ana%40acme.example",  # resend-python: quote(email, safe="")
        b"/contacts/ana%2Btag%40acme.example",
        b"/suppressions/%2B14155550100",
    ],
)
def test_ordinary_vendor_paths_are_accepted_unchanged(raw: bytes) -> None:
    assert normalise(raw) == raw.decode("ascii")


@pytest.mark.parametrize(
    "raw, detail",
    [
        (b"/v1/../v1/refunds", "dot segment"),
        (b"/v1/./charges", "dot segment"),
        (b"/v1/charges/..", "dot segment"),
        (b"/..", "dot segment"),
        (b"/v1/refunds.", "dot segment"),
        (b"/v1/refunds..", "dot segment"),
        (b"/v1/refunds/.", "dot segment"),
        (b"/v1/%2e%2e/refunds", "percent-escape"),
        (b"/v1/%2E%2E/refunds", "percent-escape"),
        (b"/v1/.%2e/refunds", "percent-escape"),
        (b"/v1/refunds%2f..", "dot segment"),  # the trailing-dot rule fires first
        (b"/v1/refunds%2f.json", "percent-escape"),
        (b"/v1/refunds%2Fre_1", "percent-escape"),
        (b"/v1/ch%5f123", "percent-escape"),
        (b"/v1/charges%", "percent-escape"),
        (b"/v1/%72efunds", "percent-escape"),  # an escaped letter: a deny rule on /v1/refunds would miss it
        (b"/contacts/ana%4", "percent-escape"),
        (b"/contacts/ana%2b", "percent-escape"),  # one spelling of an escape, the one SDKs write
        (b"/contacts/a%2540b", "percent-escape"),
        (b"/contacts/a%2F%40b", "percent-escape"),
        (b"/v1//charges", "empty segment"),
        (b"//v1/charges", "empty segment"),
        (b"/v1/charges/", "empty segment"),
        (b"/v1\\..\\refunds", "characters"),
        (b"/v1/charges\\ch_1", "characters"),
        (b"/v1/ch\xc3\xa9", "characters"),
        (b"/v1/\xff", "characters"),
        (b"/v1/charges?x=1", "characters"),
        (b"/v1/charges#x", "characters"),
        (b"/v1/char ges", "characters"),
        (b"/v1/charges;x", "characters"),
        (b"/v1/ch\x00", "characters"),
        (b"/v1/charges\n", "characters"),
        (b"/v1/charges\r\n", "characters"),
        (b"/v1/charges\t", "characters"),
    ],
)
def test_ambiguous_or_unsafe_paths_are_refused(raw: bytes, detail: str) -> None:
    exc = refused(raw)
    assert exc.reason == "invalid_path"
    assert exc.status == 400
    assert detail in exc.message


@pytest.mark.parametrize("raw", [b"", b"/", b"v1/charges", b"http://evil.example/v1/charges"])
def test_paths_that_name_no_endpoint_are_404(raw: bytes) -> None:
    exc = refused(raw)
    assert (exc.reason, exc.status) == ("invalid_path", 404)


def test_length_limit_boundary() -> None:
    exactly = b"/" + b"a" * (MAX_PATH_BYTES - 1)
    assert normalise(exactly) == exactly.decode()
    exc = refused(b"/" + b"a" * MAX_PATH_BYTES)
    assert (exc.reason, exc.status) == ("path_too_long", 414)


def test_over_long_path_is_414_even_if_otherwise_bad() -> None:
    exc = refused(b"/v1/../" + b"a" * MAX_PATH_BYTES)
    assert (exc.reason, exc.status) == ("path_too_long", 414)


PATHISH = st.lists(
    st.one_of(
        st.sampled_from([b"v1", b"charges", b".", b"..", b"...", b"a.", b".a", b"%2e", b"%2f", b"%", b"\\", b"\xc3\xa9",
                         b"ch_1", b"", b"~", b"\n", b"ch_1\n", b"\x00", b"Messages.json"]),
        st.binary(max_size=6),
    ),
    max_size=8,
).map(lambda parts: b"/" + b"/".join(parts))


@PROPERTY
@given(st.one_of(st.binary(max_size=64), PATHISH))
def test_arbitrary_bytes_give_a_clean_ascii_path_or_a_refusal(raw: bytes) -> None:
    try:
        path = normalise(raw)
    except RequestRejected as exc:
        assert exc.reason in {"invalid_path", "path_too_long"}
        assert exc.status in {400, 404, 414}
        return
    assert isinstance(path, str)
    assert path.isascii()
    assert path.encode("ascii") == raw
    assert SAFE_PATH.match(path) and path == path.strip()
    segments = path.split("/")[1:]
    assert all(s and s not in (".", "..") and not s.endswith(".") for s in segments)
    assert "%" not in path.replace("%40", "").replace("%2B", "") and "\\" not in path
