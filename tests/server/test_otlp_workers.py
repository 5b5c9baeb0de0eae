"""Two worker processes on one database: every task is closed and stored exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
from _api_helpers import free_port, wait_until
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.storage import Storage, open_storage

TASKS = 60
CALLS = 3


@contextmanager
def _workers(database_url: str) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cli = str(Path(sys.executable).with_name("mosaic-telemetry"))
    command = [cli, "serve", "--database", database_url, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "2", "--otlp-task-idle", "0.5"]
    env = {**os.environ, "MOSAIC_TELEMETRY_RATE_LIMIT_PER_SECOND": "100000"}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)

        def healthy() -> bool:
            assert process.poll() is None, "the server exited"
            try:
                return httpx.get(f"{url}/v1/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_until(healthy, 60, "the server to start")
            yield url
        finally:
            process.terminate()
            process.wait(30)


def _task_body(task: int) -> bytes:
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    name = resource.resource.attributes.add()
    name.key, name.value.string_value = "service.name", "claude-code"
    scope = resource.scope_logs.add()
    for call in range(CALLS):
        record = scope.log_records.add()
        record.time_unix_nano = 1_796_000_000_000_000_000 + call * 1_000_000_000
        record.body.string_value = "claude_code.api_request"
        for key, value in (
            ("session.id", f"session-{task}"),
            ("prompt.id", "p"),
            ("model", "claude-sonnet-4-5"),
            ("cost_usd", "0.01"),
            ("input_tokens", "100"),
            ("output_tokens", "7"),
        ):
            attribute = record.attributes.add()
            attribute.key, attribute.value.string_value = key, value
    return request.SerializeToString()


def _events(storage: Storage, instance: uuid.UUID) -> list[object]:
    return storage.export_events(instance_id=instance, start=None, end=None, after=0, limit=1000)


def test_two_worker_processes_close_every_task_exactly_once(database_url: str) -> None:
    storage = open_storage(database_url)
    try:
        storage.migrate()
        instance = uuid.uuid4()
        key, _ = issue_api_key(storage, instance, "workers")
        with _workers(database_url) as url:
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-protobuf"}

            def send(task: int) -> int:
                # A fresh connection per request: the kernel spreads them over both workers.
                with httpx.Client(base_url=url, headers=headers) as client:
                    body = _task_body(task)
                    first = client.post("/v1/logs", content=body).status_code
                with httpx.Client(base_url=url, headers=headers) as client:
                    return first + client.post("/v1/logs", content=body).status_code  # resent

            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(send, range(TASKS))) == {400}
            wait_until(lambda: len(_events(storage, instance)) == TASKS, 30, "every task closed")
            wait_until(lambda: storage.otlp_open_tasks() == 0, 10, "no task left open")
        events = [event for _, event in _events(storage, instance)]  # type: ignore[misc]
        assert {event.actual_input_tokens for event in events} == {CALLS * 100}
        assert {event.actual_cost_usd_micros for event in events} == {CALLS * 10_000}
    finally:
        storage.close()
