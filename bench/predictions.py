"""Prediction latency over a large table, and the time to recompute its statistics.

The table is loaded straight through `Storage.insert_events` in big batches (HTTP would
measure ingestion, not predictions); then `POST /v1/predictions/batch` with 100 queries is
timed against `mosaic-telemetry serve`, cold (first request) and warm.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import numpy as np

from bench._server import database, serve_process
from bench._timing import Result, percentile
from mosaicstack_telemetry import (
    Complexity,
    Harness,
    Outcome,
    PredictionQuery,
    Provider,
    TaskCompletionEvent,
    TaskType,
)
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.predictions.service import PredictionService
from mosaicstack_telemetry_server.predictions.statistics import compute_partition_stats
from mosaicstack_telemetry_server.storage import Storage, open_storage

__all__ = ["run"]

SUITE = "predictions"
_CHUNK = 20_000  # events per insert_events call: one transaction each
_ROUTES = (
    ("claude-sonnet-4", Provider.ANTHROPIC),
    ("claude-sonnet-4", Provider.OPENROUTER),
    ("claude-opus-4", Provider.ANTHROPIC),
    ("gpt-4.1", Provider.OPENAI),
    ("gpt-4.1", Provider.OPENROUTER),
    ("o3", Provider.OPENAI),
    ("gemini-2.5-pro", Provider.GOOGLE),
    ("qwen2.5-coder:32b", Provider.OLLAMA),
    ("devstral", Provider.MISTRAL),
)
_TASK_TYPES = tuple(t for t in TaskType if t is not TaskType.UNKNOWN)
_COMPLEXITIES = tuple(Complexity)
_OUTCOMES = tuple(Outcome)


def _chunk(rng: np.random.Generator, instance_ids: list[UUID], size: int) -> list[Any]:
    """`size` events built without validation (model_construct): loading speed is the point."""
    now = datetime.now(UTC)
    tasks = rng.integers(0, len(_TASK_TYPES), size)
    routes = rng.integers(0, len(_ROUTES), size)
    levels = rng.integers(0, len(_COMPLEXITIES), size)
    outcomes = rng.choice(len(_OUTCOMES), size, p=[0.75, 0.1, 0.1, 0.05])
    actual_in = np.minimum(rng.lognormal(10.3, 0.8, size), 9e6).astype(int)
    actual_out = (actual_in * rng.uniform(0.05, 0.3, size)).astype(int)
    cost = np.minimum(actual_in * 3 + actual_out * 15, 99_000_000)
    duration = np.minimum(rng.lognormal(12, 0.9, size), 86_000_000).astype(int)
    ages = rng.uniform(0, 30 * 86_400, size)
    events = []
    for i in range(size):
        model, provider = _ROUTES[routes[i]]
        events.append(
            TaskCompletionEvent.model_construct(
                instance_id=instance_ids[i % len(instance_ids)],
                event_id=uuid4(),
                schema_version="1.0",
                timestamp=now - timedelta(seconds=float(ages[i])),
                task_duration_ms=int(duration[i]),
                task_type=_TASK_TYPES[tasks[i]],
                complexity=_COMPLEXITIES[levels[i]],
                harness=Harness.API_DIRECT,
                model=model,
                provider=provider,
                estimated_input_tokens=int(actual_in[i] * 0.8),
                estimated_output_tokens=int(actual_out[i] * 0.8),
                actual_input_tokens=int(actual_in[i]),
                actual_output_tokens=int(actual_out[i]),
                estimated_cost_usd_micros=int(cost[i] * 0.8),
                actual_cost_usd_micros=int(cost[i]),
                quality_gate_passed=bool(outcomes[i] == 0),
                quality_gates_run=[],
                quality_gates_failed=[],
                context_compactions=0,
                context_rotations=0,
                context_utilization_final=0.5,
                outcome=_OUTCOMES[outcomes[i]],
                retry_count=0,
                language="python",
                repo_size_category=None,
            )
        )
    return events


def _load(storage: Storage, count: int) -> float:
    """Insert `count` events in big batches; returns seconds spent inserting."""
    rng = np.random.default_rng(7)
    instance_ids = [UUID(int=n, version=4) for n in range(1, 11)]
    inserting = 0.0
    for start in range(0, count, _CHUNK):
        events = _chunk(rng, instance_ids, min(_CHUNK, count - start))
        started = time.perf_counter()
        storage.insert_events(events)
        inserting += time.perf_counter() - started
    return inserting


def _queries() -> list[dict[str, str]]:
    """100 queries: most with exact data, some that fall back (unknown model or route)."""
    rng = random.Random(9)
    queries = []
    for n in range(100):
        model, provider = rng.choice(_ROUTES)
        if n % 10 == 0:
            model, provider = "some-new-model", Provider.CUSTOM
        query = PredictionQuery(
            task_type=rng.choice(_TASK_TYPES),
            model=model,
            provider=provider,
            complexity=rng.choice(_COMPLEXITIES),
        )
        queries.append(query.model_dump(mode="json"))
    return queries


def _latency(base_url: str, key: str, requests: int) -> tuple[float, list[float]]:
    body = {"queries": _queries()}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=300) as http:

        def once() -> float:
            started = time.perf_counter()
            answer = http.post("/v1/predictions/batch", json=body)
            elapsed = time.perf_counter() - started
            answer.raise_for_status()
            if len(answer.json()["results"]) != len(body["queries"]):
                raise RuntimeError("wrong number of results")
            return elapsed * 1000

        cold = once()
        return cold, [once() for _ in range(requests)]


def _recompute(storage: Storage) -> tuple[float, float, float, int]:
    """Recompute every task type's statistics: seconds reading, computing, writing; rows."""
    reading = computing = writing = 0.0
    groups = 0
    for task_type in sorted(storage.partition_versions()):
        started = time.perf_counter()
        snapshot = storage.read_partition(task_type)
        read = time.perf_counter()
        rows = compute_partition_stats(snapshot, datetime.now(UTC))
        computed = time.perf_counter()
        storage.replace_stats(task_type, snapshot.version, datetime.now(UTC), rows)
        done = time.perf_counter()
        reading += read - started
        computing += computed - read
        writing += done - computed
        groups += len(rows)
    return reading, computing, writing, groups


def _backend(backend: str, count: int, requests: int) -> list[Result]:
    name = f"{backend}, {count:,} events"
    with database(backend) as url:
        storage = open_storage(url)
        try:
            storage.migrate()
            inserting = _load(storage, count)
            key, _ = issue_api_key(storage, UUID(int=1, version=4), label="bench")
            with serve_process(url, workers=1) as base_url:
                cold, warm = _latency(base_url, key, requests)
            # New data since the server's statistics, so that each recompute really replaces.
            storage.insert_events(_chunk(np.random.default_rng(8), [UUID(int=1)], 200))
            reading, computing, writing, groups = _recompute(storage)
            storage.insert_events(_chunk(np.random.default_rng(9), [UUID(int=1)], 200))
            service = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=0)
            started = time.perf_counter()
            refreshed = service.refresh_stale()
            service_seconds = time.perf_counter() - started
        finally:
            storage.close()
    return [
        Result(
            SUITE,
            f"load via insert_events, {name}",
            count / inserting,
            "events/s",
            f"batches of {_CHUNK:,}, {inserting:.1f} s",
        ),
        Result(
            SUITE,
            f"/v1/predictions/batch, 100 queries, cold, {name}",
            cold,
            "ms",
            "first request after start",
        ),
        Result(
            SUITE,
            f"/v1/predictions/batch, 100 queries, median, {name}",
            statistics.median(warm),
            "ms",
            f"{requests} requests",
        ),
        Result(
            SUITE, f"/v1/predictions/batch, 100 queries, p99, {name}", percentile(warm, 99), "ms"
        ),
        Result(
            SUITE,
            f"recompute all statistics, {name}",
            reading + computing + writing,
            "s",
            f"read {reading:.1f} s, compute {computing:.1f} s, write {writing:.2f} s, "
            f"{groups} groups",
        ),
        Result(
            SUITE,
            f"PredictionService.refresh_stale(), {name}",
            service_seconds,
            "s",
            f"{refreshed} task types recomputed",
        ),
    ]


def run(quick: bool) -> list[Result]:
    """Run the whole suite; `quick` trades precision for time."""
    count = 100_000 if quick else 1_000_000
    requests = 30 if quick else 200
    return _backend("sqlite", count, requests) + _backend("postgres", count, requests)
