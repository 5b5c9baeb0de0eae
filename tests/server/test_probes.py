"""`/livez` and `/readyz`: alive is not ready; ready means reachable, migrated and writable."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import httpx
from _api_helpers import RELAXED, Served

from mosaicstack_telemetry_server.runner import serve_in_thread
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import open_storage
from mosaicstack_telemetry_server.storage._common import load_migrations
from mosaicstack_telemetry_server.storage.sqlite import SQLiteStorage


def test_livez_and_readyz_are_200_on_a_healthy_server(server: Served) -> None:
    assert httpx.get(server.url + "/livez").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok"}


def test_unreachable_storage_is_alive_but_not_ready() -> None:
    url = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
    with serve_in_thread(ServerSettings(database_url=url, **RELAXED)) as base:
        assert httpx.get(base + "/livez").status_code == 200
        ready = httpx.get(base + "/readyz", timeout=30)
    assert ready.status_code == 503
    assert ready.headers["Retry-After"] == "5"
    assert ready.json()["error"] == {"code": "unavailable", "message": "storage cannot be reached"}


def test_a_schema_newer_than_the_server_is_not_ready(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'telemetry.db'}"
    storage = open_storage(url)
    storage.migrate()
    storage.close()
    with serve_in_thread(ServerSettings(database_url=url, **RELAXED)) as base:
        assert httpx.get(base + "/readyz").status_code == 200
        with sqlite3.connect(tmp_path / "telemetry.db") as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (999, '2026-01-01')")
        ready = httpx.get(base + "/readyz")
    assert ready.status_code == 503
    assert "schema version 999" in ready.json()["error"]["message"]


def _execute(url: str, statement: str) -> None:
    """Run one statement on the database behind `url` as another client would."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(statement)
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement.encode())


def test_each_backend_knows_the_schema_version_its_migrations_reach(database_url: str) -> None:
    backend = "sqlite" if database_url.startswith("sqlite:") else "postgres"
    storage = open_storage(database_url)
    try:
        latest = storage.latest_schema_version()
        assert latest == len(load_migrations(backend))
        storage.migrate(target=1)
        assert (storage.schema_version(), storage.latest_schema_version()) == (1, latest)
        storage.migrate()
        assert storage.schema_version() == latest
    finally:
        storage.close()


def test_readyz_names_both_schema_versions_on_each_backend(database_url: str) -> None:
    with serve_in_thread(ServerSettings(database_url=database_url, **RELAXED)) as base:
        assert httpx.get(base + "/readyz").status_code == 200
        _execute(
            database_url,
            "INSERT INTO schema_migrations (version, applied_at) VALUES (999, '2026-01-01')",
        )
        ready = httpx.get(base + "/readyz", timeout=30)
    latest = len(load_migrations("sqlite"))
    assert ready.status_code == 503
    assert ready.json()["error"]["message"] == (f"schema version 999, this server needs {latest}")


def test_storage_that_cannot_take_a_write_is_not_ready_while_health_stays_up(
    tmp_path: Path,
) -> None:
    path = tmp_path / "telemetry.db"
    storage = SQLiteStorage(path, busy_timeout=0.2)
    storage.migrate()
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        # Another process writing forever stands in for a full disk: reads work, writes fail.
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(30)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=hold_the_write_lock)
    try:
        with serve_in_thread(ServerSettings(database_url=f"sqlite:///{path}", **RELAXED),
                             storage=storage) as base:  # fmt: skip
            assert httpx.get(base + "/readyz").status_code == 200
            holder.start()
            assert locked.wait(10)
            ready = httpx.get(base + "/readyz", timeout=30)
            assert ready.status_code == 503
            assert "cannot take writes" in ready.json()["error"]["message"]
            assert httpx.get(base + "/v1/health").status_code == 200
            release.set()
            holder.join(10)
            assert httpx.get(base + "/readyz").status_code == 200
    finally:
        release.set()
        if holder.is_alive():
            holder.join(10)
        storage.close()
