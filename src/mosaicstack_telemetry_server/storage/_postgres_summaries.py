"""PostgreSQL side of the incremental prediction summaries: the event cursor and the buckets.

Event ids come from an identity sequence and are drawn before commit, so concurrent
transactions can commit out of order: a reader that has seen id n may later see a smaller
id commit. A plain max-id watermark would skip it for ever. Each event therefore records
its transaction (`ingest_xid`, xid8), and a read, in one REPEATABLE READ snapshot:

1. re-reads the events with ids <= the last id read whose transaction was in progress at
   the previous read's snapshot (its xip list) or started after it (xid >= its xmax, and
   below this snapshot's xmax: later ones wait for the next read): only those can have
   committed since with an id below what was read;
2. reads the next events by id;
3. records its own snapshot's xmax and xip list for the next read.

Every other transaction had committed (or rolled back) before the previous snapshot, so its
rows were visible then and read. An id drawn after a snapshot is larger than every id
visible in it, so the next read by id meets it. The two reads never overlap (ids <= the
last id, ids above it), so nothing is folded twice. The re-read touches recent transactions
only, through the index on `ingest_xid`, and, unlike a horizon at the snapshot's xmin, does
not grow when some long transaction elsewhere in the cluster holds the xmin back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import psycopg

from mosaicstack_telemetry_server.storage._common import bucket_row, bucket_values
from mosaicstack_telemetry_server.storage.base import (
    BucketKey,
    BucketRow,
    EventCursor,
    NewEvents,
)

__all__ = ["PostgresSummaries"]

_COLUMNS = (
    "SELECT id, task_type, model, provider, complexity, "
    "to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD'), actual_input_tokens, "
    "actual_output_tokens, actual_cost_usd_micros, task_duration_ms, estimated_input_tokens, "
    "estimated_output_tokens, quality_gate_passed, outcome FROM events "
)
_SELECT_NEW_EVENTS = _COLUMNS + "WHERE id > %s ORDER BY id LIMIT %s"
# Two index scans on ingest_xid, each estimated small even without statistics (equality on
# a few xids; a bounded range): an open `>=` range was estimated at a third of the table
# after a bulk load, and planned as a scan of all of it. The bound on the id is written
# `id + 0` so that no index serves it: without statistics (a bulk load not analyzed yet,
# autovacuum off) the planner ANDed the xid range with a bitmap of `id <= last_id` over the
# primary key, every id of the table (0.65 s at 10M events on each refresh).
_SELECT_LATE_IN_FLIGHT = _COLUMNS + "WHERE ingest_xid = ANY(%s::text[]::xid8[]) AND id + 0 <= %s"
_SELECT_LATE_STARTED = (
    _COLUMNS + "WHERE ingest_xid >= %s::xid8 AND ingest_xid < %s::xid8 AND id + 0 <= %s"
)
_SNAPSHOT = (
    "SELECT pg_snapshot_xmax(s)::text, ARRAY(SELECT pg_snapshot_xip(s)::text) "
    "FROM pg_current_snapshot() AS s"
)
_UPSERT_BUCKET = (
    "INSERT INTO prediction_buckets (task_type, model, provider, complexity, day, sample_size, "
    "sketch, exact) VALUES (%s, %s, %s, %s, %s::date, %s, %s, %s) ON CONFLICT (task_type, "
    "model, provider, complexity, day) DO UPDATE SET sample_size = EXCLUDED.sample_size, "
    "sketch = EXCLUDED.sketch, exact = EXCLUDED.exact"
)
# recency.choose_buckets in SQL: a group's days newest first, each kept while inside the
# window or while the group's newer days hold fewer than the fewest events asked for.
_SELECT_WINDOW = (
    "SELECT task_type, model, provider, complexity, day::text, sample_size FROM (SELECT "
    "task_type, model, provider, complexity, day, sample_size, max(day) OVER () AS newest, "
    "COALESCE(sum(sample_size) OVER (PARTITION BY model, provider, complexity ORDER BY day DESC "
    "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS newer FROM prediction_buckets "
    "WHERE task_type = %s) AS b WHERE %s = 0 OR day > newest - %s::integer OR newer < %s"
)
# One fixed statement for any number of keys: the keys arrive as five parallel arrays.
_SELECT_BUCKETS = (
    "SELECT b.task_type, b.model, b.provider, b.complexity, b.day::text, b.sample_size, "
    "b.sketch, CASE WHEN %s THEN b.exact END FROM prediction_buckets AS b JOIN unnest("
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::date[]) AS k(task_type, model, "
    "provider, complexity, day) ON (b.task_type, b.model, b.provider, b.complexity, b.day) = "
    "(k.task_type, k.model, k.provider, k.complexity, k.day)"
)


# Rows converted at a time (see `_in_parts`): a few milliseconds of holding the GIL.
_PART_ROWS = 2_000


class PostgresSummaries:
    """The summary methods of `PostgresStorage` (which provides `_transaction`)."""

    def _transaction(
        self, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        raise NotImplementedError  # pragma: no cover - provided by PostgresStorage

    def event_cursor(self) -> EventCursor:
        """Where the summaries' reading of the events table stands."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT generation, last_id, horizon::text, in_flight::text[] "
                "FROM prediction_cursor WHERE id = 1"
            ).fetchone()
        generation, last_id, horizon, in_flight = _one(row)
        return EventCursor(generation, last_id, horizon, tuple(in_flight))

    def event_backlog(self) -> int:
        """The newest event id less the cursor's last id (see `Storage.event_backlog`)."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT COALESCE((SELECT max(id) FROM events), 0) - last_id "
                "FROM prediction_cursor WHERE id = 1"
            ).fetchone()
        return max(0, int(_one(row)[0]))

    def read_new_events(self, cursor: EventCursor, limit: int) -> NewEvents:
        """Late commits and up to `limit` events after `cursor`, from one snapshot."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._transaction() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            xmax, in_flight = _one(conn.execute(_SNAPSHOT).fetchone())
            late: list[Any] = []
            if cursor.in_flight:
                late += conn.execute(
                    _SELECT_LATE_IN_FLIGHT, (list(cursor.in_flight), cursor.last_id)
                ).fetchall()
            if cursor.horizon is not None:
                # Started after the previous snapshot and before this one: later ones are
                # this snapshot's concern (>= its xmax) at the next read.
                late += conn.execute(
                    _SELECT_LATE_STARTED, (cursor.horizon, xmax, cursor.last_id)
                ).fetchall()
            # One row more than taken: `complete` is then exact (see the SQLite side).
            fresh = _in_parts(conn.execute(_SELECT_NEW_EVENTS, (cursor.last_id, limit + 1)))
            versions = dict(conn.execute("SELECT task_type, version FROM partition_versions"))
        taken = fresh[:limit]
        last_id = taken[-1][0] if taken else cursor.last_id
        return NewEvents(
            [row[1:] for row in (*late, *taken)],
            EventCursor(cursor.generation + 1, last_id, xmax, tuple(in_flight)),
            versions,
            complete=len(fresh) <= limit,
        )

    def advance_events(
        self, old: EventCursor, new: EventCursor, buckets: Sequence[BucketRow]
    ) -> bool:
        """Store `new` and the buckets at once, if the cursor is still `old`."""
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE prediction_cursor SET generation = %s, last_id = %s, horizon = %s::xid8, "
                "in_flight = %s::text[]::xid8[] WHERE id = 1 AND generation = %s",
                (new.generation, new.last_id, new.horizon, list(new.in_flight), old.generation),
            ).rowcount
            if changed == 0:
                return False
            with conn.cursor() as cur:
                cur.executemany(_UPSERT_BUCKET, [bucket_values(row) for row in buckets])
        return True

    def bucket_sizes(self, task_type: str) -> list[tuple[BucketKey, int]]:
        """Every bucket of a task type and its number of events."""
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT task_type, model, provider, complexity, day::text, sample_size "
                "FROM prediction_buckets WHERE task_type = %s",
                (task_type,),
            ).fetchall()
        return [(BucketKey(*row[:5]), row[5]) for row in rows]

    def window_buckets(
        self, task_type: str, window_days: int, min_events: int
    ) -> list[tuple[BucketKey, int]]:
        """The buckets a task type's statistics stand on (see `Storage.window_buckets`)."""
        with self._transaction() as conn:
            rows = conn.execute(
                _SELECT_WINDOW, (task_type, window_days, window_days, min_events)
            ).fetchall()
        return [(BucketKey(*row[:5]), row[5]) for row in rows]

    def get_buckets(self, keys: Sequence[BucketKey], *, exact: bool) -> dict[BucketKey, BucketRow]:
        """The stored buckets asked for; their exact values only when `exact`."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        arrays = [[getattr(k, f) for k in unique] for f in BucketKey.__slots__]
        with self._transaction() as conn:
            # Binary results: the blobs arrive as they are, not as hex text twice their size.
            rows = conn.execute(_SELECT_BUCKETS, (exact, *arrays), binary=True).fetchall()
        return {row.key: row for row in map(bucket_row, rows)}


def _in_parts(result: psycopg.Cursor[Any]) -> list[Any]:
    """Every row of a result, converted to Python a few thousand at a time.

    `fetchall` converts all of them in C without releasing the GIL: for a drain's
    50,000-row chunk that stalled every request thread of the process for its whole length.
    """
    rows: list[Any] = []
    while part := result.fetchmany(_PART_ROWS):
        rows += part
    return rows


def _one(row: Any) -> tuple[Any, ...]:
    if row is None:  # pragma: no cover - the migration inserts the one row
        raise psycopg.DataError("missing row")
    return tuple(row)
