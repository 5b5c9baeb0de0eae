"""The real SDK against the real server: outages and restarts lose nothing, store nothing twice.

The client keeps the events it could not deliver and sends them again once the server is back,
possibly twice (a batch whose response was lost); the server's idempotency stores each once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mosaicstack_telemetry import (
    PredictionQuery,
    TaskCompletionEvent,
    TelemetryClient,
    TelemetryConfig,
)
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.runner import serve_in_thread
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import Storage, open_storage

DELIVERY_TIMEOUT = 30.0
QUERY = PredictionQuery(
    task_type="testing", model="gpt-5-codex", provider="openai", complexity="high"
)


def _wait_until(
    condition: Callable[[], bool], what: str, timeout: float = DELIVERY_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _event(instance_id: uuid.UUID, number: int) -> TaskCompletionEvent:
    fields: dict[str, Any] = {
        "instance_id": instance_id,
        "task_duration_ms": 60_000 + number,
        "task_type": "testing",
        "complexity": "high",
        "harness": "opencode",
        "model": "gpt-5-codex",
        "provider": "openai",
        "estimated_input_tokens": 10_000,
        "estimated_output_tokens": 2_000,
        "actual_input_tokens": 10_000 + 100 * number,
        "actual_output_tokens": 2_000 + 10 * number,
        "estimated_cost_usd_micros": 50_000,
        "actual_cost_usd_micros": 50_000 + number,
        "quality_gate_passed": number % 4 != 0,
        "context_compactions": 0,
        "context_rotations": 0,
        "context_utilization_final": 0.4,
        "outcome": "success" if number % 5 else "failure",
        "retry_count": 0,
    }
    return TaskCompletionEvent(**fields)


@pytest.fixture
def storage(database_url: str) -> Iterator[Storage]:
    """The database the server will use, migrated, opened separately to check what is stored."""
    opened = open_storage(database_url)
    opened.migrate()
    yield opened
    opened.close()


def test_outage_and_restart_lose_no_event_and_store_each_once(
    database_url: str, storage: Storage
) -> None:
    instance_id = uuid.uuid4()
    key, _ = issue_api_key(storage, instance_id, "e2e")
    port = _free_port()
    # Statistics always fresh, so the prediction reflects every stored event.
    settings = ServerSettings(
        database_url=database_url, rate_limit_per_second=1000.0, stats_max_age_seconds=0
    )
    config = TelemetryConfig(
        server_url=f"http://127.0.0.1:{port}",
        api_key=key,
        instance_id=str(instance_id),
        submit_interval_seconds=0.05,
        max_retries=0,  # every failed flush puts the batch back for the next one
        request_timeout_seconds=5.0,
        batch_size=25,
    )
    events = [_event(instance_id, number) for number in range(300)]
    before_outage, during_outage, after_restart = events[:100], events[100:200], events[200:]

    client = TelemetryClient(config)
    client.start()
    try:
        # The server is not up yet: events wait in the client's queue.
        for event in before_outage:
            client.track(event)
        with serve_in_thread(settings, port=port):
            _wait_until(lambda: storage.count_events() == 100, "delivery once the server is up")
        # Outage: the server is gone, tracking goes on.
        for event in during_outage:
            client.track(event)
        assert storage.count_events() == 100
        # A restart on the same database: the backlog and what follows arrive.
        with serve_in_thread(settings, port=port):
            _wait_until(lambda: storage.count_events() == 200, "the backlog after the restart")
            for event in after_restart:
                client.track(event)
            # Resending what was already stored (as after a lost response) stores nothing new.
            for event in before_outage[:50]:
                client.track(event)
            _wait_until(
                lambda: storage.count_events() == 300 and client.queue_size == 0,
                "every event",
            )
            client.stop()  # final flush while the server is still up
            assert storage.count_events() == 300

            predictor = TelemetryClient(config)
            predictor.refresh_predictions_sync([QUERY])
            prediction = predictor.get_prediction(QUERY)
    finally:
        client.stop()
    assert storage.count_events() == 300
    assert prediction is not None
    assert prediction.prediction is not None
    assert prediction.metadata.fallback_level == 0
    assert prediction.metadata.sample_size == 300
    assert prediction.metadata.confidence == "high"
    assert prediction.prediction.quality.success_rate == pytest.approx(240 / 300)


def _spool_config(port: int, key: str, instance_id: uuid.UUID, spool: Path) -> TelemetryConfig:
    return TelemetryConfig(
        server_url=f"http://127.0.0.1:{port}",
        api_key=key,
        instance_id=str(instance_id),
        spool_dir=spool,
        shutdown_timeout_seconds=0.8,
    )


def test_a_cli_run_with_the_server_down_is_stored_once_by_the_next_run(
    database_url: str, storage: Storage, tmp_path: Path
) -> None:
    instance_id = uuid.uuid4()
    key, _ = issue_api_key(storage, instance_id, "e2e")
    port = _free_port()
    config = _spool_config(port, key, instance_id, tmp_path / "spool")
    events = [_event(instance_id, number) for number in range(150)]

    down = TelemetryClient(config)  # nothing listens on the port yet
    down.start()
    for event in events:
        down.track(event)
    started = time.monotonic()
    down.stop()
    assert time.monotonic() - started < 1.5
    assert down.stats().spooled == 150

    settings = ServerSettings(database_url=database_url, rate_limit_per_second=1000.0)
    with serve_in_thread(settings, port=port):
        up = TelemetryClient(config)
        up.start()
        assert up.flush(timeout=20) == 0
        up.stop()
        # The same events once more (as after a lost response): stored once all the same.
        again = TelemetryClient(config)
        for event in events[:20]:
            again.track(event)
        assert again.flush(timeout=20) == 0
    assert storage.count_events() == 150
    assert up.stats().unspooled == 150
    assert os.listdir(tmp_path / "spool") == []


# A process that tracks with the server down, its full queue spilling to the spool, and is
# then killed with SIGKILL: no stop(), no exit hook.
_TRACK_THEN_DIE = """
import sys, time
from mosaicstack_telemetry import TaskCompletionEvent, TelemetryClient, TelemetryConfig
client = TelemetryClient(TelemetryConfig(max_queue_size=100, submit_interval_seconds=3600.0))
client.start()
template = TaskCompletionEvent.model_validate_json(sys.stdin.readline())
for number in range(1000):
    client.track(template.model_copy(update={"event_id": __import__("uuid").uuid4()}))
    if number % 50 == 49:
        deadline = time.monotonic() + 20
        while client.stats().spooled < number + 1 - 150 and time.monotonic() < deadline:
            time.sleep(0.005)
# Every evicted event (all but the queue's 100) reaches the spool before the kill: the loop's
# 150 of slack kept the producer going, so wait on the last ones rather than race them.
deadline = time.monotonic() + 20
while client.stats().spooled < 900 and time.monotonic() < deadline:
    time.sleep(0.005)
print(client.stats().spooled, flush=True)
time.sleep(60)
"""


def test_kill_9_then_restart_stores_every_spooled_event(
    database_url: str, storage: Storage, tmp_path: Path
) -> None:
    instance_id = uuid.uuid4()
    key, _ = issue_api_key(storage, instance_id, "e2e")
    port = _free_port()
    spool = tmp_path / "spool"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOSAIC_TELEMETRY_")}
    env.update(
        MOSAIC_TELEMETRY_SERVER_URL=f"http://127.0.0.1:{port}",
        MOSAIC_TELEMETRY_API_KEY=key,
        MOSAIC_TELEMETRY_INSTANCE_ID=str(instance_id),
        MOSAIC_TELEMETRY_SPOOL_DIR=str(spool),
    )
    child = subprocess.Popen(
        [sys.executable, "-c", _TRACK_THEN_DIE],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.write(_event(instance_id, 1).model_dump_json() + "\n")
        child.stdin.flush()
        spooled = int(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert spooled >= 900  # all but the in-memory queue (100) was on disk when it died

    settings = ServerSettings(database_url=database_url, rate_limit_per_second=1000.0)
    with serve_in_thread(settings, port=port):
        restarted = TelemetryClient(_spool_config(port, key, instance_id, spool))
        restarted.start()
        _wait_until(lambda: storage.count_events() == spooled, "the spool after the restart")
        restarted.stop()
    assert storage.count_events() == spooled == restarted.stats().unspooled
