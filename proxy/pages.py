"""Keyset pagination for the admin lists (keys, policies, approvals, audit rows).

A list that grows with use is never answered whole: at 10,000 keys the keys list was 2.9 MB
in one answer. A page is ``limit`` rows in a fixed order plus ``next``, an opaque cursor
naming the last row shown; the following page is the rows strictly after it in that order.
Unlike OFFSET, a page costs the same however deep it is (an index range scan from the
cursor), and rows inserted meanwhile neither repeat nor skip a row already paged past.

Each order ends in a unique column (an id), so "after the cursor" is exact even when many
rows share a timestamp (keys made in one transaction do). The cursor carries the list's
name, so one list's cursor is refused by another; it is position, not authority (the
caller is already the admin), so it is encoded, not signed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, bindparam, tuple_

from proxy.errors import InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_TAGS = {datetime: "t", int: "i", str: "s"}


@dataclass(frozen=True)
class Page:
    data: list[dict[str, Any]]
    next: str | None

    def body(self) -> dict[str, Any]:
        """The admin API's answer for a list: ``{"data": [...], "next": cursor or null}``."""
        return {"data": self.data, "next": self.next}


@dataclass(frozen=True)
class Order:
    """A list's order: its name (bound into its cursors), the columns, newest or oldest first."""

    name: str
    columns: Sequence[ColumnElement[Any]]
    descending: bool = True

    def window(self, query: Select[Any], limit: int, cursor: str | None) -> Select[Any]:
        """``query`` ordered, after ``cursor``, one row more than ``limit`` (to tell if there is a next page)."""
        if cursor:
            after = tuple_(*self.columns)
            # Bound with the columns' own types: a bare datetime would be sent as a timestamp
            # without time zone and compared in the session's zone.
            bound = tuple_(*(bindparam(None, value, type_=column.type)
                             for value, column in zip(self.decode(cursor), self.columns, strict=True)))
            query = query.where(after < bound if self.descending else after > bound)
        return query.order_by(*(c.desc() if self.descending else c.asc() for c in self.columns)).limit(limit + 1)

    def cut(self, rows: Sequence[Row[Any]], limit: int) -> tuple[list[Row[Any]], str | None]:
        """The page's rows and the cursor after its last one (None on the last page). Each row
        carries the order's columns under their own names."""
        shown = list(rows[:limit])
        if len(rows) <= limit:
            return shown, None
        return shown, self.encode([shown[-1]._mapping[str(c.key)] for c in self.columns])

    def encode(self, values: Sequence[Any]) -> str:
        raw = json.dumps([self.name, *map(_tagged, values)], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, cursor: str) -> list[Any]:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            if not isinstance(decoded, list) or decoded[:1] != [self.name] or len(decoded) != len(self.columns) + 1:
                raise ValueError(cursor)
            return [_value(tagged, column) for tagged, column in zip(decoded[1:], self.columns, strict=True)]
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidInput("invalid_cursor", "The cursor is not one this list gave out: pass the "
                                                 "'next' of the previous page unchanged.") from None


def _tagged(value: Any) -> str:
    if isinstance(value, datetime):
        return "t:" + value.isoformat()
    return f"{_TAGS[type(value)]}:{value}"


def _value(tagged: Any, column: ColumnElement[Any]) -> Any:
    kind = column.type.python_type
    tag, _, text = tagged.partition(":") if isinstance(tagged, str) else ("", "", "")
    if tag != _TAGS.get(kind):
        raise ValueError(tagged)
    if kind is datetime:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ValueError(text)
        return moment
    return int(text) if kind is int else text


def limit_of(raw: str | None) -> int:
    """The page size asked for; the route has checked it against the OpenAPI bounds (1..MAX_LIMIT)."""
    return DEFAULT_LIMIT if raw is None else int(raw)


Fetch = Callable[[int, "str | None"], Awaitable[Page]]  # (limit, cursor) -> a page


async def follow(fetch: Fetch, at_most: int | None = None) -> AsyncIterator[dict[str, Any]]:
    """Every row of a list (or the first ``at_most``), read a page at a time: what the CLI
    prints as it goes, so neither it nor the database ever holds the whole list at once."""
    cursor: str | None = None
    left = at_most
    while left is None or left > 0:
        page = await fetch(MAX_LIMIT if left is None else min(left, MAX_LIMIT), cursor)
        for row in page.data:
            yield row
        if left is not None:
            left -= len(page.data)
        if page.next is None:
            return
        cursor = page.next
