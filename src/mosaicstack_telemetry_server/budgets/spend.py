"""What a budget has spent, and its status: the one place the figure is computed.

Every scope goes through the usage code path (`usage.query_usage`), a project's with the usage
API's `project=` filter, so `spent` equals `GET /v1/usage` for that scope and range by
construction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mosaicstack_telemetry_server.budgets.model import Budget
from mosaicstack_telemetry_server.budgets.periods import Period, forecast, period_bounds
from mosaicstack_telemetry_server.storage import Storage
from mosaicstack_telemetry_server.storage._budgets import BudgetRecord
from mosaicstack_telemetry_server.usage import query_usage

__all__ = ["budget_spend", "budget_status", "daily_spend"]


def budget_spend(storage: Storage, budget: BudgetRecord, start: datetime, end: datetime) -> int:
    """Exact microdollars spent in the budget's scope over `[start, end)`."""
    filters = {} if budget.project is None else {"project": budget.project}
    report = query_usage(
        storage,
        instance_id=budget.instance_id,
        start=start,
        end=end,
        group_by=(),
        filters=filters,
    )
    return report.totals.cost_usd_micros


def budget_status(storage: Storage, budget: BudgetRecord, now: datetime) -> Budget:
    """The budget with its current period's spend, what is left, and the forecast."""
    period: Period = budget.period  # type: ignore[assignment]  # stored from a valid PUT
    start, end = period_bounds(period, now)
    spent = budget_spend(storage, budget, start, end)
    return Budget(
        name=budget.name,
        amount_usd_micros=budget.amount_usd_micros,
        period=period,
        instance_id=budget.instance_id,
        project=budget.project,
        thresholds=list(budget.thresholds),
        webhook_url=budget.webhook_url,
        period_start=start,
        period_end=end,
        spent_usd_micros=spent,
        left_usd_micros=max(budget.amount_usd_micros - spent, 0),
        forecast_usd_micros=forecast(spent, start, end, now),
    )


def daily_spend(
    storage: Storage, budget: BudgetRecord, start: datetime, now: datetime
) -> list[tuple[datetime, int]]:
    """(day start, spend that day) for each UTC day of `[start, now)`: the burn of a period."""
    days = []
    day = start
    while day < now:
        days.append(day)
        day += timedelta(days=1)
    if budget.project is not None:
        return [
            (day, budget_spend(storage, budget, day, min(day + timedelta(days=1), now)))
            for day in days
        ]
    report = query_usage(
        storage, instance_id=budget.instance_id, start=start, end=now, group_by=("day",)
    )
    by_day = {group.key["day"]: group.cost_usd_micros for group in report.groups}
    return [(day, by_day.get(day.date().isoformat(), 0)) for day in days]
