"""The PostgreSQL backend: psycopg 3 over a bounded, lazily opened connection pool.

A batch of events is one `INSERT ... SELECT FROM unnest(<one array per column>)`: a single
round trip whatever the batch size, and psycopg prepares the statement after a few uses.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server.storage._budgets import PostgresBudgets
from mosaicstack_telemetry_server.storage._common import (
    USAGE_ATTRIBUTION_VERSION,
    USAGE_CURSOR_VERSION,
    USAGE_ROLLUPS_VERSION,
    api_key_record,
    check_api_key_fields,
    check_batch_size,
    check_stats_rows,
    event_from_row,
    event_row,
    load_migrations,
    pending_migrations,
    redact_url,
    scrub,
    stats_row,
    stats_values,
    utc,
)
from mosaicstack_telemetry_server.storage._leases import AdvisoryLease
from mosaicstack_telemetry_server.storage._postgres_otlp import PostgresOtlp
from mosaicstack_telemetry_server.storage._postgres_retention import PostgresRetention
from mosaicstack_telemetry_server.storage._postgres_summaries import PostgresSummaries
from mosaicstack_telemetry_server.storage._rollup_fold import fold_rows
from mosaicstack_telemetry_server.storage._rollups import (
    BLOCK_DAYS,
    FOLD_LIMIT,
    check_fold_limit,
    legacy_daily,
    upsert_statements,
)
from mosaicstack_telemetry_server.storage._usage_reads import UsageReads
from mosaicstack_telemetry_server.storage._usage_sql import Dialect
from mosaicstack_telemetry_server.storage.base import (
    ApiKeyRecord,
    KeyRole,
    Lease,
    PartitionSnapshot,
    StatsKey,
    StatsRow,
    StorageError,
)
from mosaicstack_telemetry_server.token_sketch import LN_GAMMA

__all__ = ["PostgresStorage"]

# SQL is spelled out in full (no formatting at all); column lists follow _common's constants.
# Duplicates are skipped by the unique key, never by read-then-write, so concurrent resends
# of one batch store it once (the second waits on the first's key locks, then skips).
_INSERT_EVENTS = (
    "WITH new AS ("
    "INSERT INTO events (instance_id, event_id, schema_version, timestamp, task_duration_ms, "
    "task_type, complexity, harness, model, provider, estimated_input_tokens, "
    "estimated_output_tokens, actual_input_tokens, actual_output_tokens, "
    "estimated_cost_usd_micros, actual_cost_usd_micros, quality_gate_passed, quality_gates_run, "
    "quality_gates_failed, context_compactions, context_rotations, context_utilization_final, "
    "outcome, retry_count, language, repo_size_category, project, branch, user_name, "
    "cache_read_tokens, cache_write_tokens, reasoning_tokens) "
    "SELECT * FROM unnest("
    "%b::uuid[], %b::uuid[], %b::text[], %b::timestamptz[], %b::bigint[], "
    "%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
    "%b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[], "
    "%b::boolean[], %b::text[], %b::text[], %b::integer[], %b::integer[], "
    "%b::double precision[], %b::text[], %b::integer[], %b::text[], %b::text[], "
    "%b::text[], %b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::bigint[]) "
    "ON CONFLICT (instance_id, event_id) DO NOTHING "
    "RETURNING task_type), "
    "counts AS (SELECT task_type, count(*) AS stored FROM new GROUP BY task_type), "
    # Sorted, so that concurrent batches lock the version rows in one order (no deadlock).
    "bump AS (INSERT INTO partition_versions (task_type, version) "
    "SELECT task_type, 1 FROM counts ORDER BY task_type "
    "ON CONFLICT (task_type) DO UPDATE SET version = partition_versions.version + 1) "
    "SELECT coalesce(sum(stored), 0)::bigint FROM counts"
)
_SELECT_EVENT = (
    "SELECT instance_id, event_id, schema_version, timestamp, task_duration_ms, task_type, "
    "complexity, harness, model, provider, estimated_input_tokens, estimated_output_tokens, "
    "actual_input_tokens, actual_output_tokens, estimated_cost_usd_micros, "
    "actual_cost_usd_micros, quality_gate_passed, quality_gates_run, quality_gates_failed, "
    "context_compactions, context_rotations, context_utilization_final, outcome, retry_count, "
    "language, repo_size_category, project, branch, user_name, cache_read_tokens, "
    "cache_write_tokens, reasoning_tokens FROM events WHERE instance_id = %s AND event_id = %s"
)
_SELECT_PARTITION = (
    "SELECT model, provider, complexity, actual_input_tokens, actual_output_tokens, "
    "actual_cost_usd_micros, task_duration_ms, estimated_input_tokens, estimated_output_tokens, "
    "quality_gate_passed, outcome FROM events WHERE task_type = %s"
)
_INSERT_STATS = (
    "INSERT INTO prediction_stats (level, task_type, model, provider, complexity, sample_size, "
    "stats, computed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
# One fixed statement for any number of keys: the keys arrive as five parallel arrays.
_SELECT_STATS = (
    "SELECT s.level, s.task_type, s.model, s.provider, s.complexity, s.sample_size, s.stats, "
    "s.computed_at FROM prediction_stats AS s JOIN unnest(%s::integer[], %s::text[], "
    "%s::text[], %s::text[], %s::text[]) AS k(level, task_type, model, provider, complexity) ON "
    "(s.level, s.task_type, s.model, s.provider, s.complexity) = (k.level, k.task_type, "
    "k.model, k.provider, k.complexity)"
)
_SELECT_LEVEL_STATS = (
    "SELECT level, task_type, model, provider, complexity, sample_size, stats, computed_at "
    "FROM prediction_stats WHERE level = %s"
)
_SELECT_API_KEY = (
    "SELECT key_id, instance_id, label, created_at, revoked_at, key_hash, role FROM api_keys "
    "WHERE key_hash = %s"
)
_LIST_API_KEYS = (
    "SELECT key_id, instance_id, label, created_at, revoked_at, key_hash, role FROM api_keys "
    "ORDER BY created_at, key_id"
)
# Serialises migrations across every process using the database (arbitrary constant).
_MIGRATION_LOCK = 0x6D6F736169630001
# The drain lease: a session lock on (this constant, the OID of the schema's cursor table), so
# that servers on different schemas of one database do not share it.
_DRAIN_LOCK = 0x6D6F7361


_DIALECT = Dialect(
    placeholder="%s",
    event_day="(timestamp AT TIME ZONE 'UTC')::date",
    instance_filter="instance_id",
    day_index=None,  # the index is on the timestamptz itself
    event_instance="instance_id::text",
    successes="count(*) FILTER (WHERE outcome = 'success')",
    gate_passes="count(*) FILTER (WHERE quality_gate_passed)",
    # token_sketch.bucket_of in SQL: the same libm log() and IEEE division as Python's.
    log_bucket=(
        "(CASE WHEN {0} > 0 THEN ceil(ln({0}::double precision) / "
        + repr(LN_GAMMA)
        + ")::integer ELSE -1 END)"
    ),
    # date - integer is a date; the double mod() keeps days before 1970 in their block (and
    # no "%" in the SQL, which psycopg would take for a placeholder).
    block_of=("({0} - mod(mod({0} - DATE '1970-01-01', BLOCK) + BLOCK, BLOCK))").replace(
        "BLOCK", str(BLOCK_DAYS)
    ),
    # The ids after the cursor (the primary key) and the transactions the fold could not see
    # (the index on ingest_xid: recent ones only). Each range also gets an upper bound that
    # always holds (the newest id; the snapshot's xmax): a bound range on an unknown value is
    # estimated small and read by its index, an open one as a third of the table and scanned.
    # OFFSET 0 keeps the range's time condition outside, so that it cannot turn this into a
    # scan of the range's events.
    unfolded_events=(
        "(SELECT * FROM events WHERE (id > (SELECT last_id FROM usage_cursor) "
        "AND id <= (SELECT max(id) FROM events)) "
        "OR ingest_xid = ANY(ARRAY(SELECT unnest(in_flight) FROM usage_cursor)) "
        "OR (ingest_xid >= (SELECT horizon FROM usage_cursor) "
        "AND ingest_xid < pg_snapshot_xmax(pg_current_snapshot())) OFFSET 0) AS events"
    ),
    percentile_cont="percentile_cont(ARRAY[{quantiles}]) WITHIN GROUP (ORDER BY {column})",
)
# How many events are after the cursor, counting up to a bound.
_WAITING = (
    "SELECT count(*) FROM (SELECT 1 FROM events WHERE id > (SELECT last_id FROM usage_cursor) "
    "LIMIT %s) AS waiting"
)
# The fold's cursor, row-locked: folds take turns (the others wait here, then read it moved).
_LOCK_CURSOR = (
    "SELECT last_id, horizon::text, in_flight::text[] FROM usage_cursor WHERE id = 1 FOR UPDATE"
)
# What one fold takes, in one statement and so one snapshot (`_postgres_summaries.py` reads
# the events the same way, and says why): its xmax and transactions in progress, the next ids
# after the cursor, and the events of ids up to the cursor whose transactions the previous fold
# could not see (then in progress, or started since) and this snapshot does.
_FOLD_SNAPSHOT = (
    "SELECT pg_snapshot_xmax(s)::text, ARRAY(SELECT pg_snapshot_xip(s)::text), "
    "ARRAY(SELECT id FROM events WHERE id > %(last)s ORDER BY id LIMIT %(limit)s), "
    "ARRAY(SELECT id FROM events WHERE ingest_xid = ANY(%(in_flight)s::text[]::xid8[]) "
    "AND id + 0 <= %(last)s), "
    "ARRAY(SELECT id FROM events WHERE ingest_xid >= %(horizon)s::xid8 "
    "AND ingest_xid < pg_snapshot_xmax(s) AND id + 0 <= %(last)s) "
    "FROM pg_current_snapshot() AS s"
)
_MOVE_CURSOR = (
    "UPDATE usage_cursor SET last_id = %s, horizon = %s::xid8, in_flight = %s::text[]::xid8[] "
    "WHERE id = 1"
)
# The events one backfill step takes (at most FOLD_LIMIT after an id): how many, the last id.
_FOLD_RANGE = (
    "SELECT count(*), max(id) FROM (SELECT id FROM events WHERE id > %s ORDER BY id LIMIT %s) AS r"
)


def _bound(value: Any) -> Any:
    """A usage query's parameter as psycopg takes it (it adapts datetimes, dates, UUIDs)."""
    return value


def _configure(conn: psycopg.Connection[Any]) -> None:
    # Timestamps come back in UTC whatever the server's TimeZone setting.
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()


# What a fold reads of each event (`_rollup_fold.FOLD_COLUMNS`); a condition follows.
_FOLD_SELECT = (
    "SELECT to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD'), instance_id::text, task_type, "
    "complexity, harness, model, provider, outcome, coalesce(project, ''), "
    "coalesce(branch, ''), coalesce(user_name, ''), actual_input_tokens, actual_output_tokens, "
    "actual_cost_usd_micros, task_duration_ms, quality_gate_passed::integer, "
    "coalesce(cache_read_tokens, 0), coalesce(cache_write_tokens, 0), "
    "coalesce(reasoning_tokens, 0) FROM events WHERE "
)
# The same of a database migrated to schema 6 to 10, whose events may lack 1.1's columns.
_LEGACY_FOLD_SELECT = (
    "SELECT to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD'), instance_id::text, task_type, "
    "complexity, harness, model, provider, outcome, '', '', '', actual_input_tokens, "
    "actual_output_tokens, actual_cost_usd_micros, task_duration_ms, "
    "quality_gate_passed::integer, 0, 0, 0 FROM events WHERE "
)
_TYPES = {"day": "date", "block_start": "date", "bucket": "integer"}
_SUMMED = {"tasks", "input_tokens", "output_tokens", "cost_usd_micros", "duration_ms"}
_SUMMED |= {"successes", "gate_passes", "count"}
_SUMMED |= {"cache_read_tokens", "cache_write_tokens", "reasoning_tokens"}


def _arrays(columns: tuple[str, ...]) -> str:
    """A fold's rows as one array per column: one statement and round trip per table (binary
    arrays: about a third cheaper to send than text for a chunk's 100,000 rows)."""
    types = [_TYPES.get(name, "bigint" if name in _SUMMED else "text") for name in columns]
    # Fixed type names only; the rows are bound.
    return f"SELECT * FROM unnest({', '.join(f'%b::{kind}[]' for kind in types)})"  # noqa: S608  # nosec B608


_UPSERTS = tuple(statement.encode() for statement in upsert_statements(_arrays))
_LEGACY_UPSERTS = tuple(s.encode() for s in upsert_statements(_arrays, legacy=True))


class PostgresStorage(
    PostgresSummaries, PostgresRetention, PostgresOtlp, UsageReads, PostgresBudgets
):
    """Storage in a PostgreSQL database (its schema is the connection's search_path).

    `timeout` is how long a call waits for a pooled connection before failing with
    StorageError: short, so that while the database is down requests fail fast with 503
    instead of holding the server's worker threads.
    """

    _dialect = _DIALECT
    _bind = staticmethod(_bound)

    def __init__(
        self,
        url: str,
        *,
        # Two kept open: the background refresher can hold one for a fold (a whole drain chunk
        # where backlogs are drained in a thread), and a request should not pay for a new
        # connection meanwhile.
        min_connections: int = 2,
        max_connections: int = 10,
        timeout: float = 3.0,
        ping_timeout: float = 2.0,
        connect_timeout: int = 5,
    ) -> None:
        self._url = url
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error:
            raise ValueError(f"invalid PostgreSQL URL {redact_url(url)!r}") from None
        password = params.get("password")
        self._password = None if password is None else str(password)
        kwargs: dict[str, Any] = {}
        # Values in the URL win; these are only defaults.
        if "connect_timeout" not in params:
            kwargs["connect_timeout"] = connect_timeout
        if "application_name" not in params:
            kwargs["application_name"] = "mosaicstack-telemetry"
        self._ping_timeout = ping_timeout
        self._connect_kwargs = kwargs
        self._pool = ConnectionPool(
            url,
            kwargs=kwargs,
            min_size=min_connections,
            max_size=max_connections,
            open=False,
            configure=_configure,
            # One cheap round trip per checkout, so connections broken by a database restart
            # are replaced instead of failing one request each.
            check=ConnectionPool.check_connection,
            timeout=timeout,
            name="mosaicstack-telemetry",
        )
        self._lock = threading.Lock()
        self._opened = False
        self._closed = False
        self._migrations = load_migrations("postgres")

    def __repr__(self) -> str:
        return f"PostgresStorage({redact_url(self._url)!r})"

    def _open(self) -> None:
        if self._opened:
            return
        with self._lock:
            if self._closed:
                raise StorageError("the storage is closed")
            if not self._opened:
                # wait=False: an unreachable database must not block the server's start.
                self._pool.open(wait=False)
                self._opened = True

    def drain_lease(self) -> Lease:
        """The drain lease (see `Storage.drain_lease`): a session advisory lock keyed by this
        schema's cursor table (one lease per schema), on a connection of its own."""
        return AdvisoryLease(
            self._own_connection,
            "SELECT pg_try_advisory_lock(%s, 'prediction_cursor'::regclass::oid::integer)",
            (_DRAIN_LOCK,),
            lambda text: scrub(text, self._password),
        )

    def _own_connection(self) -> psycopg.Connection[Any]:
        """A connection outside the pool (autocommit), for a session lock held for long."""
        if self._closed:
            raise StorageError("the storage is closed")
        try:
            return psycopg.connect(self._url, autocommit=True, **self._connect_kwargs)
        except psycopg.Error as exc:
            raise StorageError(scrub(f"PostgreSQL error: {exc}", self._password)) from exc

    @contextlib.contextmanager
    def _transaction(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; its transaction commits when the block ends without error."""
        try:
            self._open()
            with self._pool.connection(timeout=timeout) as conn:
                yield conn
        except psycopg.Error as exc:
            raise StorageError(scrub(f"PostgreSQL error: {exc}", self._password)) from exc

    # schema

    def migrate(self, target: int | None = None) -> None:
        """Apply every pending migration up to `target` (default: the latest) at once.

        A transaction-level advisory lock makes concurrent migrations from several processes
        take turns; the later ones find nothing left to do.
        """
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            pending = pending_migrations(self._migrations, applied, target)
            refold = any(m.version == USAGE_ATTRIBUTION_VERSION for m in pending)
            for migration in pending:
                if migration.version == USAGE_CURSOR_VERSION and not refold:
                    # Before the statements, which drop the list of pending events.
                    self._add_rollups(conn, "id IN (SELECT id FROM usage_pending)", (), legacy=True)
                for statement in migration.statements:
                    # Trusted SQL shipped in the package, not built from any input.
                    conn.execute(statement.encode())
                if migration.version == USAGE_ROLLUPS_VERSION and not refold:
                    self._backfill_rollups(conn)
                conn.execute(
                    "INSERT INTO schema_migrations (version) VALUES (%s)", (migration.version,)
                )

    def schema_version(self) -> int:
        """The newest migration applied; 0 for an empty schema."""
        with self._transaction() as conn:
            exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
            if exists is None or exists[0] is None:
                return 0
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            return int(cast(tuple[int], row.fetchone())[0])

    def latest_schema_version(self) -> int:
        """The version of this server's newest migration."""
        return self._migrations[-1].version

    def ping(self) -> bool:
        """Whether the database answers within `ping_timeout` seconds."""
        try:
            with self._transaction(timeout=self._ping_timeout) as conn:
                conn.execute("SELECT 1")
        except Exception:
            return False
        return True

    def start_maintenance(self) -> None:
        """Nothing to start: PostgreSQL checkpoints and vacuums on its own."""

    def stop_maintenance(self, timeout: float | None = 5.0) -> bool:
        """Nothing to stop."""
        return True

    def close(self) -> None:
        """Close the pool; the storage cannot be used afterwards."""
        with self._lock:
            self._closed = True
            opened, self._opened = self._opened, False
        if opened:
            self._pool.close()

    # events

    def insert_events(self, events: Sequence[TaskCompletionEvent]) -> int:
        """Store new events and bump their task types' versions, in one transaction (the usage
        rollups are folded later, by `fold_pending_usage`)."""
        check_batch_size(len(events))
        if not events:
            return 0
        unique: dict[tuple[UUID, UUID], tuple[Any, ...]] = {}
        for row in map(event_row, events):
            # The first of an id repeated within the batch is stored (as SQLite does).
            unique.setdefault((row[0], row[1]), row)
        # Sorted by key, so two overlapping batches lock their keys in the same order.
        rows = [unique[key] for key in sorted(unique)]
        columns = [list(column) for column in zip(*rows, strict=True)]
        # One statement stores the rows and bumps the versions of the task types that got
        # new ones: one round trip per batch (binary arrays: no text escaping to pay for).
        with self._transaction() as conn:
            stored = conn.execute(_INSERT_EVENTS, columns).fetchone()
        return int(cast(tuple[int], stored)[0])

    def usage_waiting(self, limit: int) -> int:
        """How many events the usage cursor has not passed by id, counted up to `limit` (events of
        transactions the last fold could not see are left out: they are folded with the next)."""
        with self._transaction() as conn:
            row = conn.execute(_WAITING, (limit,)).fetchone()
        return int(cast(tuple[int], row)[0])

    def fold_pending_usage(self, min_events: int = 1, limit: int = FOLD_LIMIT) -> int:
        """Add up to `limit` events the usage cursor has not passed to the rollups and move
        the cursor past them, in one transaction, unless fewer than `min_events` are after it;
        returns how many were folded."""
        with self._transaction() as conn:
            if min_events > 1:
                waiting = conn.execute(_WAITING, (min_events,)).fetchone()
                if int(cast(tuple[int], waiting)[0]) < min_events:
                    return 0
            row = conn.execute(_LOCK_CURSOR).fetchone()
            last, horizon, in_flight = cast(tuple[int, str | None, list[str]], row)
            params = {
                "last": last,
                "limit": check_fold_limit(limit),
                "horizon": horizon,
                "in_flight": in_flight,
            }
            snapshot = conn.execute(_FOLD_SNAPSHOT, params).fetchone()
            xmax, running, fresh, *late = cast(
                tuple[str, list[str], list[int], list[int], list[int]], snapshot
            )
            ids = [*late[0], *late[1], *fresh]
            if not ids:
                return 0
            self._add_rollups(conn, "id = ANY(%s)", (ids,))
            conn.execute(_MOVE_CURSOR, (fresh[-1] if fresh else last, xmax, running))
        return len(ids)

    def _fold_after(self, conn: psycopg.Connection[Any], last: int) -> tuple[int, int]:
        """Add up to FOLD_LIMIT events with ids above `last` to the rollups of schema 6
        (the backfill of that migration): (count, last id)."""
        count, upto = cast(
            tuple[int, int | None], conn.execute(_FOLD_RANGE, (last, FOLD_LIMIT)).fetchone()
        )
        if count:
            self._add_rollups(conn, "id > %s AND id <= %s", (last, upto), legacy=True)
        return int(count), int(upto or last)

    @staticmethod
    def _add_rollups(
        conn: psycopg.Connection[Any],
        source: str,
        params: Sequence[Any],
        *,
        legacy: bool = False,
    ) -> None:
        """Add the events selected by `source` (a condition on `events`) to the rollups
        (`legacy`: to the rollups of schema 6 to 10, while migrating to them)."""
        select = _LEGACY_FOLD_SELECT if legacy else _FOLD_SELECT
        events = conn.execute((select + source).encode(), params).fetchall()
        rows = fold_rows(events)
        daily = legacy_daily(rows.daily) if legacy else rows.daily
        for statement, values in zip(
            _LEGACY_UPSERTS if legacy else _UPSERTS, (daily, rows.buckets, rows.blocks), strict=True
        ):
            if values:
                conn.execute(statement, [list(column) for column in zip(*values, strict=True)])

    def _backfill_rollups(self, conn: psycopg.Connection[Any]) -> None:
        """Fold every stored event into the (new, empty) rollups, FOLD_LIMIT at a time."""
        last = 0
        while True:
            count, last = self._fold_after(conn, last)
            if not count:
                return

    def get_event(self, instance_id: UUID, event_id: UUID) -> TaskCompletionEvent | None:
        """The stored event with this id from this instance, or None."""
        with self._transaction() as conn:
            row = conn.execute(_SELECT_EVENT, (instance_id, event_id)).fetchone()
        return None if row is None else event_from_row(row)

    def count_events(self) -> int:
        """Number of stored events."""
        with self._transaction() as conn:
            row = conn.execute("SELECT count(*) FROM events").fetchone()
        return int(cast(tuple[int], row)[0])

    # api keys

    def create_api_key(
        self,
        *,
        key_id: str,
        key_hash: str,
        instance_id: UUID | None,
        label: str | None,
        role: KeyRole = "instance",
    ) -> ApiKeyRecord:
        """Store a new key's hash; ValueError if its id or hash is already taken."""
        check_api_key_fields(key_id, key_hash, label, instance_id, role)
        record = ApiKeyRecord(key_id, instance_id, label, datetime.now(UTC), None, key_hash, role)
        with self._transaction() as conn:
            try:
                conn.execute(
                    "INSERT INTO api_keys (key_id, key_hash, instance_id, label, created_at, role) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (key_id, key_hash, instance_id, label, record.created_at, role),
                )
            except psycopg.errors.UniqueViolation:
                raise ValueError("an API key with this key_id or hash already exists") from None
        return record

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The key with this hash, revoked or not, or None."""
        with self._transaction() as conn:
            row = conn.execute(_SELECT_API_KEY, (key_hash,)).fetchone()
        return None if row is None else api_key_record(row)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, oldest first."""
        with self._transaction() as conn:
            rows = conn.execute(_LIST_API_KEYS).fetchall()
        return [api_key_record(row) for row in rows]

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key; False if no active key has that id."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL",
                (key_id,),
            )
            return cursor.rowcount > 0

    # prediction statistics

    def partition_versions(self) -> dict[str, int]:
        """Data version of each task type that has events."""
        with self._transaction() as conn:
            rows = conn.execute("SELECT task_type, version FROM partition_versions").fetchall()
        return dict(rows)

    def stats_versions(self) -> dict[str, tuple[int, datetime]]:
        """For each task type with stored statistics: their data version and computation time."""
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT task_type, version, computed_at FROM stats_versions"
            ).fetchall()
        return {task_type: (version, utc(at)) for task_type, version, at in rows}

    def read_partition(self, task_type: str) -> PartitionSnapshot:
        """Every event of a task type and its version, from one REPEATABLE READ snapshot."""
        with self._transaction() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            found = conn.execute(
                "SELECT version FROM partition_versions WHERE task_type = %s", (task_type,)
            ).fetchone()
            # Binary results: markedly cheaper to parse for the large partitions.
            rows = conn.execute(_SELECT_PARTITION, (task_type,), binary=True).fetchall()
        return PartitionSnapshot(task_type, 0 if found is None else found[0], rows)

    def replace_stats(
        self, task_type: str, version: int, computed_at: datetime, rows: Sequence[StatsRow]
    ) -> bool:
        """Replace a task type's statistics unless ones of a version >= `version` are stored."""
        check_stats_rows(task_type, rows)
        with self._transaction() as conn:
            # Compare-and-set; the upsert also row-locks the task type until commit, so two
            # concurrent replacements take turns.
            cursor = conn.execute(
                "INSERT INTO stats_versions (task_type, version, computed_at) "
                "VALUES (%s, %s, %s) ON CONFLICT (task_type) DO UPDATE "
                "SET version = EXCLUDED.version, computed_at = EXCLUDED.computed_at "
                "WHERE stats_versions.version < EXCLUDED.version",
                (task_type, version, utc(computed_at)),
            )
            if cursor.rowcount == 0:
                return False
            conn.execute("DELETE FROM prediction_stats WHERE task_type = %s", (task_type,))
            with conn.cursor() as cur:
                cur.executemany(_INSERT_STATS, [stats_values(row) for row in rows])
        return True

    def touch_stats(self, task_type: str, version: int, computed_at: datetime) -> bool:
        """Re-stamp a task type's statistics of exactly `version` (never backwards in time)."""
        stamp = utc(computed_at)
        with self._transaction() as conn:
            # The UPDATE row-locks the task type's version row: a concurrent replace_stats
            # waits, or has committed first and then the version no longer matches.
            cursor = conn.execute(
                "UPDATE stats_versions SET computed_at = %s "
                "WHERE task_type = %s AND version = %s AND computed_at < %s",
                (stamp, task_type, version, stamp),
            )
            if cursor.rowcount == 0:
                return False
            conn.execute(
                "UPDATE prediction_stats SET computed_at = %s WHERE task_type = %s",
                (stamp, task_type),
            )
        return True

    def get_stats(self, keys: Sequence[StatsKey]) -> dict[StatsKey, StatsRow]:
        """The stored statistics of the groups asked for, in one query."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        arrays = [
            [key.level for key in unique],
            [key.task_type for key in unique],
            [key.model for key in unique],
            [key.provider for key in unique],
            [key.complexity for key in unique],
        ]
        with self._transaction() as conn:
            rows = conn.execute(_SELECT_STATS, arrays).fetchall()
        found = [stats_row(values) for values in rows]
        return {row.key: row for row in found}

    def stats_at_level(self, level: int) -> list[StatsRow]:
        """The stored statistics of every group of one fallback level, every task type."""
        with self._transaction() as conn:
            rows = conn.execute(_SELECT_LEVEL_STATS, (level,)).fetchall()
        return [stats_row(values) for values in rows]

    # operations

    def pool_stats(self) -> dict[str, int]:
        """The connection pool's use (`max`, `open`, `in_use`, `waiting`), for /metrics."""
        stats = self._pool.get_stats()
        size = int(stats.get("pool_size", 0))
        return {
            "max": int(stats.get("pool_max", 0)),
            "open": size,
            "in_use": size - int(stats.get("pool_available", 0)),
            "waiting": int(stats.get("requests_waiting", 0)),
        }

    def probe_write(self) -> None:
        """Commit a real write that changes nothing, or raise StorageError (for /readyz).

        An UPDATE writes a new row version and WAL even with the same value, so a full disk
        or a read-only database fails here as it would for an event.
        """
        with self._transaction(timeout=self._ping_timeout) as conn:
            conn.execute(
                "UPDATE schema_migrations SET applied_at = applied_at "
                "WHERE version = (SELECT MAX(version) FROM schema_migrations)"
            )

    # usage

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """One read-only query's rows (the usage reads of `UsageReads`)."""
        with self._transaction() as conn:
            return conn.execute(sql, params).fetchall()

    # dashboard sessions

    def create_dashboard_session(
        self, token_hash: str, key_hash: str, created_at: datetime, expires_at: datetime
    ) -> None:
        """Store a session, dropping every expired one first (the table stays small)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM dashboard_sessions WHERE expires_at <= %s", (created_at,))
            conn.execute(
                "INSERT INTO dashboard_sessions (token_hash, key_hash, created_at, expires_at) "
                "VALUES (%s, %s, %s, %s)",
                (token_hash, key_hash, created_at, expires_at),
            )

    def find_dashboard_session(self, token_hash: str, now: datetime) -> str | None:
        """The key hash of the session with this token hash, unless absent or expired."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT key_hash FROM dashboard_sessions WHERE token_hash = %s AND expires_at > %s",
                (token_hash, now),
            ).fetchone()
        return None if row is None else str(row[0])

    def delete_dashboard_session(self, token_hash: str) -> None:
        """End a session (nothing happens if there is none)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM dashboard_sessions WHERE token_hash = %s", (token_hash,))
