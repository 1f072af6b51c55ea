"""Formatting for the templates (money, times, caps) and the 30-day spend chart as inline SVG.

Money arrives from the admin API as decimal strings and stays Decimal here: never float.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from markupsafe import Markup, escape

OTHER_COLOUR = "#475569"  # a vendor with rows but no adapter in this process


def usd(value: Any) -> str:
    """'12.500000' -> '12.50', '0.007500' -> '0.0075': at least two decimals, no trailing noise."""
    if value is None or value == "":
        return "–"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    text = f"{amount:f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{whole}.{frac}"


def when(value: Any) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM:SS UTC'."""
    if not value:
        return "–"
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def remaining(value: Any) -> str:
    """Time left until an ISO timestamp, for readers without JavaScript."""
    if not value:
        return ""
    seconds = int((datetime.fromisoformat(str(value)) - datetime.now(UTC)).total_seconds())
    if seconds <= 0:
        return "expired"
    return f"{seconds // 60} min {seconds % 60:02d} s left"


@dataclass(frozen=True)
class Bar:
    """One cap as a bar: how much of ``limit`` is used, in the cap's unit."""

    label: str
    used: Decimal
    limit: Decimal
    unit: str  # usd | requests

    @property
    def text(self) -> str:
        if self.unit == "usd":
            return f"{usd(self.used)} of {usd(self.limit)} USD"
        return f"{self.used.normalize():f} of {self.limit.normalize():f} calls"

    @property
    def percent(self) -> int:
        if self.limit <= 0:
            return 100
        return min(100, int(self.used * 100 / self.limit))


WINDOW_NAMES = {"minute": "this minute", "hour": "this hour", "day": "today", "month": "this month",
                "total": "all time", "run": "per run"}


def spend_bars(spend: dict[str, Any], run_id: str | None = None) -> list[Bar]:
    """Bars from GET /keys/{id}/spend (or a key's ``spend`` in GET /keys?include=spend): used = spent +
    reserved (USD caps) or requests."""
    bars = []
    for cap in spend.get("caps", []):
        label = WINDOW_NAMES.get(cap["window"], cap["window"])
        if cap["window"] == "run":
            label = "latest run" if run_id else "calls without a run id"
        if cap["limit_usd"] is not None:
            used = Decimal(cap["spent_usd"]) + Decimal(cap["reserved_usd"])
            bars.append(Bar(label, used, Decimal(cap["limit_usd"]), "usd"))
        else:
            bars.append(Bar(label, Decimal(cap["requests"]), Decimal(cap["limit_requests"]), "requests"))
    return bars


def story_bars(caps: list[dict[str, str]]) -> list[Bar]:
    """Bars from one call of GET /runs/{id}: what the key had used in each cap's window."""
    return [Bar(WINDOW_NAMES.get(c["window"], c["window"]), Decimal(c["used"]), Decimal(c["limit"]), c["unit"])
            for c in caps]


@dataclass(frozen=True)
class Chart:
    svg: Markup
    days: list[str]
    vendors: list[str]
    table: list[tuple[str, list[str]]]  # (day, usd per vendor) for the data table
    totals: dict[str, str]
    colours: dict[str, str]


def spend_chart(rows: list[dict[str, Any]], vendor_colours: Mapping[str, str], days: int = 30,
                today: date | None = None) -> Chart:
    """Stacked bars of USD per vendor per UTC day, oldest left; every day shown, empty or not.
    ``vendor_colours``: each served vendor's colour (its adapter's); every one gets a column."""
    today = today or datetime.now(UTC).date()
    span = [(today - timedelta(days=offset)).isoformat() for offset in range(days - 1, -1, -1)]
    vendors = sorted({r["vendor"] for r in rows} | set(vendor_colours))
    colours = {v: vendor_colours.get(v, OTHER_COLOUR) for v in vendors}
    amounts = {(r["day"], r["vendor"]): Decimal(r["usd"]) for r in rows}
    per_day = [sum((amounts.get((d, v), Decimal(0)) for v in vendors), Decimal(0)) for d in span]
    top = _nice_ceiling(max(per_day, default=Decimal(0)))
    svg = _svg(span, colours, amounts, top)
    table = [(d, [usd(amounts.get((d, v), Decimal(0))) for v in vendors]) for d in span]
    totals = {v: usd(sum((amounts.get((d, v), Decimal(0)) for d in span), Decimal(0))) for v in vendors}
    return Chart(svg, span, vendors, table, totals, colours)


def _nice_ceiling(value: Decimal) -> Decimal:
    if value <= 0:
        return Decimal(10)
    step = Decimal(1)
    while step * 10 < value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 260, 56, 28, 12


def _svg(span: list[str], colours: dict[str, str], amounts: dict[tuple[str, str], Decimal], top: Decimal) -> Markup:
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / len(span)
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc">',
             '<title id="chart-title">Spend per vendor per day, last 30 days (USD)</title>',
             f'<desc id="chart-desc">Stacked bars, one per UTC day from {span[0]} to {span[-1]}; '
             'the table below has the numbers.</desc>']
    for tick in range(5):
        value = top * tick / 4
        y = TOP + plot_h - float(value / top) * plot_h
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#cbd5e1" '
                     'stroke-width="1"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#334155">'
                     f'{escape(usd(value))}</text>')
    for index, day in enumerate(span):
        x, base = LEFT + index * slot + 2, float(TOP + plot_h)
        for vendor, colour in colours.items():
            amount = amounts.get((day, vendor), Decimal(0))
            if amount <= 0:
                continue
            height = float(amount / top) * plot_h
            base -= height
            parts.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{slot - 4:.1f}" height="{height:.1f}" '
                         f'fill="{escape(colour)}"><title>{escape(day)} {escape(vendor)}: '
                         f'{escape(usd(amount))} USD</title></rect>')
        if index % 5 == 0 or index == len(span) - 1:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11" '
                         f'fill="#334155">{escape(day[5:])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
