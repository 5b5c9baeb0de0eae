"""SQLite's write path under a server: the WAL checkpointed off the requests, the day index.

Ingestion on SQLite pays per page a commit writes to the WAL and per checkpoint that copies the
WAL back. A running server checkpoints from a thread of its own (`_sqlite_checkpoint.py`), and
the events' time index is on the day (schema 13), so that a batch spread over days dirties one
page per day; these tests pin both on real files.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from _api_helpers import wait_until
from _storage_helpers import make_event

from mosaicstack_telemetry_server.storage._project_tokens import _sample_sql
from mosaicstack_telemetry_server.storage._sqlite_checkpoint import WalCheckpointer
from mosaicstack_telemetry_server.storage._sqlite_retention import _COUNT, _EVENTS
from mosaicstack_telemetry_server.storage._usage_sql import plan_range, usage_sql
from mosaicstack_telemetry_server.storage.base import StorageError
from mosaicstack_telemetry_server.storage.sqlite import _DIALECT, _WAITING, SQLiteStorage, _bound

_HOUR = timedelta(hours=1)


def _fill(storage: SQLiteStorage, batches: int) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for b in range(batches):
        storage.insert_events(
            [make_event(timestamp=start + (b * 100 + i) * _HOUR) for i in range(100)]
        )


@contextlib.contextmanager
def _maintained(path: Path, interval: float) -> Iterator[SQLiteStorage]:
    """A migrated storage whose WAL is empty, its checkpointer started (closed after)."""
    storage = SQLiteStorage(path, checkpoint_interval=interval)
    try:
        storage.migrate()
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        storage.start_maintenance()  # its first checkpoint finds nothing to copy
        yield storage
    finally:
        storage.close()


def test_a_running_server_checkpoints_from_its_own_thread_not_in_commits(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    with _maintained(path, 3600) as storage:
        size = path.stat().st_size
        _fill(storage, 50)  # several times the 1,000 WAL pages a commit would checkpoint at
        assert path.stat().st_size == size, "a request's commit checkpointed the WAL"
        assert Path(f"{path}-wal").stat().st_size > 1000 * 4096

        assert storage.stop_maintenance()  # after one last checkpoint
        grown = path.stat().st_size
        assert grown > size

        _fill(storage, 50)  # without the thread, commits checkpoint again
        assert path.stat().st_size > grown
        assert storage.count_events() == 10_000


def test_the_checkpointer_copies_the_wal_back_while_it_runs(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    with _maintained(path, 0.05) as storage:
        size = path.stat().st_size
        _fill(storage, 20)
        wait_until(lambda: path.stat().st_size > size, what="the WAL copied back")
    with sqlite3.connect(path) as conn:  # closed cleanly: every event is in the file
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (2000,)


def test_an_in_memory_database_has_no_checkpointer() -> None:
    storage = SQLiteStorage(":memory:")
    try:
        storage.migrate()
        storage.start_maintenance()  # no WAL, and a second connection would be another database
        storage.insert_events([make_event()])
        assert storage.stop_maintenance()
        assert storage.count_events() == 1
    finally:
        storage.close()


def test_a_failing_checkpoint_is_logged_once_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "not-yet"
    checkpointer = WalCheckpointer(lambda: sqlite3.connect(folder / "wal.db"))
    with caplog.at_level(logging.DEBUG, logger="mosaicstack_telemetry_server"):
        assert not checkpointer.checkpoint_once()
        assert not checkpointer.checkpoint_once()
        folder.mkdir()
        assert checkpointer.checkpoint_once()
    levels = [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records]
    assert levels == [
        ("ERROR", "WAL checkpoint failed (will retry)"),
        ("DEBUG", "WAL checkpoint failed (will retry)"),
        ("INFO", "WAL checkpoints work again"),
    ]
    assert checkpointer.checkpoints == 1
    checkpointer.start()
    assert checkpointer.stop()


def test_the_checkpointer_refuses_a_zero_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        WalCheckpointer(lambda: sqlite3.connect(":memory:"), interval=0)


def _plan(conn: sqlite3.Connection, sql: str, params: list[object]) -> str:
    return " / ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


def test_every_reader_of_events_by_time_finds_them_by_the_day_index(tmp_path: Path) -> None:
    # The index is on an expression: a reader that spells it differently scans every event.
    path = tmp_path / "plan.db"
    storage = SQLiteStorage(path)
    try:
        storage.migrate()
    finally:
        storage.close()
    start, end = datetime(2026, 3, 1, 5, tzinfo=UTC), datetime(2026, 3, 9, 7, tzinfo=UTC)
    with sqlite3.connect(path) as conn:
        conn.create_function("token_bucket", 1, lambda tokens: 0)
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "events_day_idx" in indexes
        assert "events_timestamp_idx" not in indexes
        for rollups in (True, False):  # the edges; a range no cuboid holds, read whole
            sql, params = usage_sql(
                _DIALECT, plan_range(start, end, rollups=rollups), ["model"], None, _bound
            )
            plan = _plan(conn, sql, params)
            assert plan.count("USING INDEX events_day_idx") == (2 if rollups else 1), plan
            # the whole days' unfolded events: a range of ids after the fold's cursor
            assert ("USING INTEGER PRIMARY KEY (rowid>?)" in plan) == rollups, plan
        sql, params = _sample_sql(_DIALECT, _bound, None, (start, end), "acme/app", 1000)
        assert "USING INDEX events_day_idx" in _plan(conn, sql, params)  # a project's tokens
        cut = date(2026, 3, 2).isoformat()
        for sql, params in ((_COUNT, [cut]), (_EVENTS, [cut, 10])):
            assert "USING INDEX events_day_idx" in _plan(conn, sql, params)


def test_the_folds_look_reads_the_greatest_id_not_every_waiting_event(tmp_path: Path) -> None:
    # Twice a second, whatever the backlog: a walk over 40,000 waiting rows took 8 ms a look.
    path = tmp_path / "look.db"
    storage = SQLiteStorage(path)
    try:
        storage.migrate()
        with sqlite3.connect(path) as conn:
            plan = _plan(conn, _WAITING, [100])
        assert "SCAN events" not in plan, plan
        assert "SEARCH events" in plan, plan
        start = datetime(2026, 3, 1, tzinfo=UTC)
        first = [make_event(timestamp=start + i * _HOUR) for i in range(300)]
        assert storage.insert_events(first) == 300
        assert storage.usage_waiting(1_000) == 300
        assert storage.usage_waiting(120) == 120
        # A resent event leaves its id unused: the look counts it, the fold does not.
        again = [first[0], *(make_event(timestamp=start + i * _HOUR) for i in range(4))]
        assert storage.insert_events(again) == 4
        assert storage.usage_waiting(1_000) == 305
        assert storage.fold_pending_usage() == 304
        assert storage.usage_waiting(1_000) == 0
    finally:
        storage.close()


def test_writers_of_one_process_take_turns_and_each_batch_is_stored(tmp_path: Path) -> None:
    # Eight threads writing at once queue on the process's turn, not in SQLite's busy handler.
    storage = SQLiteStorage(tmp_path / "turns.db", busy_timeout=30)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    try:
        storage.migrate()
        errors: list[BaseException] = []

        def write(worker: int) -> None:
            try:
                for batch in range(10):
                    first = (worker * 10 + batch) * 50
                    events = [make_event(timestamp=start + (first + i) * _HOUR) for i in range(50)]
                    assert storage.insert_events(events) == 50
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        assert storage.count_events() == 4_000
        with sqlite3.connect(tmp_path / "turns.db") as conn:
            assert conn.execute("SELECT min(id), max(id) FROM events").fetchone() == (1, 4_000)
    finally:
        storage.close()


def test_a_writer_kept_waiting_past_the_busy_timeout_is_a_storage_error(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "held.db", busy_timeout=0.2)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with storage._transaction(write=True):
            holding.set()
            release.wait(10)

    try:
        storage.migrate()
        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(10)
        with pytest.raises(StorageError, match=r"other writers held it for 0\.2 s"):
            storage.insert_events([make_event()])
        release.set()
        holder.join(10)
        assert storage.insert_events([make_event()]) == 1  # the turn is free again
    finally:
        release.set()
        storage.close()
