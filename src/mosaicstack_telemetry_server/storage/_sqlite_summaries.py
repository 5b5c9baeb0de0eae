"""SQLite side of the incremental prediction summaries: the event cursor and the buckets.

SQLite has one writer at a time, so event ids are assigned in commit order: a reader that
has seen id n has seen every id below it, and the cursor is just the last id read.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence

from mosaicstack_telemetry_server.storage._common import bucket_row, bucket_values
from mosaicstack_telemetry_server.storage._leases import FileLease, NoLease
from mosaicstack_telemetry_server.storage.base import (
    BucketKey,
    BucketRow,
    EventCursor,
    Lease,
    NewEvents,
)

__all__ = ["SQLiteSummaries"]

_SELECT_NEW_EVENTS = (
    "SELECT id, task_type, model, provider, complexity, substr(timestamp, 1, 10), "
    "actual_input_tokens, actual_output_tokens, actual_cost_usd_micros, task_duration_ms, "
    "estimated_input_tokens, estimated_output_tokens, quality_gate_passed, outcome "
    "FROM events WHERE id > ? ORDER BY id LIMIT ?"
)
_UPSERT_BUCKET = (
    "INSERT INTO prediction_buckets (task_type, model, provider, complexity, day, sample_size, "
    "sketch, exact) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_type, model, provider, "
    "complexity, day) DO UPDATE SET sample_size = excluded.sample_size, sketch = excluded.sketch, "
    "exact = excluded.exact"
)
# recency.choose_buckets in SQL: a group's days newest first, each kept while inside the
# window or while the group's newer days hold fewer than the fewest events asked for.
_SELECT_WINDOW = (
    "SELECT task_type, model, provider, complexity, day, sample_size FROM (SELECT task_type, "
    "model, provider, complexity, day, sample_size, max(day) OVER () AS newest, "
    "COALESCE(sum(sample_size) OVER (PARTITION BY model, provider, complexity ORDER BY day DESC "
    "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS newer FROM prediction_buckets "
    "WHERE task_type = ?) WHERE ? = 0 OR day > date(newest, ?) OR newer < ?"
)
# One fixed statement for any number of keys: they arrive as one JSON array of 5-tuples.
_SELECT_BUCKETS = (
    "SELECT b.task_type, b.model, b.provider, b.complexity, b.day, b.sample_size, b.sketch, "
    "CASE WHEN ? THEN b.exact END FROM json_each(?) AS k JOIN prediction_buckets AS b ON "
    "b.task_type = json_extract(k.value, '$[0]') AND b.model = json_extract(k.value, '$[1]') "
    "AND b.provider = json_extract(k.value, '$[2]') AND b.complexity = "
    "json_extract(k.value, '$[3]') AND b.day = json_extract(k.value, '$[4]')"
)


class SQLiteSummaries:
    """The summary methods of `SQLiteStorage` (which provides `_transaction`)."""

    def _transaction(self, *, write: bool) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStorage

    @property
    def path(self) -> str:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStorage

    def drain_lease(self) -> Lease:
        """The drain lease (see `Storage.drain_lease`): a lock on a file beside the database;
        none is needed for a private in-memory one."""
        if self.path == ":memory:":
            return NoLease()
        return FileLease(f"{self.path}-drain-lock")

    def event_cursor(self) -> EventCursor:
        """Where the summaries' reading of the events table stands."""
        with self._transaction(write=False) as conn:
            generation, last_id = conn.execute(
                "SELECT generation, last_id FROM prediction_cursor WHERE id = 1"
            ).fetchone()
        return EventCursor(generation, last_id)

    def event_backlog(self) -> int:
        """The newest event id less the cursor's last id (see `Storage.event_backlog`)."""
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT COALESCE((SELECT max(id) FROM events), 0) - last_id "
                "FROM prediction_cursor WHERE id = 1"
            ).fetchone()
        return max(0, int(row[0]))

    def read_new_events(self, cursor: EventCursor, limit: int) -> NewEvents:
        """Up to `limit` events after `cursor.last_id`, with the versions of that snapshot."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._transaction(write=False) as conn:
            # One row more than taken: `complete` is then exact, also when exactly `limit`
            # events were left (a request must not leave its last event for the drain).
            rows = conn.execute(_SELECT_NEW_EVENTS, (cursor.last_id, limit + 1)).fetchall()
            versions = dict(conn.execute("SELECT task_type, version FROM partition_versions"))
        taken = rows[:limit]
        last_id = taken[-1][0] if taken else cursor.last_id
        return NewEvents(
            [(*row[1:12], bool(row[12]), row[13]) for row in taken],
            EventCursor(cursor.generation + 1, last_id),
            versions,
            complete=len(rows) <= limit,
        )

    def advance_events(
        self, old: EventCursor, new: EventCursor, buckets: Sequence[BucketRow]
    ) -> bool:
        """Store `new` and the buckets at once, if the cursor is still `old`."""
        with self._transaction(write=True) as conn:
            changed = conn.execute(
                "UPDATE prediction_cursor SET generation = ?, last_id = ?, horizon = ?, "
                "in_flight = ? WHERE id = 1 AND generation = ?",
                (
                    new.generation,
                    new.last_id,
                    new.horizon,
                    json.dumps(new.in_flight),
                    old.generation,
                ),
            ).rowcount
            if changed == 0:
                return False
            conn.executemany(_UPSERT_BUCKET, [bucket_values(row) for row in buckets])
        return True

    def bucket_sizes(self, task_type: str) -> list[tuple[BucketKey, int]]:
        """Every bucket of a task type and its number of events."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT task_type, model, provider, complexity, day, sample_size "
                "FROM prediction_buckets WHERE task_type = ?",
                (task_type,),
            ).fetchall()
        return [(BucketKey(*row[:5]), row[5]) for row in rows]

    def window_buckets(
        self, task_type: str, window_days: int, min_events: int
    ) -> list[tuple[BucketKey, int]]:
        """The buckets a task type's statistics stand on (see `Storage.window_buckets`)."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                _SELECT_WINDOW, (task_type, window_days, f"-{window_days} days", min_events)
            ).fetchall()
        return [(BucketKey(*row[:5]), row[5]) for row in rows]

    def get_buckets(self, keys: Sequence[BucketKey], *, exact: bool) -> dict[BucketKey, BucketRow]:
        """The stored buckets asked for; their exact values only when `exact`."""
        if not keys:
            return {}
        wanted = json.dumps(
            [[k.task_type, k.model, k.provider, k.complexity, k.day] for k in set(keys)]
        )
        with self._transaction(write=False) as conn:
            rows = conn.execute(_SELECT_BUCKETS, (exact, wanted)).fetchall()
        return {row.key: row for row in map(bucket_row, rows)}
