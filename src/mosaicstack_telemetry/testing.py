"""Test helpers for applications: an in-memory Telemetry API and a pytest fixture.

Assert on what your code tracked without a server and without monkeypatching::

    # conftest.py
    pytest_plugins = ["mosaicstack_telemetry.testing"]

    # test_app.py
    def test_a_task_is_recorded(telemetry):
        run_my_task(telemetry.client)
        assert [e.model for e in telemetry.events()] == ["claude-sonnet-4"]

`InMemoryTransport` answers the SDK's requests the way the real server does (every event
accepted, idempotent by `event_id`; or a status you choose, to test your handling of outages),
so the client under test runs its real queue, batching and retry code. Importing this module
imports httpx, never pytest: the fixture is only defined when pytest is installed.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from mosaicstack_telemetry.client import TelemetryClient
from mosaicstack_telemetry.config import TelemetryConfig
from mosaicstack_telemetry.models.events import TaskCompletionEvent

__all__ = ["InMemoryTransport", "TelemetryRecorder", "recording_client"]

# Valid values for a config that never leaves the process.
TEST_SERVER_URL = "http://telemetry.invalid"
TEST_API_KEY = "0" * 64
TEST_INSTANCE_ID = "00000000-0000-4000-8000-000000000000"


class InMemoryTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport that plays the Telemetry API and keeps every event it accepts.

    Set `status` to make every request fail with that HTTP status (e.g. 503) until set back to
    None; `requests` counts the requests received.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, TaskCompletionEvent] = {}
        self.status: int | None = None
        self.requests = 0

    @property
    def events(self) -> list[TaskCompletionEvent]:
        """Every distinct event accepted so far, in arrival order."""
        with self._lock:
            return list(self._events.values())

    def clear(self) -> None:
        """Forget the events received so far."""
        with self._lock:
            self._events.clear()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (sync clients)."""
        return self._answer(request, request.read())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (async clients)."""
        return self._answer(request, await request.aread())

    def _answer(self, request: httpx.Request, raw: bytes) -> httpx.Response:
        with self._lock:
            self.requests += 1
        if self.status is not None:
            return httpx.Response(self.status, json={"error": {"code": "test", "message": "set"}})
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        body = json.loads(raw)
        if request.url.path.endswith("/events/batch"):
            return httpx.Response(202, json=self._accept(body.get("events", [])))
        # Predictions: the server's "no data yet" answer for each query.
        empty = {
            "prediction": None,
            "metadata": {"sample_size": 0, "fallback_level": -1, "confidence": "none"},
        }
        return httpx.Response(200, json={"results": [empty for _ in body.get("queries", [])]})

    def _accept(self, raw_events: list[Any]) -> dict[str, Any]:
        results = []
        for raw in raw_events:
            event = TaskCompletionEvent.model_validate(raw)
            with self._lock:
                self._events.setdefault(str(event.event_id), event)
            results.append({"event_id": str(event.event_id), "status": "accepted", "error": None})
        return {"accepted": len(results), "rejected": 0, "results": results}


def recording_client(**config: Any) -> tuple[TelemetryClient, InMemoryTransport]:
    """A client over a fresh `InMemoryTransport`; `config` overrides `TelemetryConfig` fields."""
    values: dict[str, Any] = {
        "server_url": TEST_SERVER_URL,
        "api_key": TEST_API_KEY,
        "instance_id": TEST_INSTANCE_ID,
        # Flushes happen when the test asks (events(), flush(), stop()), not on a timer.
        "submit_interval_seconds": 3600.0,
        "enabled": True,
    }
    values.update(config)
    transport = InMemoryTransport()
    return TelemetryClient(TelemetryConfig(**values), transport=transport), transport


class TelemetryRecorder:
    """What the `telemetry` fixture gives a test: a started client and what reached "the server"."""

    def __init__(self, client: TelemetryClient, transport: InMemoryTransport) -> None:
        self.client = client
        self.transport = transport

    def events(self) -> list[TaskCompletionEvent]:
        """Flush the client, then return every event it delivered, in order."""
        self.client.flush()
        return self.transport.events


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is optional for users of this module
    pass
else:

    @pytest.fixture
    def telemetry() -> Iterator[TelemetryRecorder]:
        """A started `TelemetryClient` over an `InMemoryTransport`, stopped after the test."""
        client, transport = recording_client()
        client.start()
        try:
            yield TelemetryRecorder(client, transport)
        finally:
            client.stop()
