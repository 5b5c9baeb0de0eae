"""PostgreSQL side of retention: deleting old events and the summaries of their days in chunks.

Each method is one transaction of at most `limit` deleted rows whose subquery skips rows
locked by another pruner, so every server process may prune at once. Locks are taken in the
order the rest of the storage takes them (cursor, then buckets, then data versions), so a
prune never deadlocks with a catch-up or an insert.
"""

from __future__ import annotations

import contextlib
from datetime import date
from typing import Any

import psycopg

from mosaicstack_telemetry_server.storage._retention_sql import (
    PruneDialect,
    RollupPrune,
    check_limit,
    count_sql,
    delete_buckets_sql,
    events_sql,
    midnight,
)
from mosaicstack_telemetry_server.storage.base import PruneCount

__all__ = ["PostgresRetention"]

_DIALECT = PruneDialect(
    placeholder="%s",
    lock=" FOR UPDATE SKIP LOCKED",
    event_day="(timestamp AT TIME ZONE 'UTC')::date",
    time_key="timestamp",
)
_EVENTS = events_sql(_DIALECT)
# Conflicts with the folds' inserts and with itself, not with readers.
_ROLLUPS = RollupPrune.of(
    _DIALECT, lock_blocks="LOCK TABLE usage_token_blocks IN SHARE ROW EXCLUSIVE MODE"
)
_BUCKETS = delete_buckets_sql(_DIALECT)
_COUNT = count_sql(_DIALECT)
_BUMP_CURSOR = "UPDATE prediction_cursor SET generation = generation + 1 WHERE id = 1"


class PostgresRetention:
    """The retention methods of `PostgresStorage` (which provides `_transaction`)."""

    def _transaction(
        self, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        raise NotImplementedError  # pragma: no cover - provided by PostgresStorage

    def count_prunable(self, before: date) -> PruneCount:
        """The events stamped before `before` (UTC midnight), their days, first and last."""
        with self._transaction() as conn:
            row = conn.execute(_COUNT, (midnight(before),)).fetchone()
        events, days, first, last = row if row is not None else (0, 0, None, None)
        return PruneCount(events, days, first, last)

    def prune_events(self, before: date, limit: int) -> int:
        """Delete up to `limit` of the oldest events stamped before `before`."""
        check_limit(limit)
        with self._transaction() as conn:
            return conn.execute(_EVENTS, (midnight(before), limit)).rowcount

    def prune_rollups(self, before: date, limit: int) -> int:
        """Delete up to `limit` usage rollup rows of days before `before` (`RollupPrune`)."""
        with self._transaction() as conn:
            execute = lambda sql, params: conn.execute(sql, params).rowcount  # noqa: E731
            return _ROLLUPS.run(execute, before, limit, _day)

    def prune_buckets(self, before: date, limit: int) -> int:
        """Delete up to `limit` buckets of days before `before`; invalidate what they fed."""
        check_limit(limit)
        with self._transaction() as conn:
            # The cursor's row first, as a catch-up's advance_events locks it before buckets.
            # Even with no bucket to delete: a catch-up may hold events read before they were
            # pruned, and would fold them into new buckets.
            conn.execute(_BUMP_CURSOR)
            task_types = [row[0] for row in conn.execute(_BUCKETS, (before, limit))]
            if task_types:
                with conn.cursor() as cur:
                    # Sorted, as inserts lock the version rows: no deadlock.
                    cur.executemany(
                        "UPDATE partition_versions SET version = version + 1 WHERE task_type = %s",
                        [(task_type,) for task_type in sorted(set(task_types))],
                    )
        return len(task_types)


def _day(day: date) -> date:
    """A day as psycopg binds it: as it is."""
    return day
