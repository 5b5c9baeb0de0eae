"""Helpers of the API tests: wire events, a served database with a key, condition waits."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.runner import serve_in_thread
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import Storage, open_storage

# Generous limits, so only the tests about rate limiting ever meet the limiter.
RELAXED = {
    "rate_limit_per_second": 10_000.0,
    "rate_limit_burst": 10_000,
    "auth_failure_rate_per_second": 10_000.0,
    "auth_failure_burst": 10_000,
}


def make_event(instance_id: uuid.UUID | str, **overrides: Any) -> dict[str, Any]:
    """A valid event in its wire form (schema 1.0), with a fresh event_id."""
    event: dict[str, Any] = {
        "instance_id": str(instance_id),
        "event_id": str(uuid.uuid4()),
        "schema_version": "1.0",
        "timestamp": "2026-01-02T03:04:05Z",
        "task_duration_ms": 120_000,
        "task_type": "implementation",
        "complexity": "medium",
        "harness": "claude_code",
        "model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "estimated_input_tokens": 40_000,
        "estimated_output_tokens": 8_000,
        "actual_input_tokens": 45_000,
        "actual_output_tokens": 9_000,
        "estimated_cost_usd_micros": 300_000,
        "actual_cost_usd_micros": 320_000,
        "quality_gate_passed": True,
        "quality_gates_run": ["build", "test"],
        "quality_gates_failed": [],
        "context_compactions": 1,
        "context_rotations": 0,
        "context_utilization_final": 0.6,
        "outcome": "success",
        "retry_count": 0,
        "language": "python",
        "repo_size_category": "medium",
    }
    event.update(overrides)
    return event


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.02)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    """A running server, its database (opened separately) and one API key."""

    url: str
    database_url: str
    storage: Storage
    instance_id: uuid.UUID
    key: str
    key_id: str
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client on the server, sending `key` (default: this fixture's key)."""
        headers = {"Authorization": f"Bearer {key or self.key}"}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30.0, **kwargs)
        self.clients.append(client)
        return client

    def issue(self, instance_id: uuid.UUID | None = None) -> tuple[str, str]:
        """Another key (for `instance_id`, default this instance): `(key, key_id)`."""
        key, record = issue_api_key(self.storage, instance_id or self.instance_id, "test")
        return key, record.key_id


@contextmanager
def serve(database_url: str, **settings: Any) -> Iterator[Served]:
    """Migrate the database, issue a key, serve; close everything afterwards."""
    storage = open_storage(database_url)
    served: Served | None = None
    try:
        storage.migrate()
        instance_id = uuid.uuid4()
        key, record = issue_api_key(storage, instance_id, "fixture")
        options = {**RELAXED, **settings}
        with serve_in_thread(ServerSettings(database_url=database_url, **options)) as url:
            served = Served(url, database_url, storage, instance_id, key, record.key_id)
            yield served
    finally:
        for client in served.clients if served else []:
            client.close()
        storage.close()
