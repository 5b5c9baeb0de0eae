"""A budget's period bounds and forecast: properties over any instant (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mosaicstack_telemetry_server.budgets.periods import PERIODS, Period, forecast, period_bounds

_INSTANTS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(now=_INSTANTS, period=st.sampled_from(PERIODS))
def test_the_period_holds_now_and_the_next_one_starts_where_it_ends(
    now: datetime, period: Period
) -> None:
    start, end = period_bounds(period, now)
    assert start <= now < end
    assert (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0)
    assert period_bounds(period, end)[0] == end
    assert period_bounds(period, start - timedelta(microseconds=1))[1] == start


@given(now=_INSTANTS)
def test_weeks_start_on_monday_and_months_on_the_first(now: datetime) -> None:
    week_start, week_end = period_bounds("week", now)
    assert week_start.weekday() == 0
    assert week_end - week_start == timedelta(days=7)
    month_start, month_end = period_bounds("month", now)
    assert month_start.day == 1
    assert month_end.day == 1
    assert (month_start.year, month_start.month) == (now.year, now.month)
    assert 28 <= (month_end - month_start).days <= 31


def test_an_instant_given_in_another_zone_is_taken_in_utc() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 12, 1, 0, 30, tzinfo=ZoneInfo("Europe/Paris"))  # 23:30 UTC, Nov 30
    assert period_bounds("month", local)[0] == datetime(2026, 11, 1, tzinfo=UTC)
    assert period_bounds("day", local)[0] == datetime(2026, 11, 30, tzinfo=UTC)


@given(
    spent=st.integers(0, 10**12),
    now=_INSTANTS,
    period=st.sampled_from(PERIODS),
)
def test_the_forecast_is_spent_scaled_by_the_period_over_the_elapsed_time(
    spent: int, now: datetime, period: Period
) -> None:
    start, end = period_bounds(period, now)
    predicted = forecast(spent, start, end, now)
    assert predicted >= spent
    elapsed = max((now - start) / timedelta(microseconds=1), 1)
    assert abs(predicted - spent * ((end - start) / timedelta(microseconds=1)) / elapsed) <= max(
        1, predicted * 1e-9
    )
    assert forecast(spent, start, end, end) == spent
    assert forecast(spent, start, end, end + timedelta(days=3)) == spent


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 12, 16, tzinfo=UTC), 2 * 1000 * 31 // 30),  # mid-December, ~half gone
        (datetime(2026, 2, 15, tzinfo=UTC), 2 * 1000),  # 14 of 28 days: exactly twice
    ],
)
def test_the_forecast_at_mid_month(now: datetime, expected: int) -> None:
    start, end = period_bounds("month", now)
    assert forecast(1000, start, end, now) == pytest.approx(expected, abs=1)
