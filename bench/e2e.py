"""Events per second from `track()` to stored rows, through the real server.

SQLite and PostgreSQL, one and four `mosaic-telemetry serve --workers N` processes; then
one profiled run of the server to show where the time goes.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from bench._server import database, serve_process
from bench._timing import Result, deadline_wait
from mosaicstack_telemetry import TaskCompletionEvent, TelemetryClient, TelemetryConfig
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.demo_data import random_uuid, simulate_events
from mosaicstack_telemetry_server.storage import Storage, open_storage

__all__ = ["run"]

SUITE = "e2e"
# Several clients, one key (instance) each, as in a real deployment; each has one request in
# flight at a time.
_CLIENTS = 8


def _workload(count: int) -> tuple[list[UUID], list[list[TaskCompletionEvent]]]:
    rng = random.Random(4)
    instances = [random_uuid(rng) for _ in range(_CLIENTS)]
    per_client: list[list[TaskCompletionEvent]] = [[] for _ in instances]
    for which, event in simulate_events(rng, instances, count):
        per_client[which].append(event)
    return instances, per_client


def _drive(
    base_url: str,
    storage: Storage,
    instances: list[UUID],
    per_client: list[list[TaskCompletionEvent]],
) -> float:
    """Track everything through real clients; seconds until the last row is stored."""
    total = sum(len(events) for events in per_client)
    before = storage.count_events()
    clients = []
    for instance_id in instances:
        key, _ = issue_api_key(storage, instance_id, label="bench")
        config = TelemetryConfig(
            server_url=base_url,
            api_key=key,
            instance_id=str(instance_id),
            submit_interval_seconds=0.05,
            max_queue_size=max(len(events) for events in per_client),
        )
        clients.append(TelemetryClient(config))
    for client in clients:
        client.start()
    try:
        started = time.perf_counter()
        for client, events in zip(clients, per_client, strict=True):
            for event in events:
                client.track(event)
        deadline_wait(
            lambda: storage.count_events() - before >= total, 600, f"{total} rows to be stored"
        )
        return time.perf_counter() - started
    finally:
        for client in clients:
            client.stop()


@contextmanager
def _storage(url: str) -> Iterator[Storage]:
    storage = open_storage(url)
    try:
        storage.migrate()
        yield storage
    finally:
        storage.close()


def _throughput(backend: str, workers: int, count: int) -> Result:
    instances, per_client = _workload(count)
    with database(backend) as url, _storage(url) as storage, serve_process(url, workers) as base:
        seconds = _drive(base, storage, instances, per_client)
    return Result(
        SUITE,
        f"track() → stored rows, {backend}, {workers} worker(s)",
        count / seconds,
        "events/s",
        f"{count} events, {_CLIENTS} clients/keys, {seconds:.1f} s",
    )


@contextmanager
def _profiled_server(url: str) -> Iterator[tuple[str, dict[str, Any]]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._profiled_server", url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    summary: dict[str, Any] = {}
    try:
        yield process.stdout.readline().strip(), summary
    finally:
        process.stdin.close()
        summary.update(json.loads(process.stdout.readline() or "{}"))
        process.wait(timeout=30)


def _profile(count: int) -> list[Result]:
    instances, per_client = _workload(count)
    with (
        database("sqlite") as url,
        _storage(url) as storage,
        _profiled_server(url) as (base, summary),
    ):
        seconds = _drive(base, storage, instances, per_client)
    if "busy_seconds" not in summary:
        raise RuntimeError("the profiled server printed no summary (see its traceback)")
    busy = float(summary["busy_seconds"])
    results = [
        Result(
            "e2e profile",
            "server CPU time (sqlite, 1 process, cProfile on thread_time)",
            busy,
            "s",
            f"{count} events in {seconds:.1f} s under the profiler, "
            f"{summary.get('threads')} threads",
        )
    ]
    for where, own, calls in summary.get("self", [])[:12]:
        results.append(
            Result("e2e profile", f"self: {where}", 100 * own / busy, "% busy", f"{calls} calls")
        )
    for where, total, calls in summary.get("inclusive", [])[:12]:
        results.append(
            Result("e2e profile", f"incl: {where}", 100 * total / busy, "% busy", f"{calls} calls")
        )
    return results


def run(quick: bool) -> list[Result]:
    """Run the whole suite; `quick` trades precision for time."""
    count = 10_000 if quick else 40_000
    results = [
        _throughput(backend, workers, count)
        for backend in ("sqlite", "postgres")
        for workers in (1, 4)
    ]
    return results + _profile(count // 2)
