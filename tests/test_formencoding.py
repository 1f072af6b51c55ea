"""vendors/formencoding.py: the strict Stripe-style form decoder (pure, no I/O)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stripe._encode import _api_encode

from vendors.base import RequestRejected
from vendors.formencoding import MAX_DEPTH, MAX_KEY_LENGTH, MAX_PAIRS, decode

PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rejected(data: bytes, **kwargs: Any) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        decode(data, **kwargs)
    return info.value


# --- what decodes, and to what ---------------------------------------------------------


def test_empty_input_is_an_empty_tree() -> None:
    assert decode(b"") == {}


def test_flat_pairs() -> None:
    assert decode(b"amount=2000&currency=usd&customer=cus_123") == {
        "amount": "2000",
        "currency": "usd",
        "customer": "cus_123",
    }


def test_empty_value_is_an_empty_string() -> None:
    assert decode(b"description=") == {"description": ""}


def test_value_may_contain_equals_sign() -> None:
    assert decode(b"a=b=c") == {"a": "b=c"}


def test_metadata_brackets() -> None:
    assert decode(b"metadata[order_id]=6735&metadata[kind]=refill") == {
        "metadata": {"order_id": "6735", "kind": "refill"}
    }


def test_curl_style_appended_array() -> None:
    assert decode(b"expand[]=customer&expand[]=invoice") == {"expand": ["customer", "invoice"]}


def test_sdk_style_indexed_array() -> None:
    assert decode(b"expand[0]=customer&expand[1]=invoice") == {"expand": ["customer", "invoice"]}


def test_nested_indexed_objects() -> None:
    body = b"items[0][price]=price_1&items[0][quantity]=2&items[1][price]=price_2"
    assert decode(body) == {"items": [{"price": "price_1", "quantity": "2"}, {"price": "price_2"}]}


def test_plus_is_space_and_percent_escapes_decode() -> None:
    assert decode(b"description=Hello+world%21+%E2%82%AC5&statement=a%2Bb") == {
        "description": "Hello world! \u20ac5",
        "statement": "a+b",
    }


def test_percent_escapes_are_case_insensitive() -> None:
    assert decode(b"x=%c3%a9") == decode(b"x=%C3%A9") == {"x": "\u00e9"}


def test_percent_encoded_and_literal_brackets_decode_to_the_same_tree() -> None:
    literal = decode(b"metadata[a]=1&items[0][price]=p&expand[]=x")
    encoded = decode(b"metadata%5Ba%5D=1&items%5B0%5D%5Bprice%5D=p&expand%5B%5D=x")
    lower = decode(b"metadata%5ba%5d=1&items%5b0%5d%5bprice%5d=p&expand%5b%5d=x")
    assert literal == encoded == lower == {
        "metadata": {"a": "1"},
        "items": [{"price": "p"}],
        "expand": ["x"],
    }


def test_segment_characters_allowed_in_brackets() -> None:
    assert decode(b"metadata[a-b.c:d_e]=1") == {"metadata": {"a-b.c:d_e": "1"}}


def test_key_may_be_percent_encoded_entirely() -> None:
    assert decode(b"%61mount=5") == {"amount": "5"}


def test_depth_limit_boundary() -> None:
    key = "a" + "[x]" * (MAX_DEPTH - 1)  # exactly MAX_DEPTH levels
    tree = decode(f"{key}=v".encode())
    node: Any = tree["a"]
    for _ in range(MAX_DEPTH - 2):
        node = node["x"]
    assert node == {"x": "v"}


def test_pair_limit_boundary() -> None:
    body = "&".join(f"k{i}=v" for i in range(MAX_PAIRS)).encode()
    assert len(decode(body)) == MAX_PAIRS


def test_key_length_boundary() -> None:
    assert decode(b"a" * MAX_KEY_LENGTH + b"=1") == {"a" * MAX_KEY_LENGTH: "1"}


# --- what is refused, with which reason ------------------------------------------------


@pytest.mark.parametrize(
    "data, param",
    [
        (b"customer=a&customer=b", "customer"),
        (b"customer=a&customer=a", "customer"),
        (b"metadata[a]=1&metadata%5Ba%5D=2", "metadata[a]"),
        (b"metadata[a]=1&metadata[a]=1", "metadata[a]"),
        (b"items[0][price]=a&items[0][price]=b", "items[0][price]"),
        (b"expand[0]=a&expand[0]=b", "expand[0]"),
        (b"a=&a=", "a"),
        (b"amount=1&%61mount=2", "amount"),
    ],
)
def test_duplicate_key_is_refused(data: bytes, param: str) -> None:
    exc = rejected(data)
    assert exc.reason == "duplicate_parameter"
    assert exc.param == param
    assert exc.status == 400


@pytest.mark.parametrize(
    "data",
    [
        b"a=1&a[b]=2",
        b"a[b]=2&a=1",
        b"a=&a[b]=2",
        b"metadata[k]=1&metadata[k][x]=2",
        b"metadata[k][x]=2&metadata[k]=1",
        b"expand[]=a&expand[0]=b",
        b"expand[0]=a&expand[]=b",
        b"items[0][price]=a&items[][price]=b",
    ],
)
def test_ambiguous_shapes_are_refused(data: bytes) -> None:
    exc = rejected(data)
    assert exc.reason == "ambiguous_parameter"
    assert exc.status == 400


@pytest.mark.parametrize(
    "data",
    [
        b"a=%",
        b"a=%4",
        b"a=%zz",
        b"a=%G0",
        b"a%=1",
        b"a=%%41",
        b"a=%+1",
    ],
)
def test_bad_percent_escape_is_refused(data: bytes) -> None:
    assert rejected(data).reason == "malformed_form"


@pytest.mark.parametrize("data", [b"a=%FF", b"a=%C3", b"a=\xff", b"a=%C3%28", b"%FF=1", b"a=%ED%A0%80"])
def test_invalid_utf8_is_refused(data: bytes) -> None:
    assert rejected(data).reason == "invalid_utf8"


@pytest.mark.parametrize("data", [b"a", b"a=1&b", b"metadata[x]"])
def test_missing_equals_is_refused(data: bytes) -> None:
    assert rejected(data).reason == "malformed_form"


@pytest.mark.parametrize("data", [b"&", b"a=1&", b"&a=1", b"a=1&&b=2"])
def test_stray_ampersand_is_refused(data: bytes) -> None:
    assert rejected(data).reason == "malformed_form"


def test_too_many_pairs_is_refused() -> None:
    body = "&".join(f"k{i}=v" for i in range(MAX_PAIRS + 1)).encode()
    assert rejected(body).reason == "too_many_parameters"


def test_too_deep_is_refused() -> None:
    key = "a" + "[x]" * MAX_DEPTH  # MAX_DEPTH + 1 levels
    exc = rejected(f"{key}=v".encode())
    assert exc.reason == "malformed_form"
    assert "deeper" in exc.message


def test_too_long_key_is_refused() -> None:
    exc = rejected(b"a" * (MAX_KEY_LENGTH + 1) + b"=1")
    assert exc.reason == "malformed_form"
    assert "too long" in exc.message


@pytest.mark.parametrize(
    "data",
    [
        b"=1",
        b"[a]=1",
        b"a[=1",
        b"a]=1",
        b"a[b=1",
        b"a[b]c=1",
        b"a[b][=1",
        b"a b=1",
        b"a+b=1",
        b"a.b=1",
        b"a-b=1",
        b"%C3%A9=1",
        b"a[b%0Ac]=1",
        b"a[b[c]]=1",
        b"a%0A=1",
    ],
)
def test_bad_names_are_refused(data: bytes) -> None:
    exc = rejected(data)
    assert exc.reason == "malformed_form"
    assert "Invalid parameter name" in exc.message


def test_bracketed_keys_may_hold_what_stripe_metadata_keys_hold() -> None:
    assert decode(b"metadata[order id]=1&metadata[a/b]=2&metadata[%C3%A9]=3") == {
        "metadata": {"order id": "1", "a/b": "2", "\u00e9": "3"}
    }


def test_where_is_named_in_the_message() -> None:
    assert "query string" in rejected(b"a=1&a=2", where="query string").message
    assert "body" in rejected(b"a=1&a=2").message


# --- the stripe-python encoder round-trips through the decoder -------------------------

ROOT_KEY = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=1, max_size=12)
# Keys stripe-python users put in metadata and friends; no pure-digit keys, which would read as indices.
SUB_KEY = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:",
                  min_size=1, max_size=12).filter(
    lambda k: not k.isdigit()
)
LEAF = st.one_of(st.text(max_size=40), st.integers(min_value=-(10**12), max_value=10**12), st.booleans())


def _nodes(depth: int) -> st.SearchStrategy[Any]:
    if depth == 0:
        return LEAF
    child = _nodes(depth - 1)
    return st.one_of(
        LEAF,
        st.dictionaries(SUB_KEY, child, min_size=1, max_size=4),
        st.lists(child, min_size=1, max_size=4),
    )


TREES = st.dictionaries(ROOT_KEY, _nodes(3), min_size=0, max_size=6)


def expected_tree(value: Any, *, list_item: bool = False) -> Any:
    """What the decoder should give for what stripe-python sent: lists stay lists (indexed ``a[0]``).

    stripe-python lower-cases booleans ("true"), except a boolean that is directly an element of a
    list, which it passes to urlencode as is ("True"); a list inside a list it turns into a dict
    first. This models the SDK, quirks included.
    """
    if isinstance(value, dict):
        return {str(k): expected_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [expected_tree(v, list_item=not list_item) for v in value]
    if isinstance(value, bool) and not list_item:
        return "true" if value else "false"
    return str(value)


def stripe_python_form(params: dict[str, Any]) -> bytes:
    """Exactly what stripe 16's _APIRequestor does to build a v1 form body or query string."""
    encoded = urlencode(list(_api_encode(params)))
    encoded = encoded.replace("%5B", "[").replace("%5D", "]")
    return encoded.encode("ascii")


def test_stripe_python_charge_body() -> None:
    params = {
        "amount": 2000,
        "currency": "usd",
        "customer": "cus_123",
        "capture": False,
        "metadata": {"order_id": "A&B=C [x]", "note": "caf\u00e9 100% +1"},
        "expand": ["customer", "balance_transaction"],
        "items": [{"price": "price_1", "quantity": 2}],
    }
    body = stripe_python_form(params)
    assert b"expand[0]=customer" in body and b"items[0][price]=price_1" in body
    assert decode(body) == {
        "amount": "2000",
        "currency": "usd",
        "customer": "cus_123",
        "capture": "false",
        "metadata": {"order_id": "A&B=C [x]", "note": "caf\u00e9 100% +1"},
        "expand": ["customer", "balance_transaction"],
        "items": [{"price": "price_1", "quantity": "2"}],
    }


@PROPERTY
@given(TREES)
def test_round_trip_with_the_stripe_python_encoder(params: dict[str, Any]) -> None:
    assert decode(stripe_python_form(params)) == expected_tree(params)


@PROPERTY
@given(TREES)
def test_round_trip_with_fully_percent_encoded_brackets(params: dict[str, Any]) -> None:
    strict = urlencode(list(_api_encode(params))).encode("ascii")
    assert decode(strict) == decode(stripe_python_form(params)) == expected_tree(params)


# --- robustness: any bytes give a tree or a RequestRejected ------------------------------

FORMISH = st.lists(
    st.sampled_from([b"a", b"b", b"0", b"[", b"]", b"[]", b"[0]", b"[x]", b"=", b"&", b"%", b"%5B", b"%5d", b"%zz",
                     b"%C3", b"%A9", b"+", b"\xff", b"\xc3\xa9", b"%00", b"."]),
    max_size=30,
).map(b"".join)


def _check_tree(tree: Any) -> None:
    assert isinstance(tree, dict)
    for key, value in tree.items():
        assert isinstance(key, str) and key
        _check_node(value)


def _check_node(value: Any) -> None:
    if isinstance(value, dict):
        _check_tree(value)
    elif isinstance(value, list):  # an array: a branch keyed exactly 0 .. n-1, never empty
        assert value
        for item in value:
            _check_node(item)
    else:
        assert isinstance(value, str)


@PROPERTY
@given(st.one_of(st.binary(max_size=200), FORMISH))
def test_arbitrary_bytes_decode_or_are_rejected(data: bytes) -> None:
    try:
        tree = decode(data)
    except RequestRejected as exc:
        assert exc.reason in {
            "malformed_form",
            "invalid_utf8",
            "duplicate_parameter",
            "ambiguous_parameter",
            "too_many_parameters",
        }
        return
    _check_tree(tree)


def test_decoded_pairs_build_the_same_tree_by_the_same_rules() -> None:
    """vendors/multipart.py hands its text parts to ``build``: a multipart body is read as its form twin."""
    from vendors.formencoding import build

    pairs = [("amount", "2000"), ("metadata[k]", "v"), ("expand[0]", "a"), ("expand[1]", "b")]
    assert build(pairs) == decode(b"amount=2000&metadata[k]=v&expand[0]=a&expand[1]=b")
    for ambiguous, reason in (([("a", "1"), ("a", "2")], "duplicate_parameter"),
                              ([("e[]", "1"), ("e[0]", "2")], "ambiguous_parameter"),
                              ([("a[b]", "1"), ("a", "2")], "ambiguous_parameter"),
                              ([("a b", "1")], "malformed_form")):
        with pytest.raises(RequestRejected) as info:
            build(ambiguous)
        assert info.value.reason == reason
    with pytest.raises(RequestRejected) as info:
        build([(f"m{i}", "") for i in range(MAX_PAIRS + 1)])
    assert info.value.reason == "too_many_parameters"
