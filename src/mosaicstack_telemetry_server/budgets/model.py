"""What a budget is on the wire: the `PUT` body, and the `Budget` with its status.

Every size has a limit: the name's pattern (the contract's), the amount, the thresholds'
count and range, the URL's length and scheme (http or https only: the server must never be
made to fetch `file://` or anything else), and the secret's length.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mosaicstack_telemetry_server.budgets.periods import Period

__all__ = [
    "MAX_BUDGETS",
    "NAME_PATTERN",
    "Budget",
    "BudgetIn",
    "BudgetList",
]

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# Each budget costs a spend query at every alert check: a bounded number keeps the check short.
MAX_BUDGETS = 200
MAX_THRESHOLDS = 10
# A threshold above 10x the amount would never be reached by a sane budget.
MAX_THRESHOLD = 10.0
MAX_URL_LENGTH = 2048
MAX_SECRET_LENGTH = 256
# $1e9: far above any team's budget, far below where microdollars overflow 64 bits.
MAX_AMOUNT_MICROS = 10**15

Threshold = Annotated[float, Field(gt=0, le=MAX_THRESHOLD)]


class BudgetIn(BaseModel):
    """The body of `PUT /v1/budgets/{name}`."""

    model_config = ConfigDict(extra="forbid")

    amount_usd_micros: int = Field(gt=0, le=MAX_AMOUNT_MICROS, strict=True)
    period: Period
    instance_id: UUID | None = None
    project: str | None = Field(None, min_length=1, max_length=200)
    thresholds: list[Threshold] = Field(
        default_factory=lambda: [0.5, 0.8, 1.0], max_length=MAX_THRESHOLDS
    )
    webhook_url: str | None = Field(None, min_length=1, max_length=MAX_URL_LENGTH)
    webhook_secret: str | None = Field(None, min_length=1, max_length=MAX_SECRET_LENGTH)

    @field_validator("thresholds")
    @classmethod
    def _distinct_sorted(cls, value: list[float]) -> list[float]:
        if len(set(value)) != len(value):
            raise ValueError("thresholds must be distinct")
        return sorted(value)

    @field_validator("webhook_url")
    @classmethod
    def _http_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import httpx

        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError("webhook_url is not a URL") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("webhook_url must be an http or https URL with a host")
        return value


class Budget(BaseModel):
    """A budget as `GET` shows it: never its secret, always its current period's status."""

    name: str
    amount_usd_micros: int
    period: Period
    instance_id: UUID | None
    project: str | None
    thresholds: list[float]
    webhook_url: str | None
    period_start: datetime
    period_end: datetime
    spent_usd_micros: int
    left_usd_micros: int
    forecast_usd_micros: int


class BudgetList(BaseModel):
    """`{"budgets": [Budget, ...]}`, sorted by name."""

    budgets: list[Budget]
