"""SQLite side of retention: deleting old events and the summaries of their days in chunks.

Each method is one `BEGIN IMMEDIATE` transaction of at most `limit` deleted rows, so the
write lock is held only briefly and ingestion queues behind it for a chunk at most.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import date

from mosaicstack_telemetry_server.storage._retention_sql import (
    PruneDialect,
    RollupPrune,
    check_limit,
    count_sql,
    delete_buckets_sql,
    events_sql,
)
from mosaicstack_telemetry_server.storage.base import PruneCount

__all__ = ["SQLiteRetention"]

_DAY = "substr(timestamp, 1, 10)"  # events_day_idx (schema 13)
_DIALECT = PruneDialect(placeholder="?", lock="", event_day=_DAY, time_key=_DAY)
_EVENTS = events_sql(_DIALECT)
_ROLLUPS = RollupPrune.of(_DIALECT, lock_blocks="")
_BUCKETS = delete_buckets_sql(_DIALECT)
_COUNT = count_sql(_DIALECT)


class SQLiteRetention:
    """The retention methods of `SQLiteStorage` (which provides `_transaction`)."""

    def _transaction(self, *, write: bool) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStorage

    def count_prunable(self, before: date) -> PruneCount:
        """The events stamped before `before` (UTC midnight), their days, first and last."""
        with self._transaction(write=False) as conn:
            events, days, first, last = conn.execute(_COUNT, (before.isoformat(),)).fetchone()
        return PruneCount(events, days, _day(first), _day(last))

    def prune_events(self, before: date, limit: int) -> int:
        """Delete up to `limit` of the oldest events stamped before `before`."""
        check_limit(limit)
        with self._transaction(write=True) as conn:
            return conn.execute(_EVENTS, (before.isoformat(), limit)).rowcount

    def prune_rollups(self, before: date, limit: int) -> int:
        """Delete up to `limit` usage rollup rows of days before `before` (`RollupPrune`)."""
        with self._transaction(write=True) as conn:
            return _ROLLUPS.run(
                lambda sql, params: conn.execute(sql, params).rowcount,
                before,
                limit,
                date.isoformat,
            )

    def prune_buckets(self, before: date, limit: int) -> int:
        """Delete up to `limit` buckets of days before `before`; invalidate what they fed."""
        check_limit(limit)
        with self._transaction(write=True) as conn:
            # Even with no bucket to delete: a catch-up may hold events read before they were
            # pruned, and would fold them into new buckets.
            conn.execute("UPDATE prediction_cursor SET generation = generation + 1")
            task_types = [row[0] for row in conn.execute(_BUCKETS, (before.isoformat(), limit))]
            if task_types:
                conn.executemany(
                    "UPDATE partition_versions SET version = version + 1 WHERE task_type = ?",
                    [(task_type,) for task_type in sorted(set(task_types))],
                )
        return len(task_types)


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)
