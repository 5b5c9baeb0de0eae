"""Fixtures of the API tests: a real server (uvicorn on loopback) over a real database."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from _api_helpers import Served, serve

from mosaicstack_telemetry_server.storage import Storage, open_storage


@pytest.fixture
def storage(database_url: str) -> Iterator[Storage]:
    """A migrated storage on each backend in turn (SQLite file, PostgreSQL schema)."""
    store = open_storage(database_url)
    store.migrate()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def server(database_url: str) -> Iterator[Served]:
    """A server on each backend in turn (SQLite file, PostgreSQL schema)."""
    with serve(database_url) as served:
        yield served


@pytest.fixture
def sqlite_server(sqlite_url: str) -> Iterator[Served]:
    """A server on a SQLite file (for behaviour that does not depend on the backend)."""
    with serve(sqlite_url) as served:
        yield served


@pytest.fixture
def api(server: Served) -> httpx.Client:
    """A client of `server` with a valid key."""
    return server.client()


@pytest.fixture
def sqlite_api(sqlite_server: Served) -> httpx.Client:
    """A client of `sqlite_server` with a valid key."""
    return sqlite_server.client()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One SQLite-backed server for a whole module, for tests that leave no state they read."""
    path = tmp_path_factory.mktemp("shared") / "telemetry.db"
    with serve(f"sqlite:///{path}") as served:
        yield served


@pytest.fixture(scope="module")
def shared_api(shared_server: Served) -> httpx.Client:
    """A client of `shared_server` with a valid key."""
    return shared_server.client()
