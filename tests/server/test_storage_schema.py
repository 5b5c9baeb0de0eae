"""Schema migrations: versioned, idempotent, safe when several processes start at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from _storage_helpers import make_event, run_together
from _usage_helpers import insert_raw

from mosaicstack_telemetry_server.storage import StorageError, open_storage, sqlite_path
from mosaicstack_telemetry_server.storage._common import (
    EVENT_COLUMNS,
    PARTITION_COLUMNS,
    STATS_COLUMNS,
    load_migrations,
    split_statements,
)

LATEST = len(load_migrations("sqlite"))


def _sql(url: str, query: str) -> list[tuple[object, ...]]:
    """Read the database behind the storage's back, with the driver itself."""
    if url.startswith("sqlite"):
        with sqlite3.connect(sqlite_path(url)) as conn:
            return conn.execute(query).fetchall()
    with psycopg.connect(url) as pg:
        return pg.execute(query.encode()).fetchall()


def _index_names(url: str) -> set[str]:
    if url.startswith("sqlite"):
        rows = _sql(url, "SELECT name FROM sqlite_master WHERE type = 'index'")
    else:
        rows = _sql(url, "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
    return {str(row[0]) for row in rows}


def test_both_backends_ship_the_same_migration_versions() -> None:
    sqlite = [(m.version, m.name) for m in load_migrations("sqlite")]
    postgres = [(m.version, m.name) for m in load_migrations("postgres")]
    assert sqlite == postgres
    assert LATEST >= 2


def test_fresh_database_is_at_version_zero(database_url: str) -> None:
    storage = open_storage(database_url)
    try:
        assert storage.schema_version() == 0
    finally:
        storage.close()


def test_migrate_reaches_the_latest_version_and_is_idempotent(database_url: str) -> None:
    storage = open_storage(database_url)
    try:
        storage.migrate()
        storage.migrate()
        assert storage.schema_version() == LATEST
        assert _sql(database_url, "SELECT version FROM schema_migrations ORDER BY version") == [
            (v,) for v in range(1, LATEST + 1)
        ]
    finally:
        storage.close()


def test_upgrade_from_version_one_keeps_data_and_adds_the_index(database_url: str) -> None:
    storage = open_storage(database_url)
    try:
        storage.migrate(target=1)
        assert storage.schema_version() == 1
        assert "api_keys_instance_id_idx" not in _index_names(database_url)
        event = make_event()
        # As a server of schema 1 stored it (today's insert_events also keeps rollups).
        insert_raw(database_url, [event])

        storage.migrate()
        assert storage.schema_version() == LATEST
        assert "api_keys_instance_id_idx" in _index_names(database_url)
        assert storage.get_event(event.instance_id, event.event_id) == event
    finally:
        storage.close()


def test_migrating_to_an_unknown_version_is_refused(database_url: str) -> None:
    storage = open_storage(database_url)
    try:
        with pytest.raises(ValueError, match="does not exist"):
            storage.migrate(target=LATEST + 1)
        assert storage.schema_version() == 0
    finally:
        storage.close()


def test_database_from_a_newer_server_is_refused(database_url: str) -> None:
    storage = open_storage(database_url)
    try:
        storage.migrate()
        storage.close()
        if database_url.startswith("sqlite"):
            insert = "INSERT INTO schema_migrations VALUES (999, '2030-01-01T00:00:00+00:00')"
            with sqlite3.connect(sqlite_path(database_url)) as conn:
                conn.execute(insert)
        else:
            with psycopg.connect(database_url) as pg:
                pg.execute("INSERT INTO schema_migrations (version) VALUES (999)")
        storage = open_storage(database_url)
        with pytest.raises(StorageError, match="newer than this server"):
            storage.migrate()
    finally:
        storage.close()


def test_threads_migrating_at_once_apply_each_migration_once(database_url: str) -> None:
    storages = [open_storage(database_url) for _ in range(4)]
    try:
        run_together(4, lambda i: storages[i].migrate())
        assert all(s.schema_version() == LATEST for s in storages)
        rows = _sql(database_url, "SELECT version FROM schema_migrations ORDER BY version")
        assert rows == [(v,) for v in range(1, LATEST + 1)]
    finally:
        for storage in storages:
            storage.close()


def test_processes_migrating_at_once_apply_each_migration_once(database_url: str) -> None:
    code = (
        "import sys\n"
        "from mosaicstack_telemetry_server.storage import open_storage\n"
        "s = open_storage(sys.argv[1]); s.migrate(); s.close()\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, database_url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for process in processes:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err.decode()
    rows = _sql(database_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert rows == [(v,) for v in range(1, LATEST + 1)]


def test_sqlite_database_is_in_wal_mode(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    try:
        storage.migrate()
    finally:
        storage.close()
    assert _sql(sqlite_url, "PRAGMA journal_mode") == [("wal",)]


def test_postgres_stores_bucket_blobs_without_trying_to_compress_them(postgres_url: str) -> None:
    # Schema 7: compressing them on every write was most of a refresh's write (and never
    # reached the ratio PostgreSQL keeps a compressed value for).
    storage = open_storage(postgres_url)
    try:
        storage.migrate()
    finally:
        storage.close()
    rows = _sql(
        postgres_url,
        "SELECT attname, attstorage FROM pg_attribute WHERE attrelid = "
        "'prediction_buckets'::regclass AND attname IN ('sketch', 'exact') ORDER BY attname",
    )
    assert rows == [("exact", "e"), ("sketch", "e")]


def test_sql_statements_use_the_shared_column_order() -> None:
    # The row conversions zip values with these tuples: the literal SQL must agree.
    from mosaicstack_telemetry_server.storage import postgres, sqlite

    for select_event, insert_events, select_partition, insert_stats in (
        (
            sqlite._SELECT_EVENT,
            sqlite._INSERT_EVENT,
            sqlite._SELECT_PARTITION,
            sqlite._INSERT_STATS,
        ),
        (
            postgres._SELECT_EVENT,
            postgres._INSERT_EVENTS,
            postgres._SELECT_PARTITION,
            postgres._INSERT_STATS,
        ),
    ):
        assert f"SELECT {', '.join(EVENT_COLUMNS)} FROM" in select_event
        # SQLite numbers the new rows itself (after both cursors), hence its leading id.
        assert f"{', '.join(EVENT_COLUMNS)}" in insert_events
        assert insert_events.startswith(
            ("INSERT INTO events (id, ", "WITH new AS (INSERT INTO events (instance_id, ")
        )
        assert f"SELECT {', '.join(PARTITION_COLUMNS)} FROM" in select_partition
        assert f"({', '.join(STATS_COLUMNS)})" in insert_stats


def test_migration_files_split_into_statements_without_comments() -> None:
    script = "-- a comment\nCREATE TABLE a (x int);\n\n  -- another\nCREATE INDEX i ON a (x);\n"
    assert split_statements(script) == ("CREATE TABLE a (x int)", "CREATE INDEX i ON a (x)")


def test_migrations_are_loaded_as_package_resources() -> None:
    migrations = load_migrations("postgres")
    assert [m.version for m in migrations] == list(range(1, LATEST + 1))
    assert any("CREATE TABLE events" in s for s in migrations[0].statements)


def test_many_servers_opening_a_new_sqlite_file_at_once_all_succeed(tmp_path: Path) -> None:
    # Switching a new file to WAL races between connections and SQLite answers some of them
    # "locked" without waiting; one round rarely hits it, a hundred mostly did before the
    # retry in SQLiteStorage._enable_wal.
    for round_number in range(100):
        url = f"sqlite:///{tmp_path / f'race{round_number}.db'}"
        storages = [open_storage(url) for _ in range(4)]
        try:
            run_together(4, lambda i: storages[i].migrate())  # noqa: B023 (joined here)
        finally:
            for storage in storages:
                storage.close()
