"""A budget's period: where the current one starts and ends, and its forecast.

Periods are UTC: a day from midnight, an ISO week from Monday midnight, a calendar month from
its first day's midnight. The forecast is the spend at the period's end at its run rate so far:
`spent x period length / elapsed` (the contract's rule), whole microdollars rounded down.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = ["PERIODS", "Period", "forecast", "period_bounds"]

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")


def period_bounds(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """The `[start, end)` of the period holding `now` (UTC)."""
    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return midnight, midnight + timedelta(days=1)
    if period == "week":
        start = midnight - timedelta(days=midnight.weekday())
        return start, start + timedelta(days=7)
    start = midnight.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def forecast(spent: int, start: datetime, end: datetime, now: datetime) -> int:
    """The spend at `end` at the run rate of `[start, now)`; `spent` once the period is over.

    The elapsed time is counted in microseconds and at least one, so the first instant of a
    period forecasts from what it already holds rather than dividing by zero.
    """
    length = _micros(end - start)
    elapsed = min(max(_micros(now - start), 1), length)
    return spent * length // elapsed


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
