"""The dashboard's date range: whole UTC days, from the first day shown to the last, inclusive.

The page speaks in days people pick (`from=2026-11-01&to=2026-11-30` shows both days); the
usage queries speak in instants, `start <= timestamp < end`, so `end` is the day after `to`.
Presets (7, 30, 90 days) end today. A range is at most `MAX_DAYS` days, as `GET /v1/usage`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

__all__ = ["DEFAULT_DAYS", "MAX_DAYS", "PRESETS", "DateRange", "parse_range"]

PRESETS = (7, 30, 90)
DEFAULT_DAYS = 30
MAX_DAYS = 366


@dataclass(frozen=True)
class DateRange:
    """Days `first` to `last`, both shown; `error` says why the asked range was not used."""

    first: date
    last: date
    error: str | None = None

    @property
    def start(self) -> datetime:
        """00:00 UTC of the first day (inclusive)."""
        return datetime.combine(self.first, time(), UTC)

    @property
    def end(self) -> datetime:
        """00:00 UTC of the day after the last (exclusive)."""
        return datetime.combine(self.last + timedelta(days=1), time(), UTC)

    @property
    def days(self) -> list[date]:
        """Every day of the range, in order."""
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def preset(self, today: date) -> int | None:
        """The preset this range is (7, 30 or 90 days to today), if it is one."""
        for days in PRESETS:
            if self.last == today and (self.last - self.first).days + 1 == days:
                return days
        return None


_EARLIEST = date(1970, 1, 1)
_LATEST = date(8999, 12, 31)


def _last_days(days: int, today: date, error: str | None = None) -> DateRange:
    return DateRange(today - timedelta(days=days - 1), today, error)


def parse_range(params: Mapping[str, str], today: date) -> DateRange:
    """The range a page asks for (`days=N`, or `from` and `to` as YYYY-MM-DD); the last 30
    days when it asks for none, or for one that cannot be shown (with `error` saying why)."""
    if "from" not in params and "to" not in params:
        days = params.get("days", "")
        # isascii: "²" is a digit to isdigit() but not to int().
        if days.isascii() and days.isdigit() and 1 <= int(days) <= MAX_DAYS:
            return _last_days(int(days), today)
        error = None if not days else f"days must be a whole number from 1 to {MAX_DAYS}"
        return _last_days(DEFAULT_DAYS, today, error)
    try:
        first = date.fromisoformat(params.get("from") or params.get("to") or "")
        last = date.fromisoformat(params.get("to") or params.get("from") or "")
    except ValueError:
        return _last_days(DEFAULT_DAYS, today, "dates must be written YYYY-MM-DD")
    if first < _EARLIEST or last > _LATEST:
        # Beyond these, the day after `last` or the start of a span would leave datetime's range.
        return _last_days(DEFAULT_DAYS, today, f"dates must be from {_EARLIEST} to {_LATEST}")
    if last < first:
        return _last_days(DEFAULT_DAYS, today, "the first day must not be after the last")
    if (last - first).days + 1 > MAX_DAYS:
        return _last_days(DEFAULT_DAYS, today, f"a range is at most {MAX_DAYS} days")
    return DateRange(first, last)
