"""Upstream secrets at rest: AES-256-GCM under the master key.

Each ciphertext is ``version(1) || nonce(12) || ciphertext+tag``; the key row id is
bound in as associated data so a ciphertext copied onto another row does not decrypt.
The version byte leaves room for master-key rotation.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from proxy.errors import ConfigError

FORMAT_VERSION = 1
NONCE_BYTES = 12
log = structlog.get_logger(__name__)


class MasterKeyError(ConfigError):
    """A master key that is malformed, or that opens no stored secret."""

    def __init__(self, message: str):
        super().__init__("bad_master_key", message)


class SecretBox:
    """Seals with the current master key; opens with it or any previous one, so a rotation can
    roll out (new key everywhere, then re-encrypt, then drop the old) with no failed request."""

    def __init__(self, master_key: bytes, previous: tuple[bytes, ...] = ()):
        for key in (master_key, *previous):
            if len(key) != 32:
                raise MasterKeyError("A master key must be 32 bytes (base64-encoded in TOLLGATE_MASTER_KEY).")
        self._aead = AESGCM(master_key)
        self._openers = [self._aead, *(AESGCM(key) for key in previous)]

    def seal(self, plaintext: str, context: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return bytes([FORMAT_VERSION]) + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def open(self, sealed: bytes, context: str) -> str:
        if not sealed or sealed[0] != FORMAT_VERSION:
            raise MasterKeyError("Unknown ciphertext format for an upstream secret.")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        for aead in self._openers:
            try:
                return aead.decrypt(nonce, body, context.encode()).decode()
            except InvalidTag:
                continue
        raise MasterKeyError("No configured master key opens this upstream secret (was the key rotated away?).")


def decode_master_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise MasterKeyError("TOLLGATE_MASTER_KEY is not valid base64.") from None
    if len(raw) != 32:
        raise MasterKeyError(f"TOLLGATE_MASTER_KEY must decode to 32 bytes, not {len(raw)}.")
    return raw


def new_master_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def load_or_create_file(path: Path, make: Callable[[], str], what: str) -> str:
    """Read a generated secret from the data directory, creating it (mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    log.warning("generated_secret_file", what=what, path=str(path),
                hint="fine for a laptop; in production set it from your secret store")
    return value
