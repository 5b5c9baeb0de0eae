"""The embedded backend: one SQLite file in WAL mode, shared by threads and processes.

Each connection serves one thread at a time (a small pool), so the app's worker threads never
share a connection; several server processes may open the same file, SQLite's locks and the
busy timeout sort them out. Writes run in `BEGIN IMMEDIATE` transactions: they take the write
lock up front, so two writers queue on the busy timeout instead of failing half-way with
"database is locked" when a read transaction tries to upgrade.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server.storage._budgets import SQLiteBudgets
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
    iso_utc,
    load_migrations,
    pending_migrations,
    stats_row,
    stats_values,
)
from mosaicstack_telemetry_server.storage._rollup_fold import FoldRows, fold_rows
from mosaicstack_telemetry_server.storage._rollups import (
    BLOCK_DAYS,
    FOLD_LIMIT,
    check_fold_limit,
    legacy_daily,
    upsert_statements,
)
from mosaicstack_telemetry_server.storage._sqlite_checkpoint import (
    INTERVAL_SECONDS as CHECKPOINT_SECONDS,
)
from mosaicstack_telemetry_server.storage._sqlite_checkpoint import WalCheckpointer
from mosaicstack_telemetry_server.storage._sqlite_otlp import SQLiteOtlp
from mosaicstack_telemetry_server.storage._sqlite_pool import ConnectionPool
from mosaicstack_telemetry_server.storage._sqlite_retention import SQLiteRetention
from mosaicstack_telemetry_server.storage._sqlite_summaries import SQLiteSummaries
from mosaicstack_telemetry_server.storage._usage_reads import UsageReads
from mosaicstack_telemetry_server.storage._usage_sql import Dialect
from mosaicstack_telemetry_server.storage.base import (
    ApiKeyRecord,
    KeyRole,
    PartitionSnapshot,
    StatsKey,
    StatsRow,
    StorageError,
)
from mosaicstack_telemetry_server.token_sketch import bucket_of

__all__ = ["SQLiteStorage"]

# SQL is spelled out in full (no formatting at all); column lists follow _common's constants.
_INSERT_EVENT = (
    "INSERT INTO events (id, instance_id, event_id, schema_version, timestamp, task_duration_ms, "
    "task_type, complexity, harness, model, provider, estimated_input_tokens, "
    "estimated_output_tokens, actual_input_tokens, actual_output_tokens, "
    "estimated_cost_usd_micros, actual_cost_usd_micros, quality_gate_passed, quality_gates_run, "
    "quality_gates_failed, context_compactions, context_rotations, context_utilization_final, "
    "outcome, retry_count, language, repo_size_category, project, branch, user_name, "
    "cache_read_tokens, cache_write_tokens, reasoning_tokens, received_at) VALUES (?, ?, ?, ?, "
    "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (instance_id, event_id) DO NOTHING"
)
_BUMP_VERSION = (
    "INSERT INTO partition_versions (task_type, version) VALUES (?, 1) "
    "ON CONFLICT (task_type) DO UPDATE SET version = partition_versions.version + 1"
)
_SELECT_EVENT = (
    "SELECT instance_id, event_id, schema_version, timestamp, task_duration_ms, task_type, "
    "complexity, harness, model, provider, estimated_input_tokens, estimated_output_tokens, "
    "actual_input_tokens, actual_output_tokens, estimated_cost_usd_micros, "
    "actual_cost_usd_micros, quality_gate_passed, quality_gates_run, quality_gates_failed, "
    "context_compactions, context_rotations, context_utilization_final, outcome, retry_count, "
    "language, repo_size_category, project, branch, user_name, cache_read_tokens, "
    "cache_write_tokens, reasoning_tokens FROM events WHERE instance_id = ? AND event_id = ?"
)
_SELECT_PARTITION = (
    "SELECT model, provider, complexity, actual_input_tokens, actual_output_tokens, "
    "actual_cost_usd_micros, task_duration_ms, estimated_input_tokens, estimated_output_tokens, "
    "quality_gate_passed, outcome FROM events WHERE task_type = ?"
)
_INSERT_STATS = (
    "INSERT INTO prediction_stats (level, task_type, model, provider, complexity, sample_size, "
    "stats, computed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# One fixed statement for any number of keys: they arrive as one JSON array of 5-tuples.
_SELECT_STATS = (
    "SELECT s.level, s.task_type, s.model, s.provider, s.complexity, s.sample_size, s.stats, "
    "s.computed_at FROM json_each(?) AS k JOIN prediction_stats AS s ON s.task_type = "
    "json_extract(k.value, '$[1]') AND s.level = json_extract(k.value, '$[0]') AND s.model = "
    "json_extract(k.value, '$[2]') AND s.provider = json_extract(k.value, '$[3]') AND "
    "s.complexity = json_extract(k.value, '$[4]')"
)
_SELECT_LEVEL_STATS = (
    "SELECT level, task_type, model, provider, complexity, sample_size, stats, computed_at "
    "FROM prediction_stats WHERE level = ?"
)
_SELECT_API_KEY = (
    "SELECT key_id, instance_id, label, created_at, revoked_at, key_hash, role FROM api_keys "
    "WHERE key_hash = ?"
)
_LIST_API_KEYS = (
    "SELECT key_id, instance_id, label, created_at, revoked_at, key_hash, role FROM api_keys "
    "ORDER BY created_at, key_id"
)


# SQLite's default: a commit that takes the WAL past this many pages checkpoints it.
_AUTOCHECKPOINT_PAGES = 1000
_WAL_SIZE_LIMIT = 64 * 1024 * 1024
_DIALECT = Dialect(
    placeholder="?",
    event_day="substr(timestamp, 1, 10)",
    day_index="substr(timestamp, 1, 10)",  # events_day_idx (schema 13)
    instance_filter="+instance_id",
    event_instance="instance_id",
    successes="sum(outcome = 'success')",
    gate_passes="sum(quality_gate_passed)",
    log_bucket="token_bucket({})",
    # The day's Julian day number less 1970-01-01's is its days since the epoch.
    block_of=(
        "date({0}, '-' || ((CAST(julianday({0}) - 2440587.5 AS INTEGER) % BLOCK + BLOCK) % BLOCK) "
        "|| ' days')"
    ).replace("BLOCK", str(BLOCK_DAYS)),
    # Ids are given in commit order (one writer at a time): the tail is every id after the
    # cursor, a range of the primary key. The subquery is flattened into its part (no LIMIT or
    # OFFSET to stop it): SQLite then reads the few columns summed, not every column into a
    # co-routine (half the time of an answer that reads a long tail); the rowid range is the
    # one index it can use there (no index holds the exact time, `+instance_id` none).
    unfolded_events=(
        "(SELECT * FROM events WHERE id > (SELECT last_id FROM usage_cursor)) AS events"
    ),
)
# The id after which a batch's new events are numbered: never one given before (see migration
# 0008), so a cursor or a fold's chunk never meets a new event among ids it has passed.
_LAST_ID = "SELECT max(issued, coalesce((SELECT max(id) FROM events), 0)) FROM usage_cursor"
# The events one fold takes (at most FOLD_LIMIT after a cursor): how many, and the last id.
_FOLD_RANGE = (
    "SELECT count(*), max(id) FROM (SELECT id FROM events WHERE id > ? ORDER BY id LIMIT ?)"
)
# The fold's look, twice a second: the ids after the cursor, from the greatest id (one step
# down the table's B-tree) rather than counted (a walk over every waiting row: 8 ms at 40,000).
# An id left unused by a resent event, or an event pruned before it was folded, makes it count
# a few too many: the look only decides when to fold, and the fold counts what it takes.
_WAITING = (
    "SELECT min(?, max(0, coalesce((SELECT max(id) FROM events), 0) - last_id)) FROM usage_cursor"
)


def _bound(value: Any) -> Any:
    """A usage query's parameter as stored in SQLite: text for times, days and UUIDs."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date | UUID):
        return str(value)
    return value


@contextlib.contextmanager
def _driver_errors() -> Iterator[None]:
    """Turn "cannot reach or operate the database" failures into StorageError."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(f"SQLite error: {exc}") from exc
    except OSError as exc:  # the database's folder could not be created
        raise StorageError(f"SQLite database unavailable: {exc.strerror or exc}") from exc


# What a fold reads of each event (`_rollup_fold.FOLD_COLUMNS`); a condition follows.
_FOLD_SELECT = (
    "SELECT substr(timestamp, 1, 10), instance_id, task_type, complexity, harness, model, "
    "provider, outcome, coalesce(project, ''), coalesce(branch, ''), coalesce(user_name, ''), "
    "actual_input_tokens, actual_output_tokens, actual_cost_usd_micros, task_duration_ms, "
    "quality_gate_passed, coalesce(cache_read_tokens, 0), coalesce(cache_write_tokens, 0), "
    "coalesce(reasoning_tokens, 0) FROM events WHERE "
)
# The same of a database migrated to schema 6 to 10, whose events may lack 1.1's columns.
_LEGACY_FOLD_SELECT = (
    "SELECT substr(timestamp, 1, 10), instance_id, task_type, complexity, harness, model, "
    "provider, outcome, '', '', '', actual_input_tokens, actual_output_tokens, "
    "actual_cost_usd_micros, task_duration_ms, quality_gate_passed, 0, 0, 0 FROM events WHERE "
)
_CHUNK = "id > ? AND id <= ?"
_COUNT_CHUNK = "SELECT count(*) FROM events WHERE id > ? AND id <= ?"


def _values(columns: tuple[str, ...]) -> str:
    return f"VALUES ({', '.join('?' * len(columns))})"


_UPSERTS = upsert_statements(_values)
_LEGACY_UPSERTS = upsert_statements(_values, legacy=True)


class SQLiteStorage(SQLiteSummaries, SQLiteRetention, SQLiteOtlp, UsageReads, SQLiteBudgets):
    """Storage in one SQLite file (or `:memory:`, then with a single connection)."""

    _dialect = _DIALECT
    _bind = staticmethod(_bound)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 10.0,
        max_connections: int = 8,
        checkpoint_interval: float = CHECKPOINT_SECONDS,
    ) -> None:
        self._path = os.fspath(path)
        self._memory = self._path == ":memory:"
        self._busy_timeout = busy_timeout
        # Every connection to ":memory:" is a database of its own: keep exactly one.
        size = 1 if self._memory else max_connections
        self._pool = ConnectionPool(self._connect, size, busy_timeout)
        # This process's writers take turns here (`_write_turn`).
        self._writer = threading.Lock()
        self._migrations = load_migrations("sqlite")
        # While a server runs, its checkpointer copies the WAL back and the pool's connections
        # never do (`start_maintenance`); otherwise (commands, tests) every commit may.
        self._autocheckpoint = _AUTOCHECKPOINT_PAGES
        self._checkpointer = WalCheckpointer(self._connect, checkpoint_interval)

    def __repr__(self) -> str:
        return f"SQLiteStorage({self._path!r})"

    @property
    def path(self) -> str:
        """The database file (or ":memory:")."""
        return self._path

    def _connect(self) -> sqlite3.Connection:
        if not self._memory:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (the module's implicit
        # transactions would start a deferred one). `timeout` is SQLite's busy timeout.
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,  # the pool guarantees one thread at a time
        )
        try:
            self._enable_wal(conn)
            # In WAL mode NORMAL loses no integrity on a crash, only possibly the last
            # transactions before a power loss (not an application crash); FULL would fsync
            # on every commit and cost most of the ingestion speed.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # 16 MiB page cache per connection (default 2 MiB): the unique index on random
            # UUIDs is touched all over at every batch.
            conn.execute("PRAGMA cache_size = -16384")
            conn.execute(f"PRAGMA wal_autocheckpoint = {int(self._autocheckpoint)}")
            # A log that a burst grew past this is cut back to it once checkpointed in full.
            conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
            # The rollups' statements bucket token counts with the very function the
            # percentiles are read with (SQLite's ln() is an optional build feature).
            conn.create_function("token_bucket", 1, bucket_of, deterministic=True)
        except BaseException:
            conn.close()
            raise
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is
        # locked" at once (no busy handler) while another connection holds one: so several
        # processes starting on a new file retry here until the busy timeout.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction: IMMEDIATE for writes, deferred (one read snapshot) for reads."""
        turn = self._write_turn() if write else contextlib.nullcontext()
        with _driver_errors(), self._pool.connection() as conn, turn:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
                # Inside: a COMMIT that fails (a full disk) is rolled back too, so that the
                # caller's error means nothing was stored and the connection goes back clean.
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _write_turn(self) -> Iterator[None]:
        """One write transaction of this process at a time, waiting on a lock that wakes a
        waiting writer as the last one ends (in no set order, as SQLite's lock). Left to SQLite,
        writers waiting for its write lock poll it from the busy handler, sleeping 1, 2, 5 ...
        up to 100 ms between tries: under a burst of concurrent batches the lock sat free while
        they slept (8 clients on one server: about 10% of the events per second). Other
        processes' writers still meet at SQLite's lock."""
        if not self._writer.acquire(timeout=self._busy_timeout):
            raise sqlite3.OperationalError(
                f"database is locked: this process's other writers held it for "
                f"{self._busy_timeout:g} s"
            )
        try:
            yield
        finally:
            self._writer.release()

    # schema

    def migrate(self, target: int | None = None) -> None:
        """Apply every pending migration up to `target` (default: the latest) at once.

        All of it runs in one IMMEDIATE transaction, so a second process migrating at the
        same time waits, then finds nothing left to do.
        """
        with self._transaction(write=True) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            pending = pending_migrations(self._migrations, applied, target)
            refold = any(m.version == USAGE_ATTRIBUTION_VERSION for m in pending)
            for migration in pending:
                if migration.version == USAGE_CURSOR_VERSION and not refold:
                    # Before the statements, which drop the list of pending events.
                    self._add_rollups(conn, "id IN (SELECT id FROM usage_pending)", (), legacy=True)
                for statement in migration.statements:
                    conn.execute(statement)
                if migration.version == USAGE_ROLLUPS_VERSION and not refold:
                    self._backfill_rollups(conn)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (migration.version, iso_utc(datetime.now(UTC))),
                )

    def schema_version(self) -> int:
        """The newest migration applied; 0 for an empty database."""
        with self._transaction(write=False) as conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
            if exists is None:
                return 0
            return int(
                conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[
                    0
                ]
            )

    def latest_schema_version(self) -> int:
        """The version of this server's newest migration."""
        return self._migrations[-1].version

    def ping(self) -> bool:
        """Whether the file can be opened and read as a database right now."""
        try:
            with self._transaction(write=False) as conn:
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except Exception:
            return False
        return True

    def start_maintenance(self) -> None:
        """Checkpoint the WAL from a thread of this storage's own from now on, and no longer in
        the commits of the pool's connections (`_sqlite_checkpoint.py`). For a server's life."""
        if self._memory:  # no WAL, and a second connection would be another database
            return
        self._autocheckpoint = 0
        # Connections opened before keep their setting: let new ones take their place.
        self._pool.discard_idle()
        self._checkpointer.start()

    def stop_maintenance(self, timeout: float | None = 5.0) -> bool:
        """Stop the checkpointer after a last checkpoint; commits checkpoint again as before.
        True when it stopped within `timeout`."""
        if self._memory:
            return True
        self._autocheckpoint = _AUTOCHECKPOINT_PAGES
        self._pool.discard_idle()
        return self._checkpointer.stop(timeout)

    def close(self) -> None:
        """Close every connection; the storage cannot be used afterwards."""
        self._checkpointer.stop()
        self._pool.close()

    # events

    def insert_events(self, events: Sequence[TaskCompletionEvent]) -> int:
        """Store new events and bump their task types' versions, in one transaction (the usage
        rollups are folded later, by `fold_pending_usage`)."""
        check_batch_size(len(events))
        if not events:
            return 0
        received_at = iso_utc(datetime.now(UTC))
        rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        for event in events:
            row = event_row(event)
            key = (str(row[0]), str(row[1]))
            if key not in rows:  # the first of an id repeated within the batch is stored
                rows[key] = (*key, row[2], iso_utc(row[3]), *row[4:], received_at)
        by_task_type: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows.values():
            by_task_type.setdefault(row[5], []).append(row)
        stored = 0
        with self._transaction(write=True) as conn:
            # The write lock is held: the new rows get the ids after the greatest one given.
            # An event stored already is skipped by the unique key (ON CONFLICT DO NOTHING)
            # and leaves its id unused: a gap, harmless, where asking first which ids are
            # stored would look every key up twice.
            (last,) = conn.execute(_LAST_ID).fetchone()
            conn.execute("UPDATE usage_cursor SET issued = ?", (last + len(rows),))
            for task_type in sorted(by_task_type):
                numbered = [(last + n, *row) for n, row in enumerate(by_task_type[task_type], 1)]
                last += len(numbered)
                new = conn.executemany(_INSERT_EVENT, numbered).rowcount
                if new > 0:  # a resent batch changes no partition: no rebuild for it
                    conn.execute(_BUMP_VERSION, (task_type,))
                    stored += new
        return stored

    def usage_waiting(self, limit: int) -> int:
        """How many events the usage cursor has not passed, up to `limit` (from the ids: an
        upper bound where ids were left unused or waiting events pruned)."""
        with self._transaction(write=False) as conn:
            (count,) = conn.execute(_WAITING, (limit,)).fetchone()
        return int(count)

    def fold_pending_usage(self, min_events: int = 1, limit: int = FOLD_LIMIT) -> int:
        """Add up to `limit` events after the usage cursor to the rollups and move the
        cursor past them, unless fewer than `min_events` are there; returns how many were
        folded.

        The chunk is read and summed in a read transaction, so the write lock that ingestion
        waits for is held only while the sums are added. Ids are never given twice, so the
        chunk is still the same events if the cursor has not moved and none of them was
        pruned meanwhile (then it is summed again under the lock).
        """
        with self._transaction(write=False) as conn:
            (last,) = conn.execute("SELECT last_id FROM usage_cursor").fetchone()
            count, upto = conn.execute(_FOLD_RANGE, (last, check_fold_limit(limit))).fetchone()
            if not count or count < min_events:
                return 0
            events = conn.execute(_FOLD_SELECT + _CHUNK, (last, upto)).fetchall()
        rows = fold_rows(events)
        with self._transaction(write=True) as conn:
            (moved,) = conn.execute("SELECT last_id FROM usage_cursor").fetchone()
            if moved != last:
                return 0  # another process folded this chunk meanwhile
            (still,) = conn.execute(_COUNT_CHUNK, (last, upto)).fetchone()
            if still == count:
                self._upsert(conn, rows)
            else:
                count, upto = self._fold_after(conn, last, limit)
            conn.execute("UPDATE usage_cursor SET last_id = ?", (upto,))
        return int(count)

    def _fold_after(
        self, conn: sqlite3.Connection, last: int, limit: int = FOLD_LIMIT, *, legacy: bool = False
    ) -> tuple[int, int]:
        """Add up to `limit` events with ids above `last` to the rollups: (count, last id)."""
        count, upto = conn.execute(_FOLD_RANGE, (last, limit)).fetchone()
        if count:
            self._add_rollups(conn, _CHUNK, (last, upto), legacy=legacy)
        return int(count), int(upto or last)

    @staticmethod
    def _add_rollups(
        conn: sqlite3.Connection, source: str, params: Sequence[Any], *, legacy: bool = False
    ) -> None:
        """Add the events selected by `source` (a condition on `events`) to the rollups
        (`legacy`: to the rollups of schema 6 to 10, while migrating to them)."""
        select = _LEGACY_FOLD_SELECT if legacy else _FOLD_SELECT
        rows = fold_rows(conn.execute(select + source, params).fetchall())
        if legacy:
            rows = FoldRows(legacy_daily(rows.daily), rows.buckets, rows.blocks)
        SQLiteStorage._upsert(conn, rows, _LEGACY_UPSERTS if legacy else _UPSERTS)

    @staticmethod
    def _upsert(
        conn: sqlite3.Connection, rows: FoldRows, statements: Sequence[str] = _UPSERTS
    ) -> None:
        """Add a fold's rows to the rollup tables."""
        for table_rows, statement in zip(
            (rows.daily, rows.buckets, rows.blocks), statements, strict=True
        ):
            conn.executemany(statement, table_rows)

    def _backfill_rollups(self, conn: sqlite3.Connection) -> None:
        """Fold every stored event into the (new, empty) rollups of schema 6, FOLD_LIMIT at
        a time."""
        last = 0
        while True:
            count, last = self._fold_after(conn, last, legacy=True)
            if not count:
                return

    def get_event(self, instance_id: UUID, event_id: UUID) -> TaskCompletionEvent | None:
        """The stored event with this id from this instance, or None."""
        with self._transaction(write=False) as conn:
            row = conn.execute(_SELECT_EVENT, (str(instance_id), str(event_id))).fetchone()
        return None if row is None else event_from_row(row)

    def count_events(self) -> int:
        """Number of stored events."""
        with self._transaction(write=False) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

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
        with self._transaction(write=True) as conn:
            try:
                conn.execute(
                    "INSERT INTO api_keys (key_id, key_hash, instance_id, label, created_at, role) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        key_id,
                        key_hash,
                        None if instance_id is None else str(instance_id),
                        label,
                        iso_utc(record.created_at),
                        role,
                    ),
                )
            except sqlite3.IntegrityError:
                raise ValueError("an API key with this key_id or hash already exists") from None
        return record

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The key with this hash, revoked or not, or None."""
        with self._transaction(write=False) as conn:
            row = conn.execute(_SELECT_API_KEY, (key_hash,)).fetchone()
        return None if row is None else api_key_record(row)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, oldest first."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(_LIST_API_KEYS).fetchall()
        return [api_key_record(row) for row in rows]

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key; False if no active key has that id."""
        with self._transaction(write=True) as conn:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (iso_utc(datetime.now(UTC)), key_id),
            )
            return cursor.rowcount > 0

    # prediction statistics

    def partition_versions(self) -> dict[str, int]:
        """Data version of each task type that has events."""
        with self._transaction(write=False) as conn:
            return dict(conn.execute("SELECT task_type, version FROM partition_versions"))

    def stats_versions(self) -> dict[str, tuple[int, datetime]]:
        """For each task type with stored statistics: their data version and computation time."""
        with self._transaction(write=False) as conn:
            rows = conn.execute("SELECT task_type, version, computed_at FROM stats_versions")
            return {
                task_type: (version, datetime.fromisoformat(at)) for task_type, version, at in rows
            }

    def read_partition(self, task_type: str) -> PartitionSnapshot:
        """Every event of a task type and its version, from one read transaction."""
        with self._transaction(write=False) as conn:
            found = conn.execute(
                "SELECT version FROM partition_versions WHERE task_type = ?", (task_type,)
            ).fetchone()
            rows = conn.execute(_SELECT_PARTITION, (task_type,)).fetchall()
        # quality_gate_passed comes back as 0/1; the snapshot promises a bool.
        rows = [(*row[:9], bool(row[9]), row[10]) for row in rows]
        return PartitionSnapshot(task_type, 0 if found is None else found[0], rows)

    def replace_stats(
        self, task_type: str, version: int, computed_at: datetime, rows: Sequence[StatsRow]
    ) -> bool:
        """Replace a task type's statistics unless ones of a version >= `version` are stored."""
        check_stats_rows(task_type, rows)
        with self._transaction(write=True) as conn:
            # Compare-and-set: the upsert changes nothing (rowcount 0) unless we are newer.
            cursor = conn.execute(
                "INSERT INTO stats_versions (task_type, version, computed_at) VALUES (?, ?, ?) "
                "ON CONFLICT (task_type) DO UPDATE "
                "SET version = excluded.version, computed_at = excluded.computed_at "
                "WHERE excluded.version > stats_versions.version",
                (task_type, version, iso_utc(computed_at)),
            )
            if cursor.rowcount == 0:
                return False
            conn.execute("DELETE FROM prediction_stats WHERE task_type = ?", (task_type,))
            conn.executemany(
                _INSERT_STATS,
                [(*values[:7], iso_utc(values[7])) for values in map(stats_values, rows)],
            )
        return True

    def touch_stats(self, task_type: str, version: int, computed_at: datetime) -> bool:
        """Re-stamp a task type's statistics of exactly `version` (never backwards in time)."""
        stamp = iso_utc(computed_at)
        with self._transaction(write=True) as conn:
            # Stored times are fixed-width UTC text, so `<` compares them as instants.
            cursor = conn.execute(
                "UPDATE stats_versions SET computed_at = ? "
                "WHERE task_type = ? AND version = ? AND computed_at < ?",
                (stamp, task_type, version, stamp),
            )
            if cursor.rowcount == 0:
                return False
            conn.execute(
                "UPDATE prediction_stats SET computed_at = ? WHERE task_type = ?",
                (stamp, task_type),
            )
        return True

    def get_stats(self, keys: Sequence[StatsKey]) -> dict[StatsKey, StatsRow]:
        """The stored statistics of the groups asked for, in one query."""
        wanted = json.dumps(
            [[k.level, k.task_type, k.model, k.provider, k.complexity] for k in set(keys)]
        )
        with self._transaction(write=False) as conn:
            rows = conn.execute(_SELECT_STATS, (wanted,)).fetchall()
        found = [stats_row(values) for values in rows]
        return {row.key: row for row in found}

    def stats_at_level(self, level: int) -> list[StatsRow]:
        """The stored statistics of every group of one fallback level, every task type."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(_SELECT_LEVEL_STATS, (level,)).fetchall()
        return [stats_row(values) for values in rows]

    # operations

    def pool_stats(self) -> dict[str, int]:
        """The connection pool's use (`max`, `open`, `in_use`, `waiting`), for /metrics."""
        return self._pool.stats()

    def probe_write(self) -> None:
        """Commit a real write that changes nothing, or raise StorageError (for /readyz).

        SQLite rewrites the row's page even when the value is unchanged, so a full disk or a
        read-only file fails here as it would for an event.
        """
        with self._transaction(write=True) as conn:
            conn.execute(
                "UPDATE schema_migrations SET applied_at = applied_at "
                "WHERE version = (SELECT MAX(version) FROM schema_migrations)"
            )

    # usage

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """One read-only query's rows (the usage reads of `UsageReads`)."""
        with self._transaction(write=False) as conn:
            return conn.execute(sql, params).fetchall()

    # dashboard sessions

    def create_dashboard_session(
        self, token_hash: str, key_hash: str, created_at: datetime, expires_at: datetime
    ) -> None:
        """Store a session, dropping every expired one first (the table stays small)."""
        with self._transaction(write=True) as conn:
            conn.execute(
                "DELETE FROM dashboard_sessions WHERE expires_at <= ?", (iso_utc(created_at),)
            )
            conn.execute(
                "INSERT INTO dashboard_sessions (token_hash, key_hash, created_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (token_hash, key_hash, iso_utc(created_at), iso_utc(expires_at)),
            )

    def find_dashboard_session(self, token_hash: str, now: datetime) -> str | None:
        """The key hash of the session with this token hash, unless absent or expired."""
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT key_hash FROM dashboard_sessions WHERE token_hash = ? AND expires_at > ?",
                (token_hash, iso_utc(now)),
            ).fetchone()
        return None if row is None else str(row[0])

    def delete_dashboard_session(self, token_hash: str) -> None:
        """End a session (nothing happens if there is none)."""
        with self._transaction(write=True) as conn:
            conn.execute("DELETE FROM dashboard_sessions WHERE token_hash = ?", (token_hash,))
