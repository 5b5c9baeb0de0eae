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
# http or https, an ASCII host (an international one in its punycode form), an optional port
# in range, then printable ASCII: what the sender may POST to, stated in the OpenAPI document.
URL_PATTERN = (
    r"^https?://[A-Za-z0-9.-]+"
    r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?"
    r"([/?#][!-~]*)?$"
)
MAX_SECRET_LENGTH = 256
# $1e9: far above any team's budget, far below where microdollars overflow 64 bits.
MAX_AMOUNT_MICROS = 10**15

# At least 0.1% of the amount: a threshold is compared in millionths, and a vanishing one would
# fire at no spend at all.
MIN_THRESHOLD = 0.001
Threshold = Annotated[float, Field(ge=MIN_THRESHOLD, le=MAX_THRESHOLD)]


class BudgetIn(BaseModel):
    """The body of `PUT /v1/budgets/{name}`."""

    model_config = ConfigDict(extra="forbid")

    amount_usd_micros: int = Field(gt=0, le=MAX_AMOUNT_MICROS, strict=True)
    period: Period
    instance_id: UUID | None = None
    project: str | None = Field(None, min_length=1, max_length=200)
    thresholds: list[Threshold] = Field(
        default_factory=lambda: [0.5, 0.8, 1.0],
        max_length=MAX_THRESHOLDS,
        json_schema_extra={"uniqueItems": True},
    )
    webhook_url: str | None = Field(
        None, min_length=1, max_length=MAX_URL_LENGTH, pattern=URL_PATTERN
    )
    webhook_secret: str | None = Field(None, min_length=1, max_length=MAX_SECRET_LENGTH)

    @field_validator("amount_usd_micros", mode="before")
    @classmethod
    def _whole_number(cls, value: object) -> object:
        # JSON has one number type: 301.0 is the integer 301 (as JSON Schema says), 1.5 is not
        # an amount of microdollars, and neither a string nor a boolean is a number.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @field_validator("thresholds")
    @classmethod
    def _distinct_sorted(cls, value: list[float]) -> list[float]:
        if len(set(value)) != len(value):
            raise ValueError("thresholds must be distinct")
        return sorted(value)

    # Before the pattern: its message names the rule rather than quoting the regular expression.
    @field_validator("webhook_url", mode="before")
    @classmethod
    def _http_only(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
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
