"""Turn settings into what a process needs to run: database URL, master key, admin token.

On the embedded default (no DATABASE_URL) the master key and admin token are generated
into the data directory (mode 0600) on first start. Against a configured database they
must come from the environment, because every replica has to share them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from proxy import db, redact, secretbox
from proxy.audit import chain
from proxy.config import Settings
from proxy.errors import ConfigError
from vendors.registry import Registry, load


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    database_url: str
    box: secretbox.SecretBox
    vendors: Registry

    @property
    def admin_token_file(self) -> Path:
        return admin_token_path(self.settings)


def admin_token_path(settings: Settings) -> Path:
    return settings.data_dir / "admin-token"


def master_key_path(settings: Settings) -> Path:
    return settings.data_dir / "master.key"


def signing_key_path(settings: Settings) -> Path:
    return settings.data_dir / "signing.key"


def with_secrets(settings: Settings) -> Settings:
    master_key, admin_token, signing_key = settings.master_key, settings.admin_token, settings.signing_key
    if settings.embedded:
        signing_key = signing_key or secretbox.load_or_create_file(
            signing_key_path(settings), chain.new_private, "audit signing key")
        master_key = master_key or secretbox.load_or_create_file(
            master_key_path(settings), secretbox.new_master_key, "master key")
        admin_token = admin_token or secretbox.load_or_create_file(
            admin_token_path(settings), lambda: "tga_" + secrets.token_urlsafe(32), "admin token")
    return replace(settings, master_key=master_key, admin_token=admin_token, signing_key=signing_key)


def runtime(settings: Settings, vendors: Registry | None = None) -> Runtime:
    """``vendors``: the adapters to serve (default: the built-ins and every installed plug-in)."""
    vendors = vendors if vendors is not None else load()
    redact.recognise(vendors.secret_patterns())
    settings = with_secrets(settings)
    redact.remember(settings.master_key, settings.admin_token, settings.signing_key,
                    *(settings.master_key_previous or "").split(","))
    if not settings.master_key:
        raise ConfigError("missing_master_key",
                          "TOLLGATE_MASTER_KEY is required with DATABASE_URL (generate one: tollgate master-key new).")
    previous = tuple(secretbox.decode_master_key(k)
                     for k in (settings.master_key_previous or "").split(",") if k.strip())
    try:
        box = secretbox.SecretBox(secretbox.decode_master_key(settings.master_key), previous)
    except secretbox.MasterKeyError as exc:
        raise ConfigError("bad_master_key", str(exc)) from None
    return Runtime(settings, db.resolve_url(settings), box, vendors)
