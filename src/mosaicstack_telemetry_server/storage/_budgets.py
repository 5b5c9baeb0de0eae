"""Budgets in storage: the budgets table, a project's spend, and the alerts' outbox.

Written once for both backends (`BudgetQueries`); each backend's mixin only says how one
statement runs in a transaction of its own (`_budget_run`) and how a value is bound. The
outbox's UNIQUE key (budget, revision, period start, kind, threshold) is what lets several
server processes evaluate the same budget while only the first INSERT of an alert wins.

A budget's revision is a new random id whenever the budget is created, or replaced with other
terms (amount, period, scope or thresholds): a budget deleted and created again, or given a new
amount, is a new budget whose thresholds alert afresh, while a `PUT` of the same terms keeps the
revision and so the alerts already sent. Budgets and alerts stored before schema 14 have the
revision "" (their alerts keep their ids; see `budgets/alerts.py`).
"""

# ruff: noqa: S608  (the f-strings below only splice in the column lists, constants)
from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from mosaicstack_telemetry_server.storage._common import _as_datetime

__all__ = [
    "AlertRecord",
    "AlertState",
    "BudgetQueries",
    "BudgetRecord",
    "NewAlert",
    "PostgresBudgets",
    "SQLiteBudgets",
    "budgets_of",
]

# pending: to be sent (again) at next_attempt_at; delivered: a 2xx came back; no_webhook: the
# budget has no URL, the alert was only logged and counted; abandoned: retried past the limit,
# or its budget was deleted before it could be sent.
AlertState = Literal["pending", "delivered", "no_webhook", "abandoned"]

_BUDGET_COLUMNS = (
    "name, amount_usd_micros, period, instance_id, project, thresholds, webhook_url, "
    "webhook_secret, updated_at, revision"
)
_ALERT_COLUMNS = (
    "alert_id, budget, period_start, kind, threshold, body, webhook_url, created_at, attempts, "
    "next_attempt_at, state, delivered_at, last_error, revision"
)
# The terms that decide when an alert is due: a change to any of them is a new revision. The
# webhook's URL and secret are not among them (a rotated secret must not re-send every alert).
_SAME_TERMS = " AND ".join(
    f"(budgets.{column} = excluded.{column} "
    f"OR (budgets.{column} IS NULL AND excluded.{column} IS NULL))"
    for column in ("amount_usd_micros", "period", "instance_id", "project", "thresholds")
)


@dataclass(frozen=True, slots=True)
class BudgetRecord:
    """A budget as stored; the webhook secret stays out of repr (and out of every answer).

    `revision` is read back from storage; `put_budget` ignores the one it is given.
    """

    name: str
    amount_usd_micros: int
    period: str
    instance_id: UUID | None
    project: str | None
    thresholds: tuple[float, ...]
    webhook_url: str | None
    webhook_secret: str | None = field(default=None, repr=False)
    updated_at: datetime | None = None
    revision: str = ""


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert to claim: its key, and the JSON body its webhook will receive."""

    alert_id: str
    budget: str
    revision: str
    period_start: datetime
    kind: str
    threshold: str
    body: str
    webhook_url: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert as stored in the outbox, with its delivery state."""

    alert_id: str
    budget: str
    period_start: datetime
    kind: str
    threshold: str
    body: str
    webhook_url: str | None
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    state: str
    delivered_at: datetime | None
    last_error: str | None
    revision: str = ""


class BudgetQueries:
    """The budget methods of `SQLiteStorage` and `PostgresStorage`."""

    _placeholder: ClassVar[str]

    @staticmethod
    def _bind(value: Any) -> Any:
        raise NotImplementedError  # pragma: no cover - provided by each backend

    def _budget_run(self, sql: str, params: Sequence[Any]) -> tuple[int, list[Any]]:
        raise NotImplementedError  # pragma: no cover - provided by each backend mixin

    def _sql(self, text: str) -> str:
        return text.replace("?", self._placeholder)

    def _run(self, text: str, *params: Any) -> tuple[int, list[Any]]:
        return self._budget_run(self._sql(text), [self._bind(value) for value in params])

    def put_budget(self, budget: BudgetRecord) -> None:
        """Create or replace a budget by name; a new revision unless its terms are the same."""
        # One statement: two processes replacing the same budget cannot both keep a revision
        # whose terms changed. Every right-hand side reads the row as it was.
        self._run(
            f"INSERT INTO budgets ({_BUDGET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "  # nosec B608
            f"ON CONFLICT (name) DO UPDATE SET revision = CASE WHEN {_SAME_TERMS} "
            "THEN budgets.revision ELSE excluded.revision END, "
            "amount_usd_micros = excluded.amount_usd_micros, "
            "period = excluded.period, instance_id = excluded.instance_id, "
            "project = excluded.project, thresholds = excluded.thresholds, "
            "webhook_url = excluded.webhook_url, webhook_secret = excluded.webhook_secret, "
            "updated_at = excluded.updated_at",
            budget.name,
            budget.amount_usd_micros,
            budget.period,
            budget.instance_id,
            budget.project,
            json.dumps(list(budget.thresholds)),
            budget.webhook_url,
            budget.webhook_secret,
            budget.updated_at,
            uuid.uuid4().hex,
        )

    def list_budgets(self) -> list[BudgetRecord]:
        """Every budget, sorted by name."""
        _, rows = self._run(f"SELECT {_BUDGET_COLUMNS} FROM budgets ORDER BY name")  # nosec B608
        return [_budget(row) for row in rows]

    def get_budget(self, name: str) -> BudgetRecord | None:
        """The budget of that name, if any."""
        _, rows = self._run(f"SELECT {_BUDGET_COLUMNS} FROM budgets WHERE name = ?", name)  # nosec B608
        return _budget(rows[0]) if rows else None

    def delete_budget(self, name: str) -> bool:
        """Delete a budget; False if there was none of that name."""
        count, _ = self._run("DELETE FROM budgets WHERE name = ?", name)
        return count > 0

    def claim_alert(self, alert: NewAlert) -> bool:
        """Store an alert unless one with its key exists; True for the one caller that won."""
        state = "pending" if alert.webhook_url else "no_webhook"
        count, _ = self._run(
            f"INSERT INTO budget_alerts ({_ALERT_COLUMNS}) "  # nosec B608
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, NULL, NULL, ?) ON CONFLICT DO NOTHING",
            alert.alert_id,
            alert.budget,
            alert.period_start,
            alert.kind,
            alert.threshold,
            alert.body,
            alert.webhook_url,
            alert.created_at,
            alert.created_at,
            state,
            alert.revision,
        )
        return count > 0

    def due_alerts(self, now: datetime, limit: int) -> list[AlertRecord]:
        """Pending alerts whose next attempt is due, oldest first."""
        _, rows = self._run(
            f"SELECT {_ALERT_COLUMNS} FROM budget_alerts WHERE state = 'pending' "  # nosec B608
            "AND next_attempt_at <= ? ORDER BY next_attempt_at, alert_id LIMIT ?",
            now,
            limit,
        )
        return [_alert(row) for row in rows]

    def next_alert_due(self) -> datetime | None:
        """When the earliest pending alert is due; None when none is pending."""
        _, rows = self._run(
            "SELECT MIN(next_attempt_at) FROM budget_alerts WHERE state = 'pending'"
        )
        return None if rows[0][0] is None else _as_datetime(rows[0][0])

    def take_alert(self, alert: AlertRecord, now: datetime, hold_until: datetime) -> bool:
        """Take a due alert for one attempt: the first process to move it on wins.

        The attempt count is the compare-and-swap: a process that read the same row loses,
        and the row stays held until `hold_until` should its sender die mid-attempt.
        """
        count, _ = self._run(
            "UPDATE budget_alerts SET attempts = attempts + 1, next_attempt_at = ? "
            "WHERE alert_id = ? AND attempts = ? AND state = 'pending' AND next_attempt_at <= ?",
            hold_until,
            alert.alert_id,
            alert.attempts,
            now,
        )
        return count > 0

    def finish_attempt(
        self,
        alert_id: str,
        *,
        state: AlertState,
        next_attempt_at: datetime,
        delivered_at: datetime | None,
        error: str | None,
    ) -> None:
        """Record how an attempt ended: delivered, to retry at `next_attempt_at`, or given up."""
        self._run(
            "UPDATE budget_alerts SET state = ?, next_attempt_at = ?, delivered_at = ?, "
            "last_error = ? WHERE alert_id = ?",
            state,
            next_attempt_at,
            delivered_at,
            error,
            alert_id,
        )

    def list_alerts(self, limit: int) -> list[AlertRecord]:
        """The latest alerts, newest first (what the dashboard shows)."""
        _, rows = self._run(
            f"SELECT {_ALERT_COLUMNS} FROM budget_alerts "  # nosec B608
            "ORDER BY created_at DESC, alert_id LIMIT ?",
            limit,
        )
        return [_alert(row) for row in rows]


class SQLiteBudgets(BudgetQueries):
    """Budget statements on SQLite: one IMMEDIATE transaction each."""

    _placeholder = "?"

    def _transaction(self, *, write: bool) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStorage

    def _budget_run(self, sql: str, params: Sequence[Any]) -> tuple[int, list[Any]]:
        with self._transaction(write=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.rowcount, cursor.fetchall()


class PostgresBudgets(BudgetQueries):
    """Budget statements on PostgreSQL: one pooled transaction each."""

    _placeholder = "%s"

    def _transaction(self, timeout: float | None = None) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError  # pragma: no cover - provided by PostgresStorage

    def _budget_run(self, sql: str, params: Sequence[Any]) -> tuple[int, list[Any]]:
        with self._transaction() as conn:
            cursor = conn.execute(sql, params)
            rows = cursor.fetchall() if cursor.description is not None else []
            return cursor.rowcount, rows


def _budget(row: Sequence[Any]) -> BudgetRecord:
    instance = row[3]
    return BudgetRecord(
        name=row[0],
        amount_usd_micros=int(row[1]),
        period=row[2],
        instance_id=None if instance is None else UUID(str(instance)),
        project=row[4],
        thresholds=tuple(float(value) for value in json.loads(row[5])),
        webhook_url=row[6],
        webhook_secret=row[7],
        updated_at=_as_datetime(row[8]),
        revision=row[9],
    )


def _alert(row: Sequence[Any]) -> AlertRecord:
    return AlertRecord(
        alert_id=row[0],
        budget=row[1],
        period_start=_as_datetime(row[2]),
        kind=row[3],
        threshold=row[4],
        body=row[5],
        webhook_url=row[6],
        created_at=_as_datetime(row[7]),
        attempts=int(row[8]),
        next_attempt_at=_as_datetime(row[9]),
        state=row[10],
        delivered_at=None if row[11] is None else _as_datetime(row[11]),
        last_error=row[12],
        revision=row[13],
    )


def budgets_of(storage: object) -> BudgetQueries:
    """The budget queries of a storage backend (both backends have them)."""
    if not isinstance(storage, BudgetQueries):
        raise TypeError(f"{type(storage).__name__} stores no budgets")
    return storage
