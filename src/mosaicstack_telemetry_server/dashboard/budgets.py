"""The budgets page: each budget's burn over its period with the forecast line, and what the
alerts said (their text and delivery state). Read-only: budgets are set through the API or
the CLI, so the page has no form.

A burn chart is a server-rendered SVG like the others (`charts.py`): the cumulative spend per
UTC day so far (solid), the forecast from now to the period's end (dashed, the API's
`forecast_usd_micros`), and the amount (a horizontal line). An instance key sees the budgets
covering its instance and their alerts; an admin key sees all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mosaicstack_telemetry_server.budgets.model import Budget
from mosaicstack_telemetry_server.budgets.spend import budget_status, daily_spend
from mosaicstack_telemetry_server.dashboard.charts import PALETTE, WIDTH, nice_ceiling
from mosaicstack_telemetry_server.dashboard.formatting import format_usd
from mosaicstack_telemetry_server.dashboard.pages import render
from mosaicstack_telemetry_server.storage._budgets import budgets_of
from mosaicstack_telemetry_server.storage.base import ApiKeyRecord, Storage

__all__ = ["BurnChart", "burn_chart", "page"]

# Plot area of a burn chart, in SVG user units.
_LEFT, _TOP, _HEIGHT, _RIGHT = 72, 12, 180, 16
# The latest alerts shown.
_ALERTS = 50


@dataclass(frozen=True)
class BurnChart:
    """One budget's burn: polyline points, the forecast segment, the amount line, the axis."""

    spent_points: str
    forecast: tuple[float, float, float, float]
    amount_y: float
    axis_top: str
    rows: list[tuple[str, str]]  # (day, cumulative spend) for the table beside the chart
    width: int = WIDTH
    height: int = _TOP + _HEIGHT + 24


def burn_chart(status: Budget, days: list[tuple[datetime, int]], now: datetime) -> BurnChart:
    """The chart of a budget's period from its daily spend so far."""
    start, end = status.period_start, status.period_end
    top = nice_ceiling(max(status.amount_usd_micros, status.forecast_usd_micros, 1) * 1.05)
    length = (end - start).total_seconds()

    def x(when: datetime) -> float:
        share = min(max((when - start).total_seconds() / length, 0.0), 1.0)
        return round(_LEFT + share * (WIDTH - _LEFT - _RIGHT), 1)

    def y(micros: float) -> float:
        return round(_TOP + _HEIGHT * (1 - micros / top), 1)

    points, rows, total = [f"{x(start)},{y(0)}"], [], 0
    for day, spent in days:
        total += spent
        points.append(f"{x(min(day.replace(hour=23, minute=59), now))},{y(total)}")
        rows.append((day.date().isoformat(), format_usd(total)))
    here = (x(now), y(status.spent_usd_micros))
    forecast = (*here, x(end), y(status.forecast_usd_micros))
    return BurnChart(
        " ".join(points), forecast, y(status.amount_usd_micros), format_usd(int(top)), rows
    )


def _alert_rows(storage: Storage, names: set[str] | None) -> list[dict[str, Any]]:
    rows = []
    for alert in budgets_of(storage).list_alerts(_ALERTS):
        if names is not None and alert.budget not in names:
            continue
        body = json.loads(alert.body)
        rows.append(
            {
                "when": f"{alert.created_at:%Y-%m-%d %H:%M}",
                "budget": alert.budget,
                "kind": alert.kind,
                "text": body.get("text", ""),
                "state": alert.state.replace("_", " "),
                "attempts": alert.attempts,
                "error": alert.last_error or "",
            }
        )
    return rows


def _context(storage: Storage, key: ApiKeyRecord, now: datetime) -> dict[str, Any]:
    """Every budget the key may see, its status and chart, and their alerts (one thread)."""
    instance = key.instance_id
    records = [
        budget
        for budget in budgets_of(storage).list_budgets()
        if instance is None or budget.instance_id in (None, instance)
    ]
    budgets = []
    for record in records:
        status = budget_status(storage, record, now)
        chart = burn_chart(status, daily_spend(storage, record, status.period_start, now), now)
        budgets.append({"status": status, "chart": chart, "usd": format_usd})
    names = None if instance is None else {record.name for record in records}
    return {"budgets": budgets, "alerts": _alert_rows(storage, names), "colour": PALETTE[0]}


async def page(request: Request, key: ApiKeyRecord, csrf: str) -> Response:
    """The budgets the key may see, with their burn and their alerts."""
    storage = request.app.state.runtime.storage
    context = await run_in_threadpool(_context, storage, key, datetime.now(UTC))
    return render("budgets.html", key=key, csrf=csrf, **context)
