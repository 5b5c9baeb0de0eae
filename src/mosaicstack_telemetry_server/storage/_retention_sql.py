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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from mosaicstack_telemetry_server.storage._rollups import BLOCK_DAYS, CUBOIDS, block_start

__all__ = [
    "PruneDialect",
    "RollupPrune",
    "check_limit",
    "count_sql",
    "delete_buckets_sql",
    "events_sql",
    "midnight",
    "old_blocks_sql",
    "rebuild_block_sql",
    "rollup_sql",
    "straddled_days_sql",
]


@dataclass(frozen=True, slots=True)
class PruneDialect:
    """What differs between the backends: bound parameters, row locks, an event's UTC day."""

    placeholder: str
    lock: str
    event_day: str
    # What the events' time index is on (SQLite: the UTC day, schema 13; PostgreSQL: the
    # timestamp): a cut at a UTC midnight compares alike with either, bound as the backend's
    # retention binds it (the day's ISO text; the midnight).
    time_key: str


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
        f"{d.event_day} AS d FROM events WHERE {d.time_key} < {d.placeholder}) AS doomed"
    )


def events_sql(d: PruneDialect) -> str:
    """Delete the oldest events before a cut (parameters: cut, limit), by the time index."""
    p = d.placeholder
    return (
        f"DELETE FROM events WHERE id IN (SELECT id FROM events WHERE {d.time_key} < {p} "  # nosec B608
        f"ORDER BY {d.time_key} LIMIT {p}{d.lock})"
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


def straddled_days_sql(d: PruneDialect) -> str:
    """Delete token bucket rows of days in `[block start, cut)` (parameters: the block's start,
    cut, limit): the days pruned from the block that straddles the cut."""
    p = d.placeholder
    key = "instance_id, day, model, kind, bucket"
    return (
        f"DELETE FROM usage_token_buckets WHERE ({key}) IN (SELECT {key} "  # nosec B608
        f"FROM usage_token_buckets WHERE day >= {p} AND day < {p} LIMIT {p}{d.lock})"
    )


def rebuild_block_sql(d: PruneDialect) -> tuple[str, str]:
    """Rebuild the block straddling a cut from the daily rows that remain: delete it
    (parameter: its start), then sum its days from the cut on (parameters: its start, the
    cut, its end). Bounded: at most BLOCK_DAYS - 1 days of rows."""
    p = d.placeholder
    key = "instance_id, model, kind, bucket"
    return (
        f"DELETE FROM usage_token_blocks WHERE block_start = {p}",  # nosec B608
        "INSERT INTO usage_token_blocks (instance_id, block_start, model, kind, bucket, count) "
        f"SELECT instance_id, {p}, model, kind, bucket, sum(count) FROM usage_token_buckets "  # nosec B608
        f"WHERE day >= {p} AND day < {p} GROUP BY {key} ORDER BY {key}",
    )


def old_blocks_sql(d: PruneDialect) -> str:
    """Delete token blocks that start before a block start (parameters: it, limit): they end
    at or before the cut."""
    p = d.placeholder
    key = "instance_id, block_start, model, kind, bucket"
    return (
        f"DELETE FROM usage_token_blocks WHERE ({key}) IN (SELECT {key} "  # nosec B608
        f"FROM usage_token_blocks WHERE block_start < {p} LIMIT {p}{d.lock})"
    )


def delete_buckets_sql(d: PruneDialect) -> str:
    """Delete prediction buckets of days before a cut (parameters: day, limit); returns the
    task type of each."""
    p = d.placeholder
    key = "task_type, model, provider, complexity, day"
    return (
        f"DELETE FROM prediction_buckets WHERE ({key}) IN (SELECT {key} FROM prediction_buckets "  # nosec B608
        f"WHERE day < {p} LIMIT {p}{d.lock}) RETURNING task_type"
    )


# Runs one statement with its parameters; returns its rowcount.
Execute = Callable[[str, tuple[Any, ...]], int]


@dataclass(frozen=True, slots=True)
class RollupPrune:
    """One transaction of `prune_rollups`, for a backend's statements.

    First the token bucket rows of the days before the cut in the block that straddles it;
    if any went, the block is rebuilt from the days it keeps (after `lock_blocks`, which on
    PostgreSQL waits for the folds writing blocks and holds off new ones: the rebuild then
    sees every committed fold and no fold adds to the block meanwhile). Then whole blocks
    before the cut, then the daily rows. The rebuild reads the days from the cut on only, so
    it is right whatever older rows remain, and the blocks stay the sums of the daily rows.
    """

    straddled: str
    rebuild: tuple[str, str]
    old_blocks: str
    rollups: list[tuple[str, tuple[str, ...]]]
    lock_blocks: str

    @classmethod
    def of(cls, d: PruneDialect, lock_blocks: str) -> RollupPrune:
        """The statements for this dialect."""
        return cls(
            straddled_days_sql(d),
            rebuild_block_sql(d),
            old_blocks_sql(d),
            rollup_sql(d),
            lock_blocks,
        )

    def run(self, execute: Execute, before: date, limit: int, bound: Callable[[date], Any]) -> int:
        """Delete up to `limit` rows (`bound` turns a day into its parameter)."""
        check_limit(limit)
        first, cut = block_start(before), bound(before)
        start, end = bound(first), bound(first + timedelta(days=BLOCK_DAYS))
        left = limit - execute(self.straddled, (start, cut, limit))
        if left < limit:
            if self.lock_blocks:
                execute(self.lock_blocks, ())
            execute(self.rebuild[0], (start,))
            execute(self.rebuild[1], (start, cut, end))
        steps = [(self.old_blocks, (start,)), *((s, (*lead, cut)) for s, lead in self.rollups)]
        for statement, params in steps:
            if left == 0:
                break
            left -= execute(statement, (*params, left))
        return limit - left
