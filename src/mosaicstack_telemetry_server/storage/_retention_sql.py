"""The statements of retention (`retention.py`), written once for both backends.

Every delete picks its rows by key in a subquery bounded by `LIMIT`, so one transaction never
deletes more than the caller's chunk. On PostgreSQL the subquery also says `FOR UPDATE SKIP
LOCKED`: several server processes pruning at once delete disjoint rows instead of queueing on
each other's locks (SQLite has one writer at a time, so there the clause is empty).

The statements are assembled from the fixed fragments of this module only; every value is a
bound parameter.
"""

# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from mosaicstack_telemetry_server.storage._rollups import CUBOIDS

__all__ = [
    "PruneDialect",
    "check_limit",
    "count_sql",
    "delete_buckets_sql",
    "events_sql",
    "midnight",
    "rollup_sql",
]


@dataclass(frozen=True, slots=True)
class PruneDialect:
    """What differs between the backends: bound parameters, row locks, an event's UTC day."""

    placeholder: str
    lock: str
    event_day: str


def midnight(day: date) -> datetime:
    """The UTC midnight that starts `day`: every cut is there, so no day is split."""
    return datetime.combine(day, time(), tzinfo=UTC)


def check_limit(limit: int) -> None:
    """Refuse a chunk that could never finish a prune."""
    if limit < 1:
        raise ValueError("limit must be at least 1")


def count_sql(d: PruneDialect) -> str:
    """Events before a cut: (count, days, first day, last day)."""
    return (
        "SELECT count(*), count(DISTINCT d), min(d), max(d) FROM (SELECT "  # nosec B608
        f"{d.event_day} AS d FROM events WHERE timestamp < {d.placeholder}) AS doomed"
    )


def events_sql(d: PruneDialect) -> str:
    """Delete the oldest events before a cut (parameters: cut, limit), by the time index."""
    p = d.placeholder
    return (
        f"DELETE FROM events WHERE id IN (SELECT id FROM events WHERE timestamp < {p} "  # nosec B608
        f"ORDER BY timestamp LIMIT {p}{d.lock})"
    )


def rollup_sql(d: PruneDialect) -> list[tuple[str, tuple[str, ...]]]:
    """(statement, leading parameters) per rollup table; each takes (*leading, day, limit).

    `usage_daily` is deleted one cuboid (`dims`) at a time, so that its primary key (dims,
    day, ...) finds the rows; the token buckets have an index on the day.
    """
    p = d.placeholder
    key = "dims, day, instance_id, v1, v2, v3"
    daily = (
        f"DELETE FROM usage_daily WHERE ({key}) IN (SELECT {key} FROM usage_daily "  # nosec B608
        f"WHERE dims = {p} AND day < {p} LIMIT {p}{d.lock})"
    )
    bucket_key = "instance_id, day, model, kind, bucket"
    buckets = (
        f"DELETE FROM usage_token_buckets WHERE ({bucket_key}) IN (SELECT {bucket_key} "  # nosec B608
        f"FROM usage_token_buckets WHERE day < {p} LIMIT {p}{d.lock})"
    )
    return [*((daily, (",".join(cuboid),)) for cuboid in CUBOIDS), (buckets, ())]


def delete_buckets_sql(d: PruneDialect) -> str:
    """Delete prediction buckets of days before a cut (parameters: day, limit); returns the
    task type of each."""
    p = d.placeholder
    key = "task_type, model, provider, complexity, day"
    return (
        f"DELETE FROM prediction_buckets WHERE ({key}) IN (SELECT {key} FROM prediction_buckets "  # nosec B608
        f"WHERE day < {p} LIMIT {p}{d.lock}) RETURNING task_type"
    )
