"""Vault key format: ``tg_<id>_<secret><checksum>``.

The id (12 base62 characters) names the key row; the secret (32 base62 characters,
~190 bits) is shown once and stored only as a SHA-256 digest. A 6-character CRC32
checksum over everything before it lets the proxy and secret scanners recognise a
mistyped or made-up key without touching the database. Because the secret is long
and random, a fast hash is the right storage: there is nothing to brute-force.
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
CHECKSUM_LENGTH = 6
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_LENGTH = len(PREFIX) + 1 + ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH
_BASE62 = re.compile("[0-9A-Za-z]*")  # ALPHABET as a class: one C loop, not a generator per character


@dataclass(frozen=True)
class VaultKey:
    key_id: str  # "key_<id>", the row id operators see
    secret: str

    @property
    def secret_hash(self) -> bytes:
        return hash_secret(self.secret)


def generate() -> tuple[VaultKey, str]:
    """A new key: (parsed form, the full token to hand out once)."""
    random_id = _random(ID_LENGTH)
    secret = _random(SECRET_LENGTH)
    body = f"{PREFIX}_{random_id}_{secret}"
    return VaultKey(f"key_{random_id}", secret), body + _checksum(body)


def parse(token: str) -> VaultKey:
    if not token.startswith(PREFIX + "_"):
        raise MalformedKey("malformed_key", "The API key is not a Tollgate vault key (they start with 'tg_').")
    if len(token) != KEY_LENGTH:
        raise MalformedKey("malformed_key", "The vault key has the wrong length; was it truncated or mistyped?")
    body, checksum = token[:-CHECKSUM_LENGTH], token[-CHECKSUM_LENGTH:]
    parts = body.split("_")
    if len(parts) != 3 or len(parts[1]) != ID_LENGTH or not _BASE62.fullmatch(parts[1] + parts[2] + checksum):
        raise MalformedKey("malformed_key", "The vault key is malformed; was it truncated or mistyped?")
    if not hmac.compare_digest(checksum, _checksum(body)):
        raise MalformedKey("bad_checksum", "The vault key's checksum does not match; it was mistyped or altered.")
    return VaultKey(f"key_{parts[1]}", parts[2])


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def redact(token: str) -> str:
    """What may be shown of a key in logs and errors: its public prefix only."""
    return token[: len(PREFIX) + 1 + ID_LENGTH] + "_..." if token.startswith(PREFIX + "_") else "***"


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode())
    out = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        out.append(ALPHABET[digit])
    return "".join(reversed(out))
