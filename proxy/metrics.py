"""Prometheus metrics at /metrics, one registry per process (scrape every replica).

Label values are bounded, whatever an agent sends: vendor is an adapter's name, reason a code
of proxy/reasons.py, and endpoint, for forwarded calls, an operation of the adapter's
catalogue (``know``) or else ``unknown``; refusals have none (their reason code is the useful
label). The endpoint is the adapter's word, and shadow mode forwards what an allowlist would
refuse: an adapter that names calls it does not know by their path, as a plug-in may (tests/
plugins/acme.py does), made one series per path, and 3,000 made-up paths grew /metrics
from 8 KB to 853 KB. No label ever carries a key id, an address or anything else a caller
can vary without bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase

from proxy.gate import FORWARDED
from vendors.base import Operation

REGISTRY = CollectorRegistry()
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter("tollgate_requests_total", "Requests by vendor, endpoint, decision and reason",
                   ("vendor", "endpoint", "decision", "reason"), registry=REGISTRY)
REQUEST_SECONDS = Histogram("tollgate_request_seconds", "Time in Tollgate, upstream included",
                            ("vendor", "decision"), buckets=LATENCY_BUCKETS, registry=REGISTRY)
ADDED_SECONDS = Histogram("tollgate_added_seconds", "Time Tollgate added to forwarded calls (total minus upstream)",
                          ("vendor",), buckets=LATENCY_BUCKETS, registry=REGISTRY)
UPSTREAM_SECONDS = Histogram("tollgate_upstream_seconds", "Vendor response time", ("vendor",),
                             buckets=LATENCY_BUCKETS, registry=REGISTRY)
SPEND_USD = Counter("tollgate_spend_usd_total", "USD moved by forwarded calls (observability, not accounting)",
                    ("vendor",), registry=REGISTRY)
GATE_ERRORS = Counter("tollgate_gate_errors_total", "Requests failed closed because the gate could not decide",
                      ("reason",), registry=REGISTRY)
OPEN_RESERVATIONS = Gauge("tollgate_open_reservations", "Reservations not yet settled (all processes)",
                          registry=REGISTRY)
AUTH_REFUSALS = Counter("tollgate_auth_refusals_total",
                        "Refusals of callers who never authenticated (unknown or forged key, wrong secret): "
                        "recorded='row' wrote an audit row, 'count' only added to auth_refusals, "
                        "'dropped' could not be kept for the database", ("vendor", "reason", "recorded"),
                        registry=REGISTRY)
PRICE_TABLE_AGE = Gauge("tollgate_price_table_age_seconds",
                        "How old each price table is (from the start of the day it is as of); -1: never synced",
                        ("table",), registry=REGISTRY)
POOL_CONNECTIONS = Gauge("tollgate_db_pool_connections", "Request-path database connections",
                         ("pool", "state"), registry=REGISTRY)


# labels() validates and locks on every call; the children it returns are kept for good by the
# metric anyway, so holding them here too costs nothing and saves that work per request.
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: MetricWrapperBase, *values: str) -> Any:
    key = (metric, *values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


UNKNOWN_ENDPOINT = "unknown"
_known: dict[str, frozenset[str]] = {}  # vendor -> the endpoint labels it may use


def know(vendor: str, operations: Iterable[Operation]) -> None:
    """The endpoints ``vendor``'s calls are labelled with: its catalogue (the proxy handler tells)."""
    _known[vendor] = frozenset(f"{op.method} {op.path}" for op in operations)


def endpoint_label(vendor: str, endpoint: str | None, decision: str) -> str:
    if decision not in FORWARDED or not endpoint:
        return ""
    return endpoint if endpoint in _known.get(vendor, ()) else UNKNOWN_ENDPOINT


def observe_request(vendor: str, endpoint: str | None, decision: str, reason: str | None, seconds: float,
                    upstream_seconds: float | None = None) -> None:
    label = endpoint_label(vendor, endpoint, decision)
    _child(REQUESTS, vendor, label, decision, reason or "").inc()
    _child(REQUEST_SECONDS, vendor, decision).observe(seconds)
    if upstream_seconds is not None:
        _child(UPSTREAM_SECONDS, vendor).observe(upstream_seconds)
        _child(ADDED_SECONDS, vendor).observe(max(seconds - upstream_seconds, 0.0))


def count_auth_refusal(vendor: str, reason: str, recorded: str) -> None:
    _child(AUTH_REFUSALS, vendor, reason, recorded).inc()


def observe_spend(vendor: str, usd: Decimal) -> None:
    if usd > 0:
        _child(SPEND_USD, vendor).inc(float(usd))  # a gauge of activity, not accounting: float is fine here


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
