"""How an agent tags every call of a run with X-Agent-Run-Id in SDKs that have no per-call
headers: a thin HTTP client that adds it (the same trick works in production code)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resend.http_client_requests import RequestsClient
from twilio.http.http_client import TwilioHttpClient


class TwilioRunClient(TwilioHttpClient):
    def __init__(self, run_id: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.run_id = run_id

    def request(self, method: str, url: str, params=None, data=None, headers=None, **kwargs: Any):
        return super().request(method, url, params, data, {**(headers or {}), "X-Agent-Run-Id": self.run_id}, **kwargs)


class ResendRunClient(RequestsClient):
    def __init__(self, run_id: str):
        super().__init__()
        self.run_id = run_id

    def request(self, method: str, url: str, headers: Mapping[str, str], *args: Any, **kwargs: Any):
        return super().request(method, url, {**headers, "X-Agent-Run-Id": self.run_id}, *args, **kwargs)
