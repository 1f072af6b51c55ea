"""Vault key format: ``tg_<id>_<secret><tag><checksum>``.

The id (12 base62 characters) names the key row; the secret (32 base62 characters,
~190 bits) is shown once and stored only as a SHA-256 digest. Because the secret is long
and random, a fast hash is the right storage: there is nothing to brute-force.

Two marks let a key be judged without the database:

- the **checksum**, the last 6 characters: CRC32 of everything before it. Anyone can compute
  it, so it tells a typo or a truncated key (``bad_checksum``), and lets secret scanners
  recognise a leaked key, but proves nothing: anyone can make a well-formed key with it.
- the **tag**, the 8 characters before the checksum: HMAC-SHA256 of ``tg_<id>_<secret>`` under
  the installation's tag key (proxy/serversecrets.py), ~47 bits. Only this installation can
  make one, so a key with a wrong tag is a forgery, refused without a look-up or a row.

Keys issued before the tag existed (migration 0016) have no tag and are 8 characters
shorter: ``tg_<id>_<secret><checksum>``. They keep working; proxy/auth.py says how.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

from proxy.errors import MalformedKey

PREFIX = "tg"
ID_LENGTH = 12
SECRET_LENGTH = 32
TAG_LENGTH = 8
CHECKSUM_LENGTH = 6
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LENGTH = len(PREFIX) + 1 + ID_LENGTH + 1 + SECRET_LENGTH
KEY_LENGTH = _BODY_LENGTH + TAG_LENGTH + CHECKSUM_LENGTH
UNTAGGED_LENGTH = _BODY_LENGTH + CHECKSUM_LENGTH  # keys issued before migration 0016
_BASE62 = re.compile("[0-9A-Za-z]*")  # ALPHABET as a class: one C loop, not a generator per character
_TAG_SPACE = 62**TAG_LENGTH


@dataclass(frozen=True)
class VaultKey:
    key_id: str  # "key_<id>", the row id operators see
    secret: str
    tag: str | None = None  # None: a key issued before tags, judged by look-up alone

    @property
    def secret_hash(self) -> bytes:
        return hash_secret(self.secret)

    def tagged_by(self, tag_key: bytes) -> bool:
        """Whether this installation issued the key (constant time). False for an untagged key."""
        if self.tag is None:
            return False
        return hmac.compare_digest(self.tag, _tag(tag_key, f"{PREFIX}_{self.key_id[4:]}_{self.secret}"))


def generate(tag_key: bytes) -> tuple[VaultKey, str]:
    """A new key: (parsed form, the full token to hand out once)."""
    random_id = _random(ID_LENGTH)
    secret = _random(SECRET_LENGTH)
    body = f"{PREFIX}_{random_id}_{secret}"
    tag = _tag(tag_key, body)
    return VaultKey(f"key_{random_id}", secret, tag), body + tag + _checksum(body + tag)


def parse(token: str) -> VaultKey:
    """Shape and checksum only (no key needed): MalformedKey if either is wrong. Whether the tag
    is this installation's is ``VaultKey.tagged_by``'s question."""
    if not token.startswith(PREFIX + "_"):
        raise MalformedKey("malformed_key", "The API key is not a Tollgate vault key (they start with 'tg_').")
    if len(token) not in (KEY_LENGTH, UNTAGGED_LENGTH):
        raise MalformedKey("malformed_key", "The vault key has the wrong length; was it truncated or mistyped?")
    marked, checksum = token[:-CHECKSUM_LENGTH], token[-CHECKSUM_LENGTH:]
    body, tag = (marked[:_BODY_LENGTH], marked[_BODY_LENGTH:]) if len(token) == KEY_LENGTH else (marked, "")
    parts = body.split("_")
    if len(parts) != 3 or len(parts[1]) != ID_LENGTH or not _BASE62.fullmatch(parts[1] + parts[2] + tag + checksum):
        raise MalformedKey("malformed_key", "The vault key is malformed; was it truncated or mistyped?")
    if not hmac.compare_digest(checksum, _checksum(marked)):
        raise MalformedKey("bad_checksum", "The vault key's checksum does not match; it was mistyped or altered.")
    return VaultKey(f"key_{parts[1]}", parts[2], tag or None)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def redact(token: str) -> str:
    """What may be shown of a key in logs and errors: its public prefix only."""
    return token[: len(PREFIX) + 1 + ID_LENGTH] + "_..." if token.startswith(PREFIX + "_") else "***"


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _base62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        out.append(ALPHABET[digit])
    return "".join(reversed(out))


def _checksum(text: str) -> str:
    return _base62(zlib.crc32(text.encode()), CHECKSUM_LENGTH)


def _tag(tag_key: bytes, body: str) -> str:
    # 12 bytes of the MAC reduced mod 62^8: the bias is below 2^-48, far under the tag's own odds.
    digest = hmac.digest(tag_key, body.encode(), "sha256")  # the one-shot C path: no HMAC object per call
    return _base62(int.from_bytes(digest[:12], "big") % _TAG_SPACE, TAG_LENGTH)
