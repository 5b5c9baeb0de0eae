"""`mosaicstack_telemetry.testing`: apps assert on what they tracked, without monkeypatching."""

from __future__ import annotations

import subprocess
import sys

from mosaicstack_telemetry import PredictionQuery, TelemetryClient
from mosaicstack_telemetry.testing import (
    InMemoryTransport,
    TelemetryRecorder,
    recording_client,
    telemetry,  # noqa: F401 - the fixture, as `pytest_plugins` would provide it
)

from .conftest import make_event


def test_the_fixture_records_what_the_app_tracked(telemetry: TelemetryRecorder) -> None:  # noqa: F811
    first, second = make_event(model="a"), make_event(model="b")
    telemetry.client.track(first)
    telemetry.client.track(second)
    assert [e.model for e in telemetry.events()] == ["a", "b"]
    assert telemetry.client.stats().sent == 2


def test_a_failing_server_can_be_played_and_the_events_wait() -> None:
    client, transport = recording_client()
    client.track(make_event())
    transport.status = 503
    assert client.flush(timeout=0.5) == 1
    transport.status = None
    assert client.flush() == 0
    assert len(transport.events) == 1


async def test_the_async_client_uses_the_same_transport() -> None:
    client, transport = recording_client()
    await client.start_async()
    client.track(make_event())
    assert await client.flush_async() == 0
    await client.stop_async()
    assert len(transport.events) == 1
    await client.refresh_predictions(
        [PredictionQuery(task_type="testing", model="m", provider="openai", complexity="low")]
    )


def test_resent_events_are_kept_once_like_the_server_does() -> None:
    transport = InMemoryTransport()
    event = make_event()
    for _ in range(2):
        client, _ = recording_client()
        client = TelemetryClient(client.config, transport=transport)
        client.track(event)
        client.flush()
    assert len(transport.events) == 1
    assert transport.requests == 2
    transport.clear()
    assert transport.events == []


def test_importing_the_sdk_imports_neither_httpx_nor_pytest() -> None:
    code = (
        "import sys, mosaicstack_telemetry\n"
        "print(sorted(m for m in ('httpx', 'pytest', 'httpcore') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
