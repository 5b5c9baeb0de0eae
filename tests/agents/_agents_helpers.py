"""Helpers of the agents tests: a real server, the real command in a temporary HOME, samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.runner import serve_in_thread
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import Storage, open_storage

REPO = Path(__file__).resolve().parents[2]
# Real logs beside the checkout (CI has ../shared); never copied into the repository. A git
# worktree elsewhere can point at them with the variable.
SAMPLES = Path(
    os.environ.get("MOSAIC_TELEMETRY_HARNESS_SAMPLES") or REPO.parent / "shared" / "harness-samples"
)
EXE = str(Path(sys.executable).with_name("mosaic-telemetry"))
RELAXED = {
    "rate_limit_per_second": 10_000.0,
    "rate_limit_burst": 10_000,
    "auth_failure_rate_per_second": 10_000.0,
    "auth_failure_burst": 10_000,
}


def sample(*parts: str) -> Path:
    """A path under the shared samples; skips the test when they are absent."""
    path = SAMPLES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"harness samples not found at {SAMPLES} (CI has them beside the checkout)")
    return path


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Env:
    """A temporary HOME with the variables that point the client commands at a server."""

    home: Path
    variables: dict[str, str]
    instance_id: uuid.UUID

    def run(
        self, *args: str, stdin: str | bytes | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `mosaic-telemetry ARGS` with this environment."""
        data = stdin.encode() if isinstance(stdin, str) else stdin
        return subprocess.run(
            [EXE, *args],
            input=data,
            capture_output=True,
            timeout=timeout,
            env=self.variables,
            check=False,
        )

    @property
    def state_dir(self) -> Path:
        """Where the hook keeps its state and log."""
        return Path(self.variables["MOSAIC_TELEMETRY_STATE_DIR"])


def make_env(home: Path, url: str, key: str, instance_id: uuid.UUID) -> Env:
    """An environment whose HOME, cache, spool and state are all under `home`."""
    variables = {
        key_: value
        for key_, value in os.environ.items()
        if not key_.startswith(("MOSAIC_TELEMETRY_", "CLAUDE_", "CODEX_"))
    }
    variables.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        MOSAIC_TELEMETRY_SERVER_URL=url,
        MOSAIC_TELEMETRY_API_KEY=key,
        MOSAIC_TELEMETRY_INSTANCE_ID=str(instance_id),
        MOSAIC_TELEMETRY_SPOOL_DIR=str(home / "spool"),
        MOSAIC_TELEMETRY_STATE_DIR=str(home / "state"),
    )
    return Env(home, variables, instance_id)


@dataclass
class Server:
    """A served SQLite database, opened separately to check what is stored."""

    url: str
    port: int
    storage: Storage
    settings: ServerSettings
    key: str
    instance_id: uuid.UUID


@contextmanager
def served_database(path: Path, port: int = 0) -> Iterator[Server]:
    """Migrate a SQLite file, issue a key, and serve it on loopback."""
    database_url = f"sqlite:///{path}"
    storage = open_storage(database_url)
    try:
        storage.migrate()
        instance_id = uuid.uuid4()
        key, _ = issue_api_key(storage, instance_id, "agents")
        settings = ServerSettings(database_url=database_url, stats_max_age_seconds=0, **RELAXED)
        with serve_in_thread(settings, port=port) as url:
            yield Server(url, int(url.rsplit(":", 1)[1]), storage, settings, key, instance_id)
    finally:
        storage.close()


def stored(
    server: Server, event_ids: list[uuid.UUID], instance_id: uuid.UUID | None = None
) -> list[Any]:
    """The stored events among `event_ids` (in that order), None where absent."""
    instance = instance_id or server.instance_id
    return [server.storage.get_event(instance, event_id) for event_id in event_ids]


def write_lines(path: Path, records: list[dict[str, Any]]) -> Path:
    """A JSON-lines file of `records`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path
