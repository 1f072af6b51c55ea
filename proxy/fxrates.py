"""Exchange rates from a published daily reference: fetched, parsed strictly, stored, installed.

The shipped table (vendors/pricing/fx_usd.json) is hand-entered; every USD figure a cap holds for
a call in another currency rests on it. ``tollgate prices sync --fx`` replaces it, currency by
currency, with a published reference: the European Central Bank's daily euro reference rates by
default (free, published every working day around 16:00 CET), or any source that serves the same
format (``--source``, TOLLGATE_FX_SOURCE; proxy/config.py holds the default URL).

The reference is parsed as a hostile document would be: a DOCTYPE, an entity declaration or an
external entity is refused before ElementTree sees the bytes (expat would otherwise expand
internal entities: the "billion laughs"), and anything that is not exactly the ECB's layout (one
day, three-letter codes, positive decimal rates, USD among them) is refused whole, so nothing is
stored from a page that is not the reference. Rates are EUR-based; Tollgate's are USD per unit,
so ``usd_per_unit[c] = rate(USD) / rate(c)`` and EUR's is rate(USD), in Decimal throughout.

The request path never reads this table: each process loads it at start and again every
``fx_refresh_interval_s``, and installs it in vendors/money.py only when what is stored changed.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, NoReturn
from xml.parsers import expat

import httpx
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from proxy import pricetables
from proxy.errors import UpstreamFailure
from vendors import money

log = structlog.get_logger(__name__)

MAX_BYTES = 1_048_576  # the real page is under 2 KiB
DIGITS = 18  # significant digits kept of a quotient (IDR's rate needs 10 past the point)
_GESMES = "{http://www.gesmes.org/xml/2002-08-01}"
_EUROFXREF = "{http://www.ecb.int/vocabulary/2002-08-01/eurofxref}"
_CODE = re.compile(r"[A-Z]{3}")
_RATE = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")


@dataclass(frozen=True)
class Reference:
    """One day of the reference: units of each currency per euro, as published."""

    as_of: datetime.date
    per_euro: dict[str, Decimal]


def _refuse(message: str) -> NoReturn:
    raise UpstreamFailure("fx_source_invalid", f"The exchange-rate reference was refused: {message}",
                          maybe_delivered=False)


def _refuse_declarations(body: bytes) -> None:
    """A pass of expat alone, before ElementTree: any DOCTYPE or entity ends the parse."""
    parser = expat.ParserCreate()

    def doctype(*_: Any) -> None:
        _refuse("it has a DOCTYPE (entities are not expanded from a reference)")

    def entity(*_: Any) -> None:
        _refuse("it declares an entity")

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.ExternalEntityRefHandler = entity  # type: ignore[assignment]
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        _refuse(f"it is not well-formed XML ({exc})")


def parse_reference(body: bytes) -> Reference:
    """The ECB's eurofxref-daily.xml layout, exactly; anything else is refused whole."""
    if len(body) > MAX_BYTES:
        _refuse(f"it is larger than {MAX_BYTES} bytes")
    _refuse_declarations(body)
    root = ElementTree.fromstring(body)
    if root.tag != f"{_GESMES}Envelope":
        _refuse(f"its root is {root.tag!r}, not the gesmes Envelope")
    days = [cube for outer in root.findall(f"{_EUROFXREF}Cube") for cube in outer]
    if len(days) != 1 or days[0].tag != f"{_EUROFXREF}Cube":
        _refuse(f"it holds {len(days)} days of rates; the daily reference holds one")
    try:
        as_of = datetime.date.fromisoformat(days[0].get("time", ""))
    except ValueError:
        _refuse(f"its day {days[0].get('time')!r} is not an ISO date")
    per_euro: dict[str, Decimal] = {}
    for cube in days[0]:
        code, rate = cube.get("currency", ""), cube.get("rate", "")
        if cube.tag != f"{_EUROFXREF}Cube" or not _CODE.fullmatch(code) or not _RATE.fullmatch(rate):
            _refuse(f"an entry is not a currency code with a decimal rate ({code!r}, {rate!r})")
        if code in per_euro:
            _refuse(f"{code} is given twice")
        per_euro[code] = Decimal(rate)
    if "USD" not in per_euro or any(rate == 0 for rate in per_euro.values()):
        _refuse("it has no USD rate, or a rate of zero")
    return Reference(as_of, per_euro)


def usd_per_unit(reference: Reference) -> dict[str, Decimal]:
    """USD per one unit of each currency (lower case, Stripe's spelling), EUR and USD included."""
    usd = reference.per_euro["USD"]
    with localcontext() as context:
        context.prec = DIGITS
        try:
            rates = {code.lower(): usd / rate for code, rate in reference.per_euro.items() if code != "USD"}
        except InvalidOperation:
            _refuse("a rate cannot be divided by")
    return {**rates, "eur": usd, "usd": Decimal(1)}


async def fetch(source: str, timeout_s: float = 30.0) -> bytes:
    """The reference's bytes, or UpstreamFailure (fx_source_unreachable) saying why not."""
    try:
        async with (httpx.AsyncClient(timeout=timeout_s, follow_redirects=True, max_redirects=3) as client,
                    client.stream("GET", source, headers={"accept": "application/xml, text/xml"}) as answer):
            if answer.status_code != 200:
                raise UpstreamFailure("fx_source_unreachable", f"{source} answered {answer.status_code}, not 200",
                                      maybe_delivered=False)
            body = b""
            async for chunk in answer.aiter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    _refuse(f"it is larger than {MAX_BYTES} bytes")
            return body
    except httpx.HTTPError as exc:
        raise UpstreamFailure("fx_source_unreachable", f"{source} could not be fetched ({type(exc).__name__})",
                              maybe_delivered=False) from None


_STORE = text(
    "INSERT INTO fx_rates (currency, as_of, source, usd_per_unit) VALUES (:currency, :as_of, :source, :rate) "
    "ON CONFLICT (currency, as_of, source) DO UPDATE SET usd_per_unit = EXCLUDED.usd_per_unit, fetched_at = now()"
)
# The newest day per currency; a later fetch of the same day (a corrected page) wins.
_LATEST = text(
    "SELECT DISTINCT ON (currency) currency, usd_per_unit, as_of, source FROM fx_rates "
    "ORDER BY currency, as_of DESC, fetched_at DESC"
)


async def store(conn: AsyncConnection, source: str, reference: Reference) -> dict[str, Decimal]:
    rates = usd_per_unit(reference)
    await conn.execute(_STORE, [{"currency": code, "as_of": reference.as_of, "source": source, "rate": rate}
                                for code, rate in sorted(rates.items())])
    return rates


async def sync(engine: AsyncEngine, source: str) -> tuple[Reference, dict[str, Decimal]]:
    """Fetch, parse and store one day of the reference (``tollgate prices sync --fx``)."""
    reference = parse_reference(await fetch(source))
    async with engine.begin() as conn:
        rates = await store(conn, source, reference)
    return reference, rates


async def load(engine: AsyncEngine) -> list[money.SyncedRate]:
    async with engine.connect() as conn:
        rows = (await conn.execute(_LATEST)).all()
    return [money.SyncedRate(row.currency, row.usd_per_unit, row.as_of.isoformat(), row.source) for row in rows]


class Refresher:
    """Keeps this process's table in step with fx_rates, installing only what changed."""

    def __init__(self, engine: AsyncEngine, max_age_s: float | None = None):
        self._engine = engine
        self._seen: list[money.SyncedRate] | None = None
        self._max_age_s = max_age_s  # past it a table is warned of (proxy/pricetables.py); None: not checked
        self._warnings = pricetables.Warnings()

    async def refresh(self) -> bool:
        """Load the stored rates; install them if they differ from the last load. True: installed."""
        synced = await load(self._engine)
        if synced == self._seen:
            return False
        self._seen = synced
        table = money.install_fx(synced)
        log.info("fx_rates_installed", synced=len(synced), currencies=len(table.usd_per_unit),
                 as_of=max((rate.as_of for rate in synced), default=table.as_of))
        return True

    async def forever(self, interval_s: float) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # the database may be down: the table in memory stands
                log.error("fx_refresh_failed", error=type(exc).__name__)
            if self._max_age_s is not None:  # tables age while nothing changes: looked at each round
                self._warnings.tables(self._max_age_s)
            await asyncio.sleep(interval_s)
