"""Settings from the environment (``TOLLGATE_*``, ``DATABASE_URL``) and an optional TOML file.

Environment wins over the file, so a deployment can keep defaults in a file and
override per replica. Nothing here reads secrets into logs: the master key and the
admin token are loaded, never printed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "tollgate"


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None  # None: embedded Postgres in data_dir
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8080
    admin_token: str | None = None
    master_key: str | None = None  # base64 of 32 bytes
    master_key_previous: str | None = None  # comma-separated older keys, readable during a rotation
    signing_key: str | None = None  # base64 Ed25519 private key that signs audit chain heads
    seal_interval_s: float = 60.0
    upstreams: Mapping[str, str] = field(default_factory=dict)
    upstream_timeout_s: float = 30.0
    upstream_connect_timeout_s: float = 5.0
    upstream_transport: str = "aiohttp"  # aiohttp | httpx-aiohttp | httpx (proxy/upstream.py says why)
    # The vendor's answer, decoded, is held in memory and relayed whole, so it is bounded like a
    # request body. 16 MiB is several times the largest JSON page the vendors send (100 Stripe
    # objects with expansions, 1,000 Twilio records) and still a bound per call in flight.
    upstream_max_body_bytes: int = 16 * 1024 * 1024
    max_body_bytes: int = 1_048_576
    max_header_bytes: int = 32_768  # all request headers together; nginx's default allows 4 x 8 KiB lines
    # An SDK writes its request headers at once: 10 s is an age even on a bad link, and it is how
    # long a stalled (slowloris) connection can hold one of the process's connections.
    header_timeout_s: float = 10.0
    # Open client connections per process (proxy/httpserver.py). 512, plus the upstream pool's 256
    # and the database pools, stays under the 1,024 open files many systems allow a process by
    # default; the bench's heaviest load is 64 clients. More traffic: more replicas.
    max_connections: int = 512
    # Worker processes of `tollgate serve` on one port (proxy/workers.py); 0: one per core.
    workers: int = 0
    reservation_ttl_s: int = 300  # must outlast the upstream timeout: only abandoned calls expire
    reconcile_interval_s: float = 15.0
    approval_ttl_s: int = 3600
    key_cache_ttl_s: float = 5.0
    db_pool_size: int = 10
    db_timeout_s: float = 5.0
    # Where `tollgate prices sync --fx` reads exchange rates (proxy/fxrates.py): the ECB's daily euro
    # reference rates, or any URL serving the same format. Each process reloads what is stored every
    # fx_refresh_interval_s: the ECB publishes once a working day, so minutes are plenty fresh.
    fx_source: str = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml"
    fx_refresh_interval_s: float = 300.0
    # An account's own vendor prices (proxy/vendorprices.py): serve reads the vendors' price lists
    # again every price_sync_interval_s (0: never; one process does it, under a lease), and each
    # process reloads what is stored every price_refresh_interval_s.
    price_sync_interval_s: float = 86400.0
    price_refresh_interval_s: float = 300.0
    # A price table older than this is stale (proxy/pricetables.py): serve warns, and with
    # refuse_stale_prices (TOLLGATE_REFUSE_STALE_PRICES=1) a money-moving call whose conversion
    # would use such a rate is refused (stale_price). A week: the ECB skips weekends and holidays
    # (Easter leaves a rate up to five days), so a working daily sync never trips it.
    price_max_age_s: float = 7 * 86_400.0
    refuse_stale_prices: bool = False
    # How often serve reprices estimates from the vendor's own price (a Twilio message's, a Stripe
    # charge's balance transaction), one process at a time; 0: never (run tollgate prices reconcile).
    reprice_interval_s: float = 600.0
    # Alerts (proxy/alerts): how often the lease holder looks for due deliveries and crossed caps;
    # back-off from retry_base_s doubling to retry_max_s, so a receiver back after an hour waits
    # at most ten minutes; a delivery still failing after give_up_s (3 days) is marked failed.
    alert_interval_s: float = 5.0
    alert_retry_base_s: float = 10.0
    alert_retry_max_s: float = 600.0
    alert_give_up_s: float = 3 * 86400.0
    alert_timeout_s: float = 10.0
    alert_thresholds: str = "80,100"  # percent of a cap, comma-separated
    public_url: str | None = None  # the console's base in alert links; default http://host:port
    log_format: str = "console"  # console | json
    console_secure_cookie: str = "auto"  # auto (Secure when the request came over https) | always | never

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    def upstream_for(self, vendor: str, default: str) -> str:
        """The base URL calls to ``vendor`` go to: TOLLGATE_UPSTREAM_<VENDOR>, or the vendor's own."""
        return self.upstreams.get(vendor, default).rstrip("/")


_INT_FIELDS = {"port", "max_body_bytes", "max_header_bytes", "reservation_ttl_s", "db_pool_size", "approval_ttl_s",
               "max_connections", "upstream_max_body_bytes", "workers"}
_FLOAT_FIELDS = {"upstream_timeout_s", "upstream_connect_timeout_s", "key_cache_ttl_s", "db_timeout_s",
                 "reconcile_interval_s", "seal_interval_s", "header_timeout_s", "fx_refresh_interval_s",
                 "price_sync_interval_s", "price_refresh_interval_s", "price_max_age_s", "reprice_interval_s",
                 "alert_interval_s", "alert_retry_base_s", "alert_retry_max_s", "alert_give_up_s", "alert_timeout_s"}
_BOOL_FIELDS = {"refuse_stale_prices"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() in _TRUE | _FALSE:
        return str(value).strip().lower() in _TRUE
    raise ValueError(f"TOLLGATE_{name.upper()} must be 1 or 0 (true/false), not {value!r}")


def load(config_file: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    config_file = config_file or env.get("TOLLGATE_CONFIG")
    if config_file:
        values.update(_from_toml(Path(config_file)))
    values.update(_from_env(env))
    settings = Settings()
    upstreams = dict(values.pop("upstreams", {}))
    for name, value in values.items():
        if name in _INT_FIELDS:
            value = int(value)
        elif name in _FLOAT_FIELDS:
            value = float(value)
        elif name in _BOOL_FIELDS:
            value = _boolean(name, value)
        elif name == "data_dir":
            value = Path(value).expanduser()
        settings = replace(settings, **{name: value})
    return replace(settings, upstreams=upstreams)


def _from_toml(path: Path) -> dict[str, Any]:
    data = tomllib.loads(path.read_text())
    known = {f for f in Settings.__dataclass_fields__}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
    return data


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if env.get("DATABASE_URL"):
        values["database_url"] = env["DATABASE_URL"]
    for name in Settings.__dataclass_fields__:
        key = f"TOLLGATE_{name.upper()}"
        if name not in ("upstreams", "database_url") and env.get(key):
            values[name] = env[key]
    upstreams = _upstreams_from_env(env)
    if upstreams:
        values["upstreams"] = upstreams
    return values


def _upstreams_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """TOLLGATE_UPSTREAM_<VENDOR>=URL for any vendor, known or plugged in (names that are
    settings of their own, such as TOLLGATE_UPSTREAM_TIMEOUT_S, are not vendors)."""
    settings = {f"TOLLGATE_{name.upper()}" for name in Settings.__dataclass_fields__}
    return {name[len(_UPSTREAM_PREFIX):].lower(): value for name, value in env.items()
            if name.startswith(_UPSTREAM_PREFIX) and name not in settings and value}


_UPSTREAM_PREFIX = "TOLLGATE_UPSTREAM_"
