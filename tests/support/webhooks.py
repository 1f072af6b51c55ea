"""A webhook receiver for the alert tests: a real HTTP server on loopback that records every
delivery and can be down (503) for its first N attempts, and the receiver's signature check as
docs/alerts.md publishes it (read from the document, so the documented text is what is tested)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.servers import serve_asgi

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"


def documented_verifier() -> Callable[[str, bytes, str], bool]:
    """``verify_tollgate_signature`` from the one Python block of docs/alerts.md, executed as written."""
    [block] = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    namespace: dict[str, Any] = {}
    exec(compile(block, str(DOC), "exec"), namespace)  # the documented text itself is what is under test
    verify: Callable[[str, bytes, str], bool] = namespace["verify_tollgate_signature"]
    return verify


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """``down_for``: how many requests get a 503 before it answers 200."""

    down_for: int = 0
    received: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            status = 503 if len(self.received) < self.down_for else 200
            self.received.append(Delivery(b"".join(chunks), headers, status))
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok" if status == 200 else b"down"})

    def accepted(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.received if d.answered == 200]


@contextmanager
def receiver(down_for: int = 0) -> Iterator[tuple[str, Receiver]]:
    app = Receiver(down_for)
    with serve_asgi(app) as base_url:
        yield f"{base_url}/hook", app


def until(condition: Callable[[], Any], what: str, timeout_s: float = 60) -> Any:
    """Poll until ``condition()`` is truthy (and return it); a deadline only so nothing hangs."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value
