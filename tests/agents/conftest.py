"""Fixtures of the agents tests: a real server and a temporary HOME pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _agents_helpers import Env, Server, make_env, served_database


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A server on a fresh SQLite file."""
    with served_database(tmp_path / "telemetry.db") as served:
        yield served


@pytest.fixture
def env(tmp_path: Path, server: Server) -> Env:
    """A temporary HOME whose variables point the client commands at `server`."""
    home = tmp_path / "home"
    home.mkdir()
    return make_env(home, server.url, server.key, server.instance_id)
