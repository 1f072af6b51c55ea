"""proxy/vaultkeys.py: vault key format, checksum, tag, hashing and redaction (pure)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import vaultkeys
from proxy.errors import AuthRefused
from proxy.vaultkeys import (
    ALPHABET,
    CHECKSUM_LENGTH,
    ID_LENGTH,
    KEY_LENGTH,
    SECRET_LENGTH,
    TAG_LENGTH,
    UNTAGGED_LENGTH,
    MalformedKey,
    VaultKey,
    generate,
    hash_secret,
    parse,
    redact,
    secret_matches,
)

PROPERTY = settings(max_examples=250, deadline=None)
TOKEN_RE = re.compile(r"^tg_([0-9A-Za-z]{12})_([0-9A-Za-z]{32})([0-9A-Za-z]{8})?([0-9A-Za-z]{6})$")
TAG_KEY = secrets.token_bytes(32)


def malformed(token: str) -> MalformedKey:
    with pytest.raises(MalformedKey) as info:
        parse(token)
    return info.value


def base62(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


@pytest.fixture(scope="module")
def issued() -> tuple[VaultKey, str]:
    return generate(TAG_KEY)


def test_constants_describe_the_format() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 62
    assert KEY_LENGTH == 3 + 12 + 1 + 32 + 8 + 6 == 62
    assert UNTAGGED_LENGTH == 3 + 12 + 1 + 32 + 6 == 54  # every key issued before migration 0016


def test_generate_produces_the_documented_format(issued: tuple[VaultKey, str]) -> None:
    key, token = issued
    match = TOKEN_RE.match(token)
    assert match, token
    random_id, secret, tag, checksum = match.groups()
    assert len(token) == KEY_LENGTH
    assert key.key_id == f"key_{random_id}"
    assert re.fullmatch(r"key_[0-9A-Za-z]{12}", key.key_id)
    assert key.secret == secret and len(secret) == SECRET_LENGTH
    # The tag is HMAC-SHA256 of tg_<id>_<secret> under the tag key: 12 bytes of it mod 62^8, in base62.
    digest = hmac.new(TAG_KEY, f"tg_{random_id}_{secret}".encode(), hashlib.sha256).digest()
    assert tag == key.tag == base62(int.from_bytes(digest[:12], "big") % 62**TAG_LENGTH, TAG_LENGTH)
    # The checksum is CRC32 of everything before it (the tag too), in 6 base62 digits, as it always was.
    assert checksum == base62(zlib.crc32(token[:-CHECKSUM_LENGTH].encode()), CHECKSUM_LENGTH)


def test_generate_round_trips_through_parse() -> None:
    for _ in range(50):
        key, token = generate(TAG_KEY)
        assert parse(token) == key
        assert key.tagged_by(TAG_KEY)


def test_only_the_tag_key_that_made_a_key_recognises_it(issued: tuple[VaultKey, str]) -> None:
    key, token = issued
    assert parse(token).tagged_by(TAG_KEY)
    assert not parse(token).tagged_by(secrets.token_bytes(32))
    # A forger computes the public checksum honestly and guesses the tag: the shape passes, the tag does not.
    body = token[: -TAG_LENGTH - CHECKSUM_LENGTH] + "A" * TAG_LENGTH
    forged = body + base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)
    assert parse(forged).key_id == key.key_id and not parse(forged).tagged_by(TAG_KEY)
    # Another secret under the same id and tag: the tag covers the secret too.
    other = f"tg_{key.key_id[4:]}_{'B' * SECRET_LENGTH}{key.tag}"
    assert not parse(other + base62(zlib.crc32(other.encode()), CHECKSUM_LENGTH)).tagged_by(TAG_KEY)


def test_untagged_keys_parse_as_before_and_carry_no_tag() -> None:
    body = "tg_" + "a1B2c3D4e5F6" + "_" + "Z" * 32
    key = parse(body + base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH))
    assert key == VaultKey("key_a1B2c3D4e5F6", "Z" * 32) and key.tag is None
    assert not key.tagged_by(TAG_KEY)


def test_generated_keys_are_distinct() -> None:
    tokens = [generate(TAG_KEY)[1] for _ in range(200)]
    assert len(set(tokens)) == 200
    assert len({t[3 : 3 + ID_LENGTH] for t in tokens}) == 200


def test_secret_hash_is_sha256_of_the_secret(issued: tuple[VaultKey, str]) -> None:
    key, _ = issued
    assert key.secret_hash == hash_secret(key.secret) == hashlib.sha256(key.secret.encode()).digest()
    assert len(key.secret_hash) == 32


def test_secret_matches(issued: tuple[VaultKey, str]) -> None:
    key, _ = issued
    stored = hash_secret(key.secret)
    assert secret_matches(key.secret, stored) is True
    assert secret_matches(key.secret[:-1] + ("A" if key.secret[-1] != "A" else "B"), stored) is False
    assert secret_matches("", stored) is False
    assert secret_matches(key.secret, b"") is False
    assert secret_matches(key.secret, stored[:-1]) is False


def test_secret_matches_uses_a_constant_time_compare(monkeypatch: pytest.MonkeyPatch,
                                                     issued: tuple[VaultKey, str]) -> None:
    key, _ = issued
    calls: list[tuple[bytes, bytes]] = []
    real = vaultkeys.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(vaultkeys.hmac, "compare_digest", spy)
    assert secret_matches(key.secret, key.secret_hash)
    assert calls == [(key.secret_hash, key.secret_hash)]


def test_every_single_character_substitution_is_detected(issued: tuple[VaultKey, str]) -> None:
    _, token = issued
    replacements = ALPHABET + "_-. !/+=\u00e9\u0131\u00df\x00"
    seen: dict[str, int] = {}
    for position in range(len(token)):
        for char in replacements:
            if char == token[position]:
                continue
            altered = token[:position] + char + token[position + 1 :]
            exc = malformed(altered)
            assert exc.reason in {"bad_checksum", "malformed_key"}, (position, char)
            seen[exc.reason] = seen.get(exc.reason, 0) + 1
            # A substitution with another alphabet character past the prefix keeps the shape:
            # only the checksum can tell, and it does.
            if position >= 3 and position != 3 + ID_LENGTH and char in ALPHABET:
                assert exc.reason == "bad_checksum", (position, char)
    assert seen["bad_checksum"] > 0 and seen["malformed_key"] > 0


def test_adjacent_transpositions_are_detected(issued: tuple[VaultKey, str]) -> None:
    _, token = issued
    for i in range(len(token) - 1):
        if token[i] == token[i + 1]:
            continue
        swapped = token[:i] + token[i + 1] + token[i] + token[i + 2 :]
        assert malformed(swapped).reason in {"bad_checksum", "malformed_key"}


def test_truncation_and_extension_are_malformed(issued: tuple[VaultKey, str]) -> None:
    _, token = issued
    for cut in range(3, len(token)):
        exc = malformed(token[:cut])
        if cut == UNTAGGED_LENGTH:  # the length of a key from before tags: its last 6 are no checksum of it
            assert exc.reason == "bad_checksum"
            continue
        assert exc.reason == "malformed_key"
        assert "length" in str(exc)
    assert malformed(token + "A").reason == "malformed_key"
    assert malformed(token[1:]).reason == "malformed_key"
    assert malformed(" " + token).reason == "malformed_key"
    assert malformed(token + "\n").reason == "malformed_key"


@pytest.mark.parametrize("prefix", ["sk_", "TG_", "tg-", "rk_", "", "t_", "tgx"])
def test_wrong_prefix_is_malformed(prefix: str, issued: tuple[VaultKey, str]) -> None:
    _, token = issued
    exc = malformed(prefix + token[3:])
    assert exc.reason == "malformed_key"
    assert "tg_" in str(exc)


def test_stripe_secret_key_is_malformed() -> None:
    assert malformed("sk_test_" + "a" * 46).reason == "malformed_key"


def test_wrong_shape_with_valid_checksum_is_malformed() -> None:
    # Right length, right prefix, checksum computed honestly, but the id is 11 long and the secret 33.
    body = "tg_" + "A" * 11 + "_" + "B" * 33
    token = body + base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)
    assert len(token) == UNTAGGED_LENGTH
    assert malformed(token).reason == "malformed_key"
    tagged = body + "T" * TAG_LENGTH
    tagged += base62(zlib.crc32(tagged.encode()), CHECKSUM_LENGTH)
    assert len(tagged) == KEY_LENGTH
    assert malformed(tagged).reason == "malformed_key"


def test_hand_built_key_with_correct_checksum_parses() -> None:
    body = "tg_" + "a1B2c3D4e5F6" + "_" + "Z" * 32
    token = body + base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)
    assert parse(token) == VaultKey("key_a1B2c3D4e5F6", "Z" * 32)


def test_errors_are_auth_refusals_with_a_reason() -> None:
    exc = malformed("nope")
    assert isinstance(exc, AuthRefused) and exc.status == 401
    assert exc.reason == "malformed_key"


def test_redact_keeps_only_the_public_prefix(issued: tuple[VaultKey, str]) -> None:
    key, token = issued
    shown = redact(token)
    assert shown == f"tg_{key.key_id[4:]}_..."
    assert key.secret not in shown
    assert token[-CHECKSUM_LENGTH:] not in shown


@pytest.mark.parametrize("token", ["sk_live_abcdef", "", "Bearer x", "TG_abc"])
def test_redact_hides_everything_that_is_not_a_vault_key(token: str) -> None:
    assert redact(token) == "***"


@PROPERTY
@given(st.text(alphabet=ALPHABET + "_", max_size=80))
def test_redact_shows_at_most_the_id(tail: str) -> None:
    key, token = generate(TAG_KEY)
    assert redact(token) == token[: 3 + ID_LENGTH] + "_..."
    assert key.secret not in redact(token)
    # Anything that starts like a vault key (malformed or not) shows at most its first 15 characters.
    candidate = "tg_" + tail
    assert redact(candidate) == candidate[: 3 + ID_LENGTH] + "_..."


# --- property: arbitrary text parses or raises MalformedKey ------------------------------


def _mutations() -> st.SearchStrategy[str]:
    def mutate(args: tuple[int, str, int]) -> str:
        position, char, mode = args
        _, token = generate(TAG_KEY)
        position %= len(token)
        if mode == 0:
            return token[:position] + char + token[position + 1 :]
        if mode == 1:
            return token[:position] + char + token[position:]
        return token[:position] + token[position + 1 :]

    return st.tuples(st.integers(0, 1000), st.characters(), st.integers(0, 2)).map(mutate)


KEYISH = st.one_of(
    st.text(),
    st.text().map(lambda t: "tg_" + t),
    st.text(alphabet=ALPHABET + "_\u00e9", min_size=51, max_size=51).map(lambda t: "tg_" + t),
    st.text(alphabet=ALPHABET + "_\u00e9", min_size=59, max_size=59).map(lambda t: "tg_" + t),
    st.text(min_size=51, max_size=51).map(lambda t: "tg_" + t),
    _mutations(),
)


@PROPERTY
@given(KEYISH)
def test_arbitrary_text_parses_or_is_malformed(token: str) -> None:
    try:
        key = parse(token)
    except MalformedKey as exc:
        assert exc.reason in {"malformed_key", "bad_checksum"}
        return
    match = TOKEN_RE.match(token)
    assert match
    assert key == VaultKey(f"key_{match.group(1)}", match.group(2), match.group(3))
