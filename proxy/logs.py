"""structlog set-up: JSON lines in production, readable lines on a terminal, secrets redacted.

Redaction is a processor, not a habit: any field whose name says secret, and any
value that looks like a vault key or a vendor secret, is masked before it is written.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO

import structlog

from proxy.redact import mask_secrets

_SECRET_FIELDS = re.compile(r"(secret|password|token|authorization|api_key|master_key)", re.I)


def redact(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    for name, value in list(event.items()):
        if _SECRET_FIELDS.search(name) and value is not None:
            event[name] = "***"
        elif isinstance(value, str):
            event[name] = mask_secrets(value)
    return event


def configure(fmt: str = "console", level: str = "INFO", stream: TextIO | None = None) -> None:
    """``stream``: where lines go (default stderr)."""
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
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
