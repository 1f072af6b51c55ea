"""Endpoint templates: ``POST /v1/refunds``, ``GET /v1/charges/{id}``.

A template names the operation independent of the object it touches; it is what the
audit row's ``endpoint`` column holds and what operators read. Policies match the
concrete path segment by segment (``*`` is one segment).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# An object id as vendors print them: a short prefix, '_' or a letter pair, then an opaque tail
# with a digit or capital in it (Stripe ch_3MmlLrLkdIwHu7ix, Twilio SM0123..., Resend UUIDs).
_ID = re.compile(
    r"^(?:[a-z]{1,16}_[A-Za-z0-9]*[0-9A-Z][A-Za-z0-9]*"
    r"|[A-Z]{2}[0-9a-f]{32}"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:\.json)?$"
)


def looks_like_id(segment: str) -> bool:
    return bool(_ID.match(segment))


@dataclass(frozen=True)
class Endpoint(Generic[T]):
    method: str
    template: str  # "/v1/charges/{id}"
    facts: T
    label: str | None = None  # the name operators read, when it is not METHOD + template

    @property
    def name(self) -> str:
        return self.label or f"{self.method} {self.template}"


class EndpointTable(Generic[T]):
    """Known endpoints of one vendor, matched by method and path segments."""

    def __init__(self, endpoints: Iterable[Endpoint[T]]):
        self._by_shape: dict[tuple[str, int], list[tuple[list[str], Endpoint[T]]]] = {}
        self._exact: dict[tuple[str, str], Endpoint[T]] = {}  # templates without a placeholder: one probe
        for endpoint in endpoints:
            if "{" not in endpoint.template:
                self._exact.setdefault((endpoint.method, endpoint.template.strip("/")), endpoint)
            segments = endpoint.template.strip("/").split("/")
            self._by_shape.setdefault((endpoint.method, len(segments)), []).append((segments, endpoint))
        for candidates in self._by_shape.values():  # a literal segment beats a placeholder: "search" is no id
            candidates.sort(key=lambda item: [s.startswith("{") for s in item[0]])
        # What ``match`` walks once the exact probe missed: a literal-only template binds only the
        # path it spells, which that probe has already looked up, so trying it again (hundreds of
        # them share a length with /v1/charges/{charge}) costs time and can never match.
        self._templated = {shape: [item for item in candidates if "{" in item[1].template]
                           for shape, candidates in self._by_shape.items()}

    def endpoints(self) -> list[Endpoint[T]]:
        return [endpoint for candidates in self._by_shape.values() for _, endpoint in candidates]

    def match(self, method: str, path: str) -> tuple[Endpoint[T] | None, dict[str, str], str]:
        """Return (endpoint or None, path params, template name)."""
        exact = self._exact.get((method, path.strip("/")))
        if exact is not None:  # a literal beats a placeholder anyway
            return exact, {}, exact.name
        segments = path.strip("/").split("/")
        for template, endpoint in self._templated.get((method, len(segments)), ()):
            params = _bind(template, segments)
            if params is not None:
                return endpoint, params, endpoint.name
        return None, {}, f"{method} {generic_template(segments)}"


def _bind(template: list[str], segments: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for want, got in zip(template, segments, strict=True):  # same shape: same length
        if want.startswith("{") and want.endswith("}"):
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


def generic_template(segments: list[str]) -> str:
    return "/" + "/".join("{id}" if looks_like_id(s) else s for s in segments)


@dataclass(frozen=True)
class PathPattern:
    """A policy pattern ``METHOD /a/*/c``, split once (a policy's patterns are matched on every call)."""

    method: str
    segments: tuple[str | None, ...]  # None: exactly one segment, whatever it is

    @classmethod
    def parse(cls, pattern: str) -> PathPattern:
        want_method, _, want_path = pattern.partition(" ")
        segments = tuple(None if w == "*" or (w.startswith("{") and w.endswith("}")) else w
                         for w in want_path.strip("/").split("/"))
        return cls(want_method.upper(), segments)

    def matches(self, method: str, segments: list[str], template: list[str] | None = None) -> bool:
        """``segments``: the request path as ``path.strip("/").split("/")``; ``template``: its
        operation's, when known, in which ``*`` matches only a placeholder: ``GET /v1/charges/*``
        reads one charge, never ``GET /v1/charges/search`` (every customer's charges)."""
        if self.method != method or len(self.segments) != len(segments):
            return False
        if template is not None and len(template) != len(segments):
            template = None
        return all(
            (w is None and (template is None or template[i].startswith("{"))) or w == g
            for i, (w, g) in enumerate(zip(self.segments, segments, strict=True))
        )


    def matches_operation(self, method: str, path: str) -> bool:
        """As a call to the operation ``method path`` (a template) would be matched; a pattern
        naming one object by id matches its operation."""
        template = path.strip("/").split("/")
        if len(self.segments) != len(template):
            return False
        pairs = zip(self.segments, template, strict=True)
        concrete = [w if w is not None and t.startswith("{") else t for w, t in pairs]
        return self.matches(method, concrete, template)


def pattern_matches(pattern: str, method: str, path: str) -> bool:
    """Policy pattern ``METHOD /a/*/c`` against a concrete request.

    ``*`` (or a template placeholder such as ``{id}``) is exactly one segment.
    """
    return PathPattern.parse(pattern).matches(method, path.strip("/").split("/"))
