"""The console's formatting: money stays Decimal and keeps its precision; the chart covers
every day of the window and stacks vendors."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from proxy.console import render
from proxy.console.pages_policies import side_by_side


def test_usd_keeps_at_least_two_decimals_and_drops_only_trailing_zeros():
    assert render.usd("12.500000") == "12.50"
    assert render.usd("0.007500") == "0.0075"
    assert render.usd(Decimal("30")) == "30.00"
    assert render.usd("1E+3") == "1000.00"
    assert render.usd(None) == "–"


def test_spend_bars_count_reservations_and_requests():
    spend = {"caps": [
        {"window": "day", "limit_usd": "200.00", "limit_requests": None, "spent_usd": "30.000000",
         "reserved_usd": "12.500000", "requests": 3},
        {"window": "minute", "limit_usd": None, "limit_requests": 10, "spent_usd": "0", "reserved_usd": "0",
         "requests": 4},
        {"window": "run", "limit_usd": "20.00", "limit_requests": None, "spent_usd": "25", "reserved_usd": "0",
         "requests": 2},
    ]}
    day, minute, run = render.spend_bars(spend, "run_1")
    assert (day.label, day.used, day.text, day.percent) == ("today", Decimal("42.5"), "42.50 of 200.00 USD", 21)
    assert (minute.text, minute.percent) == ("4 of 10 calls", 40)
    assert (run.label, run.percent) == ("latest run", 100)


def test_chart_shows_every_day_and_stacks_vendors():
    rows = [{"day": "2026-11-24", "vendor": "stripe", "usd": "30.50", "calls": 2},
            {"day": "2026-11-24", "vendor": "twilio", "usd": "0.0075", "calls": 1},
            {"day": "2026-10-26", "vendor": "resend", "usd": "1.00", "calls": 1}]
    colours = {"stripe": "#4f46e5", "twilio": "#c2410c", "resend": "#047857"}
    chart = render.spend_chart(rows, colours, 30, today=date(2026, 11, 24))
    assert chart.days[0] == "2026-10-26" and chart.days[-1] == "2026-11-24" and len(chart.table) == 30
    assert chart.totals == {"resend": "1.00", "stripe": "30.50", "twilio": "0.0075"}
    assert chart.svg.count("<rect") == 3 and "2026-11-24 twilio: 0.0075 USD" in chart.svg
    assert 'fill="#c2410c"><title>2026-11-24 twilio' in chart.svg and chart.colours == colours
    assert "<script" not in chart.svg


def test_policy_versions_line_up_side_by_side():
    rows = side_by_side({"vendor": "stripe", "per_call_usd": "10"}, {"vendor": "stripe", "per_call_usd": "20",
                                                                       "mode": "shadow"})
    kinds = {kind for _, _, kind in rows}
    assert {"same", "changed"} <= kinds or {"same", "added", "removed"} <= kinds
    assert any('"20"' in new for _, new, kind in rows if kind != "same")
