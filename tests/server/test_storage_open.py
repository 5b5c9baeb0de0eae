"""Opening storage from a URL, health pings, and how failures surface (StorageError)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from _storage_helpers import make_event, run_together

from mosaicstack_telemetry_server.storage import (
    StorageError,
    open_storage,
    redact_url,
    sqlite_path,
)
from mosaicstack_telemetry_server.storage.postgres import PostgresStorage
from mosaicstack_telemetry_server.storage.sqlite import SQLiteStorage

SECRET = "s3cr3t-Pa55"  # a made-up password that must never be echoed
UNREACHABLE = f"postgresql://mosaic:{SECRET}@127.0.0.1:1/telemetry"


# URLs


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///telemetry.db", "telemetry.db"),
        ("sqlite:///data/sub/telemetry.db", "data/sub/telemetry.db"),
        ("sqlite:////var/lib/mosaic/telemetry.db", "/var/lib/mosaic/telemetry.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_urls_name_their_path(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///", "sqlite://host/x.db", "sqlite:///x.db?mode=ro", "x.db"]
)
def test_sqlite_urls_without_a_usable_path_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="SQLite URL"):
        sqlite_path(url)


def test_relative_sqlite_path_is_created_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = open_storage("sqlite:///nested/dir/telemetry.db")
    try:
        assert isinstance(storage, SQLiteStorage)
        storage.migrate()
    finally:
        storage.close()
    assert (tmp_path / "nested" / "dir" / "telemetry.db").is_file()


def test_absolute_sqlite_path_gets_its_parent_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "telemetry.db"
    storage = open_storage(f"sqlite:///{target}")
    try:
        storage.migrate()
        assert repr(storage) == f"SQLiteStorage({str(target)!r})"
    finally:
        storage.close()
    assert target.is_file()


def test_in_memory_storage_works_across_threads() -> None:
    storage = open_storage("sqlite://:memory:")
    try:
        storage.migrate()
        run_together(3, lambda _: storage.insert_events([make_event()]))
        assert storage.count_events() == 3
    finally:
        storage.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres_schemes_open_postgres_storage(scheme: str) -> None:
    storage = open_storage(f"{scheme}://mosaic:{SECRET}@db.example/telemetry")
    try:
        assert isinstance(storage, PostgresStorage)
        assert SECRET not in repr(storage)
    finally:
        storage.close()


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://root:{SECRET}@localhost/db",
        f"POSTGRESQL://root:{SECRET}@localhost/db",
        f"http://user:{SECRET}@example.com/",
        "telemetry.db",
        "",
    ],
)
def test_unknown_scheme_names_the_accepted_ones_and_hides_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///") as refused:
        open_storage(url)
    assert "postgresql://" in str(refused.value)
    assert SECRET not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [f"postgresql://mosaic:{SECRET}@host/db?bogus=1", f"postgresql://mosaic:{SECRET}@ho st/db"],
)
def test_malformed_postgres_url_is_refused_without_its_password(url: str) -> None:
    # libpq's own message would quote the offending part of the URL: it is not passed on.
    with pytest.raises(ValueError, match="invalid PostgreSQL URL") as refused:
        PostgresStorage(url)
    assert SECRET not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (f"postgresql://mosaic:{SECRET}@db:5432/t", "postgresql://mosaic:***@db:5432/t"),
        (f"postgres://:{SECRET}@db/t", "postgres://:***@db/t"),
        ("postgresql://mosaic@db/t", "postgresql://mosaic@db/t"),
        (f"postgresql://db/t?user=u&password={SECRET}", "postgresql://db/t?user=u&password=***"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        (f"postgresql://u:{SECRET}@[::1/t", "postgresql://***"),
    ],
)
def test_redact_url_hides_passwords(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


# ping and errors


def test_ping_is_true_for_a_working_database(database_url: str) -> None:
    storage = open_storage(database_url)
    try:
        assert storage.ping() is True
    finally:
        storage.close()


def test_ping_is_false_for_an_unreachable_postgres() -> None:
    storage = PostgresStorage(UNREACHABLE, ping_timeout=0.3, timeout=0.3)
    try:
        assert storage.ping() is False
    finally:
        storage.close()


def test_unreachable_postgres_raises_storage_error_without_the_password() -> None:
    storage = PostgresStorage(UNREACHABLE, timeout=0.3)
    try:
        with pytest.raises(StorageError) as failed:
            storage.insert_events([make_event()])
        assert SECRET not in str(failed.value)
    finally:
        storage.close()


def test_requests_to_an_unreachable_postgres_fail_within_seconds_by_default() -> None:
    storage = PostgresStorage(UNREACHABLE)  # the server's own pool settings
    try:
        started = time.monotonic()
        with pytest.raises(StorageError):
            storage.count_events()
        # The pool gives up waiting for a connection after 3 s, so an outage cannot hold a
        # worker thread per request for long.
        assert time.monotonic() - started < 5
    finally:
        storage.close()


def test_ping_is_false_for_a_sqlite_path_that_cannot_be_opened(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    storage = open_storage(f"sqlite:///{blocker}/telemetry.db")
    try:
        assert storage.ping() is False
        with pytest.raises(StorageError, match="unavailable"):
            storage.migrate()
    finally:
        storage.close()


def test_ping_is_false_for_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(4096))
    storage = open_storage(f"sqlite:///{garbage}")
    try:
        assert storage.ping() is False
        with pytest.raises(StorageError, match="SQLite error"):
            storage.count_events()
    finally:
        storage.close()


def test_unmigrated_database_raises_storage_error(database_url: str) -> None:
    storage = open_storage(database_url)
    try:
        with pytest.raises(StorageError):
            storage.count_events()
        # The failure left the connection usable.
        storage.migrate()
        assert storage.count_events() == 0
    finally:
        storage.close()


def test_closed_storage_raises_storage_error_and_pings_false(database_url: str) -> None:
    storage = open_storage(database_url)
    storage.migrate()
    storage.close()
    assert storage.ping() is False
    with pytest.raises(StorageError, match="closed"):
        storage.count_events()
    storage.close()  # closing twice is harmless


def test_closing_an_unopened_postgres_storage_is_harmless() -> None:
    storage = PostgresStorage(UNREACHABLE)
    storage.close()
    assert storage.ping() is False


def test_locked_sqlite_database_raises_storage_error_after_the_busy_timeout(
    sqlite_url: str,
) -> None:
    storage = SQLiteStorage(sqlite_path(sqlite_url), busy_timeout=0.2)
    storage.migrate()
    holder = sqlite3.connect(sqlite_path(sqlite_url), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StorageError, match="locked"):
            storage.insert_events([make_event()])
        holder.execute("ROLLBACK")
        assert storage.insert_events([make_event()]) == 1
    finally:
        holder.close()
        storage.close()


def test_all_sqlite_connections_busy_raises_storage_error(sqlite_url: str) -> None:
    storage = SQLiteStorage(sqlite_path(sqlite_url), busy_timeout=0.2, max_connections=1)
    storage.migrate()
    try:
        with storage._pool.connection(), pytest.raises(StorageError, match="busy"):
            storage.count_events()
    finally:
        storage.close()


def test_new_file_locked_by_another_process_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # e.g. another server process creating the schema
    release = threading.Timer(0.2, holder.execute, args=("ROLLBACK",))
    storage = SQLiteStorage(path, busy_timeout=10)
    try:
        release.start()
        storage.migrate()
        assert storage.schema_version() >= 1
    finally:
        release.join(10)
        holder.close()
        storage.close()


def test_new_file_locked_past_the_busy_timeout_raises_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    storage = SQLiteStorage(path, busy_timeout=0.1)
    try:
        assert storage.ping() is False
        with pytest.raises(StorageError, match="locked"):
            storage.migrate()
    finally:
        holder.close()
        storage.close()
