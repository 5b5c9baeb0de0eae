"""Budgets as `GET /v1/budgets/status` shows them (Telemetry API v1, "Budgets")."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

__all__ = ["BudgetStatus", "BudgetStatusResponse"]


class BudgetStatus(BaseModel):
    """One budget and its current period: spent, left and the forecast, in microdollars."""

    # Built on first use, like the prediction models: most imports of the SDK never need it.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    name: str
    amount_usd_micros: int
    period: Literal["day", "week", "month"]
    instance_id: UUID | None = None
    project: str | None = None
    thresholds: list[float] = []
    webhook_url: str | None = None
    period_start: datetime
    period_end: datetime
    spent_usd_micros: int
    left_usd_micros: int
    forecast_usd_micros: int


class BudgetStatusResponse(BaseModel):
    """Body of `GET /v1/budgets/status`."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    budgets: list[BudgetStatus]
