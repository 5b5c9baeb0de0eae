"""The SQL of usage sums and token histograms, shared by both backends, free of I/O.

A range `[start, end)` is cut into whole UTC days, read from the daily rollups (kept by the
trigger of migration 0003), and the partial days at its edges, read from the events by their
timestamp index. Both parts are summed by one query, so an answer is one consistent snapshot.

Only identifiers from `USAGE_DIMENSIONS` are ever written into the SQL; every value is a bound
parameter.
"""

# Identifiers come only from USAGE_DIMENSIONS and the Dialect constants; values are bound.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from mosaicstack_telemetry_server.storage._common import utc
from mosaicstack_telemetry_server.storage.base import USAGE_DIMENSIONS, TokenBucketRow, UsageRow

__all__ = [
    "Dialect",
    "RangePlan",
    "bucket_rows",
    "plan_range",
    "token_buckets_sql",
    "usage_rows",
    "usage_sql",
]


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the backends' SQL."""

    placeholder: str  # "?" or "%s"
    event_day: str  # the UTC day of an event's timestamp, comparable with usage_daily.day
    successes: str  # count of events with outcome "success"
    gate_passes: str  # count of events that passed their quality gates
    input_bucket: str  # the token bucket of actual_input_tokens (see migration 0003)
    output_bucket: str


@dataclass(frozen=True, slots=True)
class RangePlan:
    """Whole days `[first_day, end_day)` from rollups (None: none) and event spans."""

    days: tuple[date, date] | None
    spans: tuple[tuple[datetime, datetime], ...]


def plan_range(start: datetime, end: datetime) -> RangePlan:
    """Cut `[start, end)` into whole UTC days and the partial days at its edges."""
    start, end = utc(start), utc(end)
    if start >= end:
        return RangePlan(None, ())
    first = start.date() if start.time() == time(0) else start.date() + timedelta(days=1)
    last = end.date()  # days before it are whole when they end before `end`
    if first >= last:
        return RangePlan(None, ((start, end),))
    spans = []
    first_at = datetime.combine(first, time(0), UTC)
    last_at = datetime.combine(last, time(0), UTC)
    if start < first_at:
        spans.append((start, first_at))
    if last_at < end:
        spans.append((last_at, end))
    return RangePlan((first, last), tuple(spans))


def _filters(dialect: Dialect, column: str, instance_id: UUID | None) -> tuple[str, list[str]]:
    p = dialect.placeholder
    where = f"{column} >= {p} AND {column} < {p}"
    extra = [] if instance_id is None else [f"instance_id = {p}"]
    return " AND ".join([where, *extra]), extra


def usage_sql(
    dialect: Dialect,
    plan: RangePlan,
    dimensions: Sequence[str],
    instance_id: UUID | None,
    convert: Any,
) -> tuple[str, list[Any]]:
    """The one query of `sum_usage`, and its parameters. `convert` maps each bound value
    (datetime, date, UUID) to what the driver takes."""
    unknown = [name for name in dimensions if name not in USAGE_DIMENSIONS]
    if unknown or len(set(dimensions)) != len(dimensions):
        raise ValueError(f"usage dimensions must be distinct names of {USAGE_DIMENSIONS}")
    parts: list[str] = []
    params: list[Any] = []
    group = ", ".join(dimensions)
    group_by = f" GROUP BY {group}" if dimensions else ""
    if plan.days is not None:
        where, extra = _filters(dialect, "day", instance_id)
        select = ", ".join(
            [
                *dimensions,
                "tasks",
                "input_tokens",
                "output_tokens",
                "cost_usd_micros",
                "duration_ms",
                "successes",
                "gate_passes",
            ]
        )
        parts.append(f"SELECT {select} FROM usage_daily WHERE {where}")  # nosec B608
        params += [convert(plan.days[0]), convert(plan.days[1])]
        params += [convert(instance_id)] if extra else []
    for span_start, span_end in plan.spans:
        where, extra = _filters(dialect, "timestamp", instance_id)
        columns = [f"{dialect.event_day} AS day" if name == "day" else name for name in dimensions]
        sums = [
            "count(*) AS tasks",
            "sum(actual_input_tokens) AS input_tokens",
            "sum(actual_output_tokens) AS output_tokens",
            "sum(actual_cost_usd_micros) AS cost_usd_micros",
            "sum(task_duration_ms) AS duration_ms",
            f"{dialect.successes} AS successes",
            f"{dialect.gate_passes} AS gate_passes",
        ]
        # Identifiers only from USAGE_DIMENSIONS (checked above); values are bound.
        parts.append(
            f"SELECT {', '.join([*columns, *sums])} FROM events WHERE {where}{group_by}"  # nosec B608
        )
        params += [convert(span_start), convert(span_end)]
        params += [convert(instance_id)] if extra else []
    if not parts:
        return "", []
    outer = ", ".join(
        [
            *dimensions,
            "sum(tasks)",
            "sum(input_tokens)",
            "sum(output_tokens)",
            "sum(cost_usd_micros)",
            "sum(duration_ms)",
            "sum(successes)",
            "sum(gate_passes)",
        ]
    )
    union = " UNION ALL ".join(parts)
    # Columns are named in each part (SQLite takes no column list after a subquery's alias).
    sql = f"SELECT {outer} FROM ({union}) AS pieces{group_by}"  # nosec B608
    return sql, params


def usage_rows(rows: Sequence[Sequence[Any]], width: int) -> list[UsageRow]:
    """UsageRows from the query's rows (`width` dimensions first); empty groups dropped."""
    found = []
    for row in rows:
        sums = [int(value or 0) for value in row[width:]]
        if sums[0] > 0:
            found.append(UsageRow(tuple(str(value) for value in row[:width]), *sums))
    return found


def token_buckets_sql(
    dialect: Dialect, plan: RangePlan, instance_id: UUID | None, convert: Any
) -> tuple[str, list[Any]]:
    """The one query of `token_buckets`, and its parameters."""
    parts: list[str] = []
    params: list[Any] = []
    if plan.days is not None:
        where, extra = _filters(dialect, "day", instance_id)
        parts.append(
            f"SELECT model, kind, bucket, count FROM usage_token_buckets WHERE {where}"  # nosec B608
        )
        params += [convert(plan.days[0]), convert(plan.days[1])]
        params += [convert(instance_id)] if extra else []
    for span_start, span_end in plan.spans:
        where, extra = _filters(dialect, "timestamp", instance_id)
        for kind, bucket in (("input", dialect.input_bucket), ("output", dialect.output_bucket)):
            parts.append(
                f"SELECT model, '{kind}' AS kind, {bucket} AS bucket, count(*) AS count "  # nosec B608
                f"FROM events "
                f"WHERE {where} GROUP BY model, {bucket}"
            )
            params += [convert(span_start), convert(span_end)]
            params += [convert(instance_id)] if extra else []
    if not parts:
        return "", []
    union = " UNION ALL ".join(parts)
    sql = (
        f"SELECT model, kind, bucket, sum(count) FROM ({union}) AS pieces "  # nosec B608
        "GROUP BY model, kind, bucket"
    )
    return sql, params


def bucket_rows(rows: Sequence[Sequence[Any]]) -> list[TokenBucketRow]:
    """TokenBucketRows from the query's rows."""
    return [TokenBucketRow(str(m), str(k), int(b), int(c)) for m, k, b, c in rows]
