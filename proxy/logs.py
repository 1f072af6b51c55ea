"""structlog set-up: JSON lines in production, readable lines on a terminal, secrets redacted.

Redaction is a processor, not a habit: any field whose name says secret, and any
value that looks like a vault key or a vendor secret, is masked before it is written.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_SECRET_FIELDS = re.compile(r"(secret|password|token|authorization|api_key|master_key)", re.I)
_SECRET_VALUES = re.compile(
    r"(tg_[A-Za-z0-9]{12}_)[A-Za-z0-9]+"  # vault keys: keep the public id part
    r"|\b(sk|rk)_(live|test)_[A-Za-z0-9]+"  # Stripe secret and restricted keys
    r"|\bre_[A-Za-z0-9]{8,}_[A-Za-z0-9_]+"  # Resend keys
    r"|tga_[A-Za-z0-9_\-]+"  # Tollgate admin tokens
)


def _mask(value: str) -> str:
    return _SECRET_VALUES.sub(lambda m: (m.group(1) or "") + "***", value)


def redact(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    for name, value in list(event.items()):
        if _SECRET_FIELDS.search(name) and value is not None:
            event[name] = "***"
        elif isinstance(value, str):
            event[name] = _mask(value)
    return event


def configure(fmt: str = "console", level: str = "INFO") -> None:
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
