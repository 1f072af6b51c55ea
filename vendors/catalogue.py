"""A vendor's operations as data: every method and path its published API description has,
each classified (what it does, and how Tollgate prices it), matched against requests.

Why data and not code: DESIGN.md guarantee 8 says every operation the vendor can be sent is
classified, and an operation Tollgate does not know is refused, never forwarded at $0. A
catalogue held in JSON beside the adapter (``vendors/twilio/operations/*.json``,
``vendors/resend/operations.json``) can be checked against the vendor's own OpenAPI document
by a test (tests/test_operation_catalogues.py), so it cannot fall behind the vendor silently.

Each entry is keyed ``"METHOD /path/{Placeholder}"`` exactly as the vendor's spec spells it:

* ``kind``: ``sends`` (reaches a person), ``buys`` (numbers, add-ons, registrations...),
  ``reads`` (the note says what it reveals), ``configures``, ``issues_credentials``, ``other``;
* ``price``: the rule the adapter prices it by (``free``, ``unknown`` and the adapter's own);
* ``note``: for people: who a send reaches and how its price is known, what a read reveals;
* ``to`` / ``sender``: the parameter naming the recipient / sender (``{Name}``: a path one);
* ``lists``: parameters the vendor takes as repeated keys; ``body``: when not the default;
* ``secret``: for ``issues_credentials``, where the answer carries the credential it issues (an API
  key's ``secret``, ``binding.secret``; a dotted path, walking into every item of a list), so the
  core can withhold it (vendors.base.ParsedResponse.credentials);
* ``priced``: how policy warnings describe the rule's pricing (vendors.base.Operation.priced), when
  the default guess (``free``/``unknown`` as they are, any other rule "request") is wrong, e.g.
  ``lookup`` for a rule priced from a read the core makes before the gate, ``set`` for one priced at
  prices the operator sets (Twilio's Verify and Lookups packages).

Matching: a path segment in the template is a literal or a placeholder with an optional
suffix (``{Sid}.json``). A literal beats a placeholder (``/emails/receiving`` is not the email
with id "receiving"), and a placeholder whose value is a look-alike of a literal of the
catalogue (``/emails/Receiving``, ``Messages`` for ``Messages.json``) is refused rather than
guessed at. Templates never carry a value from the request: no phone number, address or id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vendors import base
from vendors.base import RequestRejected

KINDS = ("sends", "buys", "reads", "configures", "issues_credentials", "other")
# The catalogue's kinds as vendors.base.Operation (policy warnings) names them.
_POLICY_KINDS = {"sends": "reaches_people"}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}(.*)\Z")
_EXTENSION = re.compile(r"\.[A-Za-z]{2,5}\Z")


@dataclass(frozen=True)
class Entry:
    """One operation of the vendor's spec, as the catalogue classifies it."""

    method: str
    template: str  # as the spec spells it: /2010-04-01/Accounts/{AccountSid}/Messages.json
    kind: str
    price: str
    note: str
    to: str | None = None
    sender: str | None = None
    lists: frozenset[str] = frozenset()
    body: str | None = None
    priced: str | None = None
    secrets: tuple[str, ...] = ()  # dotted paths in the answer of the credentials it issues

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"

    def described(self, path: str) -> base.Operation:
        """As ``tollgate policy validate`` lists it, under ``path`` (the template as policies name it):
        a price rule that may be unknown before the call (``unknown``) is priced "after"; one that
        prices from the request (Twilio's segments, Resend's recipients, a lookup's Fields) "request";
        one priced by reads before it leaves (a Resend broadcast's segment) "lookup"."""
        priced = self.priced or {"free": "free", "unknown": "after", "broadcast": "lookup"}.get(self.price, "request")
        return base.Operation(self.method, path, _POLICY_KINDS.get(self.kind, self.kind), priced)


@dataclass(frozen=True)
class Match:
    operation: Entry
    params: Mapping[str, str] = field(default_factory=dict)  # placeholder -> the segment's value (suffix removed)

    @property
    def target(self) -> str | None:
        """The value of the template's last segment when it is a placeholder: what a fetch, an update
        or a delete acts on (``/Messages/{Sid}.json``); None for a list or a create."""
        last = _Segment.parse(self.operation.template.rsplit("/", 1)[-1])
        return self.params.get(last.name) if last.literal is None else None


@dataclass(frozen=True)
class _Segment:
    literal: str | None  # None: a placeholder
    name: str = ""
    suffix: str = ""

    @classmethod
    def parse(cls, text: str) -> _Segment:
        found = _PLACEHOLDER.match(text)
        return cls(None, found.group(1), found.group(2)) if found else cls(text)

    def bind(self, value: str) -> str | None:
        """The placeholder's value, or None when the segment does not fit."""
        if self.literal is not None:
            return "" if value == self.literal else None
        stem = value[: len(value) - len(self.suffix)] if value.endswith(self.suffix) else ""
        return stem or None


def lookalike(text: str) -> str:
    """How a segment compares for look-alikes: case folded, a file extension dropped."""
    return _EXTENSION.sub("", text).lower()


class Catalogue:
    """One API host's operations (one spec), matched by method and path."""

    def __init__(self, operations: Mapping[str, Mapping[str, Any]], *, source: str = ""):
        self.source = source
        self.operations: dict[str, Entry] = {}
        self._shapes: dict[tuple[str, int], list[tuple[tuple[_Segment, ...], Entry]]] = {}
        for key, entry in operations.items():
            operation = _entry(key, entry)
            self.operations[key] = operation
            segments = tuple(_Segment.parse(s) for s in operation.template.strip("/").split("/"))
            self._shapes.setdefault((operation.method, len(segments)), []).append((segments, operation))
        self.literals = frozenset(
            s.literal for shapes in self._shapes.values() for segments, _ in shapes for s in segments if s.literal
        )
        self._folded = {lookalike(literal) for literal in self.literals}

    @classmethod
    def load(cls, *paths: Path) -> Catalogue:
        """One host's catalogue, from one file per spec it serves (Twilio's Pricing host has v1 and v2)."""
        operations: dict[str, Mapping[str, Any]] = {}
        sources = []
        for path in paths:
            document = json.loads(path.read_text(encoding="utf-8"))
            if twice := operations.keys() & document["operations"].keys():
                raise ValueError(f"{path.name} classifies again {sorted(twice)}")
            operations.update(document["operations"])
            sources.append(document.get("spec", ""))
        return cls(operations, source="; ".join(sources))

    def match(self, method: str, path: str) -> Match | None:
        """The operation a request is, or None. Raises RequestRejected (invalid_path, 404) for a
        look-alike: a segment that differs from one of the catalogue's words only in case or
        extension, where the vendor may act on what Tollgate would not recognise."""
        got = path.strip("/").split("/")
        best: tuple[tuple[int, ...], Match] | None = None
        for segments, operation in self._shapes.get((method, len(got)), ()):
            params = _bind(segments, got)
            if params is None:
                continue
            rank = tuple(1 if s.literal is not None else 0 for s in segments)
            if best is None or rank > best[0]:
                best = (rank, Match(operation, params))
        if best is not None:
            for value in best[1].params.values():
                self._refuse_lookalike(value)
            return best[1]
        folded = [lookalike(segment) for segment in got]
        for segments, _ in self._shapes.get((method, len(got)), ()):
            if all(s.literal is None or lookalike(s.literal) == f for s, f in zip(segments, folded, strict=True)):
                raise RequestRejected("invalid_path", f"{path[:80]!r} is a look-alike of one of the vendor's paths; "
                                      "use the vendor's own spelling.", status=404)
        return None

    def operation_of(self, method: str, path: str) -> Entry:
        """The operation of a request an adapter has already parsed (so it matched)."""
        found = self.match(method, path)
        if found is None:
            raise ValueError(f"{method} {path[:80]} is not an operation of this catalogue")
        return found.operation

    def generic_template(self, method: str, path: str) -> str:
        """A name for a request that matched nothing: the catalogue's words kept, every other
        segment ``{id}``, so no value from the request reaches the audit row."""
        named = [s if s in self.literals else "{id}" for s in path.strip("/").split("/")]
        return f"{method} /" + "/".join(named)

    def _refuse_lookalike(self, value: str) -> None:
        if value not in self.literals and lookalike(value) in self._folded:
            raise RequestRejected("invalid_path", f"{value[:40]!r} is a look-alike of a word of the vendor's paths; "
                                  "use the vendor's own spelling.", status=404)


def _bind(segments: tuple[_Segment, ...], got: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for want, value in zip(segments, got, strict=True):
        bound = want.bind(value)
        if bound is None:
            return None
        if want.literal is None:
            params[want.name] = bound
    return params


def _entry(key: str, entry: Mapping[str, Any]) -> Entry:
    method, _, template = key.partition(" ")
    if entry["kind"] not in KINDS:
        raise ValueError(f"{key}: kind {entry['kind']!r} is not one of {KINDS}")
    return Entry(
        method=method,
        template=template,
        kind=entry["kind"],
        price=entry["price"],
        note=entry["note"],
        to=entry.get("to"),
        sender=entry.get("sender"),
        lists=frozenset(entry.get("lists", ())),
        body=entry.get("body"),
        priced=entry.get("priced"),
        secrets=tuple([entry["secret"]] if isinstance(entry.get("secret"), str) else entry.get("secret", ())),
    )


def issued_credentials(entry: Entry, answer: Any) -> tuple[str, ...]:
    """The credentials an answer of ``entry`` hands out, read at its ``secret`` paths (strings only)."""
    found: list[str] = []
    for path in entry.secrets:
        nodes = [answer]
        for name in path.split("."):
            nodes = [n.get(name) for n in _items(nodes) if isinstance(n, dict)]
        found += [n for n in _items(nodes) if isinstance(n, str) and n]
    return tuple(found)


def _items(nodes: list[Any]) -> list[Any]:
    """``nodes`` with each list among them replaced by its items."""
    return [item for n in nodes for item in (n if isinstance(n, list) else [n])]
