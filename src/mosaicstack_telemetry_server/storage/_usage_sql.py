"""The SQL of usage: reading sums and token histograms back; shared by both backends.

A range `[start, end)` is cut into whole UTC days, read from the rollups (`_rollups.py`) plus
the events after the fold's cursor, and the partial days at its edges, read from the events by
their time index (on SQLite an index on the day: the days are asked for, then the instants).
All parts are summed by one query, so an answer is one consistent snapshot: an event is either
after the cursor or folded in it, never both.

Filters (`project=` and the like) select one cuboid too: the one of the dimensions grouped by
and filtered on, read with the filter's value bound on its slot. When those are more than
three (three `group_by` names and a filter), no cuboid holds them and the whole range is read
from the events (`plan_range(..., rollups=False)`): exact, at the cost of reading every event
of the range (at most 366 days), by the time index.

An attribution missing from an event is NULL in the events and "" in its rollup slot
(`_rollups.py`): the rollup part reads it back as NULL, so both parts group it together.

Only identifiers from `USAGE_DIMENSIONS` and `CATEGORICAL` are ever written into the SQL; every
value is a bound parameter.
"""

# Identifiers come only from fixed tuples and the Dialect constants; values are bound.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from mosaicstack_telemetry_server.storage._common import utc
from mosaicstack_telemetry_server.storage._rollups import (
    ALL,
    BLOCK_DAYS,
    CATEGORICAL,
    MAX_CATEGORICAL,
    NULLABLE,
    SUM_NAMES,
    block_start,
    cuboid_for,
)
from mosaicstack_telemetry_server.storage.base import USAGE_DIMENSIONS, TokenBucketRow, UsageRow

__all__ = [
    "Dialect",
    "RangePlan",
    "block_split",
    "export_sql",
    "plan_range",
    "rollups_serve",
    "time_range",
    "token_bucket_rows",
    "token_buckets_sql",
    "usage_rows",
    "usage_sql",
]


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the backends' SQL."""

    placeholder: str  # "?" or "%s"
    event_day: str  # the UTC day of an event's timestamp, comparable with the rollups' day
    event_instance: str  # an event's instance_id as the rollups' text
    # How the edges' scans filter events by instance: on SQLite `+instance_id`, which keeps
    # the planner on the day index (two days of events) rather than the instance's half of
    # the unique key (every event the instance ever sent).
    instance_filter: str
    successes: str  # count of events with outcome "success"
    gate_passes: str  # count of events that passed their quality gates
    # `token_sketch.bucket_of` of the column named by "{}", in SQL: the rollups and the
    # edges' events are bucketed inside their statements (on SQLite by `bucket_of` itself,
    # registered on each connection as `token_bucket`).
    log_bucket: str
    # The first day of the BLOCK_DAYS block (`_rollups.py`) of the day "{}", in SQL.
    block_of: str
    # The expression of the events' index on the UTC day, spelled as the index is (SQLite,
    # schema 13), which the edges' scans bound with the days of their span so that the index
    # finds them; None where the index is on the instant itself (PostgreSQL).
    day_index: str | None
    # The events after the usage cursor (not yet folded into the rollups: what arrived since
    # the last fold, while the background fold keeps up), as a table expression named
    # `events`: planned on its own, so that they are looked up by id whatever the range's
    # time condition outside it.
    unfolded_events: str
    # The p10/p50/p90 aggregate of "{column}" at "{quantiles}" (a list of fractions), one
    # array per group: PostgreSQL's percentile_cont. None where there is none (SQLite): the
    # sample is then fetched and interpolated in Python (`_project_tokens.py`).
    percentile_cont: str | None = None


@dataclass(frozen=True, slots=True)
class RangePlan:
    """Whole days `[first_day, end_day)` from rollups (None: none) and event spans."""

    days: tuple[date, date] | None
    spans: tuple[tuple[datetime, datetime], ...]


def rollups_serve(dimensions: Sequence[str], filters: Mapping[str, str]) -> bool:
    """Whether one cuboid holds the sums by `dimensions` filtered by `filters`."""
    categorical = {name for name in (*dimensions, *filters) if name in CATEGORICAL}
    return len(categorical) <= MAX_CATEGORICAL


def plan_range(start: datetime, end: datetime, *, rollups: bool = True) -> RangePlan:
    """Cut `[start, end)` into whole UTC days and the partial days at its edges (without
    `rollups`: one span, the whole range read from the events)."""
    start, end = utc(start), utc(end)
    if start >= end:
        return RangePlan(None, ())
    if not rollups:
        return RangePlan(None, ((start, end),))
    first = start.date() if start.time() == time(0) else start.date() + timedelta(days=1)
    last = end.date()  # the days before it are whole
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


def _rollup_part(
    dialect: Dialect,
    days: tuple[date, date],
    dimensions: Sequence[str],
    instance: str | None,
    filters: Mapping[str, str],
) -> tuple[str, list[Any]]:
    p = dialect.placeholder
    cuboid = cuboid_for([name for name in CATEGORICAL if name in dimensions or name in filters])
    where = f"dims = {p} AND day >= {p} AND day < {p} AND instance_id "
    params: list[Any] = [",".join(cuboid), days[0], days[1]]  # dims, then the days
    if instance is not None:
        where += f"= {p}"
        params.append(instance)
    elif "instance_id" in dimensions:
        where += f"<> {p}"  # the instances' own rows
        params.append(ALL)
    else:
        where += f"= {p}"
        params.append(ALL)
    slots = {name: f"v{index + 1}" for index, name in enumerate(cuboid)}
    for name, value in filters.items():
        where += f" AND {slots[name]} = {p}"
        params.append(value)
    columns = [_slot_column(slots, name) for name in dimensions]
    select = ", ".join([*columns, *SUM_NAMES])
    return f"SELECT {select} FROM usage_daily WHERE {where}", params  # nosec B608


def _slot_column(slots: Mapping[str, str], name: str) -> str:
    """A dimension as a rollup part selects it: its slot, "" read back as NULL if nullable."""
    if name not in slots:
        return name
    if name in NULLABLE:
        return f"NULLIF({slots[name]}, '') AS {name}"
    return f"{slots[name]} AS {name}"


def time_range(
    dialect: Dialect,
    start: datetime,
    end: datetime,
    convert: Callable[[Any], Any],
    *,
    indexed: bool = True,
) -> tuple[str, list[Any]]:
    """The condition `start <= timestamp < end` on the events table and its parameters, with
    (when `indexed`) the bounds on the day that let SQLite's day index find the events."""
    p = dialect.placeholder
    where = f"timestamp >= {p} AND timestamp < {p}"
    params = [convert(start), convert(end)]
    if indexed and dialect.day_index is not None:
        # The range's first and last day (`end` is excluded, so its day only if after 0h).
        where += f" AND {dialect.day_index} BETWEEN {p} AND {p}"
        last = utc(end) - timedelta(microseconds=1)
        params += [utc(start).date().isoformat(), last.date().isoformat()]
    return where, params


def _event_parts(
    dialect: Dialect,
    plan: RangePlan,
    instance_id: UUID | None,
    convert: Callable[[Any], Any],
    filters: Mapping[str, str] | None = None,
) -> list[tuple[str, str, list[Any]]]:
    """(table expression, condition, its parameters) for each part of a range read from the
    events: the partial days at its edges (every event), and the whole days' unfolded events."""
    p = dialect.placeholder
    spans = [("events", span) for span in plan.spans]
    if plan.days is not None:
        whole = tuple(datetime.combine(day, time(0), UTC) for day in plan.days)
        spans.append((dialect.unfolded_events, (whole[0], whole[1])))
    parts = []
    for source, (start, end) in spans:
        where, params = time_range(dialect, start, end, convert, indexed=source == "events")
        if instance_id is not None:
            where += f" AND {dialect.instance_filter} = {p}"
            params.append(convert(instance_id))
        for name, value in (filters or {}).items():
            where += f" AND {name} = {p}"
            params.append(value)
        parts.append((source, where, params))
    return parts


def usage_sql(
    dialect: Dialect,
    plan: RangePlan,
    dimensions: Sequence[str],
    instance_id: UUID | None,
    convert: Callable[[Any], Any],
    filters: Mapping[str, str] | None = None,
) -> tuple[str, list[Any]]:
    """The one query of `sum_usage`, and its parameters. `convert` maps each bound time or
    UUID to what the driver takes for the events table. A plan with whole days needs
    `rollups_serve(dimensions, filters)`."""
    unknown = [name for name in dimensions if name not in USAGE_DIMENSIONS]
    if unknown or len(set(dimensions)) != len(dimensions):
        raise ValueError(f"usage dimensions must be distinct names of {USAGE_DIMENSIONS}")
    filters = dict(filters or {})
    if any(name not in CATEGORICAL for name in filters):
        raise ValueError(f"usage filters must be names of {CATEGORICAL}")
    parts: list[str] = []
    params: list[Any] = []
    group_by = f" GROUP BY {', '.join(dimensions)}" if dimensions else ""
    instance = None if instance_id is None else str(instance_id)
    if plan.days is not None:
        sql, values = _rollup_part(dialect, plan.days, dimensions, instance, filters)
        parts.append(sql)
        params += [convert(value) for value in values]
    for source, where, values in _event_parts(dialect, plan, instance_id, convert, filters):
        params += values
        renamed = {"day": dialect.event_day, "instance_id": dialect.event_instance}
        columns = [f"{renamed[n]} AS {n}" if n in renamed else n for n in dimensions]
        sums = [
            "count(*) AS tasks",
            "sum(actual_input_tokens) AS input_tokens",
            "sum(actual_output_tokens) AS output_tokens",
            "sum(actual_cost_usd_micros) AS cost_usd_micros",
            "sum(task_duration_ms) AS duration_ms",
            f"{dialect.successes} AS successes",
            f"{dialect.gate_passes} AS gate_passes",
            "sum(cache_read_tokens) AS cache_read_tokens",
            "sum(cache_write_tokens) AS cache_write_tokens",
            "sum(reasoning_tokens) AS reasoning_tokens",
        ]
        select = ", ".join([*columns, *sums])
        parts.append(f"SELECT {select} FROM {source} WHERE {where}{group_by}")  # nosec B608
    if not parts:
        return "", []
    outer = ", ".join([*dimensions, *(f"sum({name})" for name in SUM_NAMES)])
    union = " UNION ALL ".join(parts)
    # Columns are named in each part (SQLite takes no column list after a subquery's alias).
    return f"SELECT {outer} FROM ({union}) AS pieces{group_by}", params  # nosec B608


def usage_rows(rows: Sequence[Sequence[Any]], width: int) -> list[UsageRow]:
    """UsageRows from the query's rows (`width` dimensions first); empty groups dropped."""
    found = []
    for row in rows:
        sums = [int(value or 0) for value in row[width:]]
        if sums[0] > 0:
            key = tuple(None if value is None else str(value) for value in row[:width])
            found.append(UsageRow(key, *sums))
    return found


def block_split(
    days: tuple[date, date],
) -> tuple[tuple[date, date] | None, list[tuple[date, date]]]:
    """Cut whole days `[first, end)` into the whole blocks inside them (their first block's
    start, the end of their last; None: none) and the days left at either side."""
    first, end = days
    blocks_from, blocks_to = block_start(first), block_start(end)
    if blocks_from < first:
        blocks_from += timedelta(days=BLOCK_DAYS)
    if blocks_from >= blocks_to:
        return None, [days]
    sides = [(first, blocks_from), (blocks_to, end)]
    return (blocks_from, blocks_to), [(a, b) for a, b in sides if a < b]


def token_buckets_sql(
    dialect: Dialect, plan: RangePlan, instance_id: UUID | None, convert: Callable[[Any], Any]
) -> tuple[str, list[Any]]:
    """The one query of `token_buckets` (model, kind, bucket, count; sorted), and its
    parameters: the stored blocks and buckets of the whole days plus the edges' events,
    bucketed in SQL."""
    p = dialect.placeholder
    parts: list[str] = []
    params: list[Any] = []
    if plan.days is not None:
        owner = convert(ALL if instance_id is None else str(instance_id))
        blocks, sides = block_split(plan.days)
        stored = [("usage_token_blocks", "block_start", blocks)] if blocks else []
        stored += [("usage_token_buckets", "day", side) for side in sides]
        for table, period, (first, end) in stored:
            parts.append(
                f"SELECT model, kind, bucket, count FROM {table} "  # nosec B608
                f"WHERE instance_id = {p} AND {period} >= {p} AND {period} < {p}"
            )
            params += [owner, convert(first), convert(end)]
    for source, where, span in _event_parts(dialect, plan, instance_id, convert):
        for kind in ("input", "output"):
            bucket = dialect.log_bucket.format(f"actual_{kind}_tokens")
            parts.append(
                f"SELECT model, '{kind}' AS kind, {bucket} AS bucket, 1 AS count "  # nosec B608
                f"FROM {source} WHERE {where}"
            )
            params += span
    if not parts:
        return "", []
    union = " UNION ALL ".join(parts)
    return (
        "SELECT model, kind, bucket, sum(count) FROM "  # nosec B608
        f"({union}) AS pieces "
        "GROUP BY model, kind, bucket ORDER BY model, kind, bucket",
        params,
    )


def token_bucket_rows(rows: Sequence[Sequence[Any]]) -> list[TokenBucketRow]:
    """TokenBucketRows from the query's rows."""
    return [
        TokenBucketRow(str(model), str(kind), int(bucket), int(count))
        for model, kind, bucket, count in rows
    ]


_EXPORT_SELECT = (
    "SELECT id, instance_id, event_id, schema_version, timestamp, task_duration_ms, task_type, "
    "complexity, harness, model, provider, estimated_input_tokens, estimated_output_tokens, "
    "actual_input_tokens, actual_output_tokens, estimated_cost_usd_micros, "
    "actual_cost_usd_micros, quality_gate_passed, quality_gates_run, quality_gates_failed, "
    "context_compactions, context_rotations, context_utilization_final, outcome, retry_count, "
    "language, repo_size_category, project, branch, user_name, cache_read_tokens, "
    "cache_write_tokens, reasoning_tokens FROM events"
)


def export_sql(
    dialect: Dialect,
    bound: Callable[[Any], Any],
    *,
    instance_id: UUID | None,
    start: datetime | None,
    end: datetime | None,
    after: int,
    limit: int,
) -> tuple[str, list[Any]]:
    """One page of `export_events`: the row id, then the event's columns, in id order.

    Keyset pagination: rows with an id above `after`. `bound` turns a value into the backend's
    parameter (text on SQLite). Fixed fragments only; every value is bound.
    """
    p = dialect.placeholder
    conditions = [f"id > {p}"]
    params: list[Any] = [after]
    for condition, value in (
        (f"instance_id = {p}", instance_id),
        (f"timestamp >= {p}", start),
        (f"timestamp < {p}", end),
    ):
        if value is not None:
            conditions.append(condition)
            params.append(bound(value))
    sql = f"{_EXPORT_SELECT} WHERE {' AND '.join(conditions)} ORDER BY id LIMIT {p}"
    return sql, [*params, limit]
