"""Which alerts a budget's status calls for, and what each says: pure functions, no I/O.

An alert is due when `spent` reaches `threshold x amount` (kind `threshold`), or when the
forecast first exceeds the amount (kind `forecast`), in the current period. Its key (budget,
revision, period start, kind, threshold) is what storage makes unique; its `alert_id` is a UUID
derived from that key, so a receiver that gets a repeat (a send retried after a lost answer)
drops it. The revision (`storage/_budgets.py`) changes when the budget is created again or its
terms change: such a budget alerts afresh, under new ids.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from mosaicstack_telemetry_server.budgets.model import Budget

__all__ = [
    "FORECAST_MIN_ELAPSED",
    "DueAlert",
    "alert_body",
    "alert_id",
    "due_alerts",
    "usd",
]

# A forecast from the first minutes of a period is noise (one task at 00:05 projects a month of
# them): forecast alerts wait until this share of the period has passed. Threshold alerts
# never wait.
FORECAST_MIN_ELAPSED = 0.1
_NAMESPACE = uuid.UUID("6f1c0e0a-5b4e-4f0e-9a51-6d6f73616963")


@dataclass(frozen=True, slots=True)
class DueAlert:
    """One alert a status calls for: `threshold` is the fraction, None for a forecast."""

    kind: str
    threshold: float | None

    @property
    def key(self) -> str:
        """The alert's threshold as stored in its unique key."""
        return "forecast" if self.threshold is None else repr(self.threshold)


def due_alerts(status: Budget, now: datetime) -> list[DueAlert]:
    """Every alert the budget's current status has reached (claimed or not yet)."""
    amount, spent = status.amount_usd_micros, status.spent_usd_micros
    due = [
        DueAlert("threshold", threshold)
        for threshold in status.thresholds
        # Integer comparison: a threshold of 0.8 on 50 USD is reached at exactly 40 USD.
        if spent * 1_000_000 >= round(threshold * 1_000_000) * amount
    ]
    length = (status.period_end - status.period_start).total_seconds()
    elapsed = (now - status.period_start).total_seconds()
    if status.forecast_usd_micros > amount and elapsed >= FORECAST_MIN_ELAPSED * length:
        due.append(DueAlert("forecast", None))
    return due


def alert_id(budget: str, revision: str, period_start: datetime, alert: DueAlert) -> str:
    """The UUID of an alert, the same in every process that computes it."""
    # Revision "" is a budget stored before schema 14: its alerts keep the ids they were sent
    # with, so the upgrade re-sends none. A name never holds "|", so the two never collide.
    head = f"{budget}|{revision}" if revision else budget
    return str(uuid.uuid5(_NAMESPACE, f"{head}|{period_start.isoformat()}|{alert.key}"))


def usd(micros: int) -> str:
    """Microdollars as dollars for a person: `$4.10`."""
    return f"${micros / 1_000_000:,.2f}"


def alert_text(status: Budget, alert: DueAlert) -> str:
    """The alert in one sentence (the `text` a Slack incoming webhook shows)."""
    spent, amount = usd(status.spent_usd_micros), usd(status.amount_usd_micros)
    share = status.spent_usd_micros / status.amount_usd_micros
    where = f"this {status.period} (until {status.period_end:%Y-%m-%d %H:%M} UTC)"
    if alert.threshold is None:
        return (
            f"Budget {status.name}: forecast {usd(status.forecast_usd_micros)} exceeds "
            f"{amount} {where}; {spent} spent so far ({share:.0%})."
        )
    return (
        f"Budget {status.name}: {spent} of {amount} spent {where} "
        f"({share:.0%}, threshold {alert.threshold:.0%} reached); "
        f"forecast {usd(status.forecast_usd_micros)}."
    )


def alert_body(status: Budget, key: str, alert: DueAlert) -> str:
    """The webhook's JSON body, as the contract lists it; `key` is the alert's `alert_id`."""
    return json.dumps(
        {
            "alert_id": key,
            "budget": status.name,
            "kind": alert.kind,
            "threshold": alert.threshold,
            "amount_usd_micros": status.amount_usd_micros,
            "spent_usd_micros": status.spent_usd_micros,
            "forecast_usd_micros": status.forecast_usd_micros,
            "period_start": _z(status.period_start),
            "period_end": _z(status.period_end),
            "text": alert_text(status, alert),
        },
        separators=(",", ":"),
    )


def _z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
