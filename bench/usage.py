"""Usage answers over a large table: `GET /v1/usage` and token percentiles at 1,000,000 events.

The table is loaded straight through `Storage.insert_events` in big batches (each batch is
then folded into the rollups, as the server's background fold would, so this also measures
what they cost ingestion). Every
event lies in the last 120 days, so a 90-day range holds three quarters of them: the worst case
for a range of that length. Each answer is timed side by side with the same sums computed by a
scan of the events table (what the rollups replace), and reported as a ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
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
    Provider,
    TaskCompletionEvent,
    TaskType,
)
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.storage import Storage, open_storage
from mosaicstack_telemetry_server.usage import query_token_percentiles, query_usage

__all__ = ["run"]

SUITE = "usage"
_CHUNK = 20_000  # events per insert_events call: one transaction each
# Events left unfolded for the answers to read beside the rollups: what the background fold
# leaves behind at about 4,000 events/s between its looks every half second (before issue 17,
# the most a request could leave pending).
_TAIL = 1_999
_DAYS = 120
_ROUTES = (
    ("claude-sonnet-4", Provider.ANTHROPIC),
    ("claude-sonnet-4", Provider.OPENROUTER),
    ("claude-opus-4", Provider.ANTHROPIC),
    ("gpt-4.1", Provider.OPENAI),
    ("o3", Provider.OPENAI),
    ("gemini-2.5-pro", Provider.GOOGLE),
    ("qwen2.5-coder:32b", Provider.OLLAMA),
    ("devstral", Provider.MISTRAL),
)
_ROUTE_ODDS = (0.3, 0.05, 0.1, 0.2, 0.1, 0.1, 0.1, 0.05)
_TASK_TYPES = tuple(t for t in TaskType if t is not TaskType.UNKNOWN)
_HARNESSES = (Harness.CLAUDE_CODE, Harness.OPENCODE, Harness.AIDER)
_COMPLEXITIES = tuple(Complexity)
_OUTCOMES = tuple(Outcome)
_INSTANCES = [UUID(int=n, version=4) for n in range(1, 11)]
# Every shape of question: totals, time, time and one category, two and three categories (the
# pair and triple cuboids), and an admin's question by instance and two categories.
_GROUP_BYS = (
    (),
    ("day",),
    ("week", "model"),
    ("task_type", "outcome"),
    ("model", "task_type", "harness"),
    ("instance_id", "model", "harness"),
)


def _chunk(
    rng: np.random.Generator, now: datetime, size: int, window: tuple[float, float] = (0, 1)
) -> list[Any]:
    """`size` events built without validation (model_construct): loading speed is the point.

    Their ages are spread over `window`, a slice of the _DAYS (0 = now, 1 = _DAYS ago).
    """
    tasks = rng.integers(0, len(_TASK_TYPES), size)
    routes = rng.choice(len(_ROUTES), size, p=_ROUTE_ODDS)
    harnesses = rng.integers(0, len(_HARNESSES), size)
    levels = rng.integers(0, len(_COMPLEXITIES), size)
    outcomes = rng.choice(len(_OUTCOMES), size, p=[0.75, 0.1, 0.1, 0.05])
    instances = rng.integers(0, len(_INSTANCES), size)
    actual_in = np.minimum(rng.lognormal(10.3, 0.8, size), 9e6).astype(int)
    actual_out = (actual_in * rng.uniform(0.05, 0.3, size)).astype(int)
    cost = np.minimum(actual_in * 3 + actual_out * 15, 99_000_000)
    duration = np.minimum(rng.lognormal(12, 0.9, size), 86_000_000).astype(int)
    ages = rng.uniform(window[0] * _DAYS * 86_400, window[1] * _DAYS * 86_400, size)
    return [
        TaskCompletionEvent.model_construct(
            instance_id=_INSTANCES[instances[i]],
            event_id=uuid4(),
            schema_version="1.0",
            timestamp=now - timedelta(seconds=float(ages[i])),
            task_duration_ms=int(duration[i]),
            task_type=_TASK_TYPES[tasks[i]],
            complexity=_COMPLEXITIES[levels[i]],
            harness=_HARNESSES[harnesses[i]],
            model=_ROUTES[routes[i]][0],
            provider=_ROUTES[routes[i]][1],
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
        for i in range(size)
    ]


def _load(storage: Storage, count: int, now: datetime) -> float:
    """Insert `count` events in big batches; returns seconds spent inserting."""
    rng = np.random.default_rng(11)
    inserting = 0.0
    # Oldest first, as events arrive: each batch spans a couple of days, not all 120.
    for start in range(0, count, _CHUNK):
        window = (1 - (start + _CHUNK) / count, 1 - start / count)
        events = _chunk(rng, now, min(_CHUNK, count - start), window)
        started = time.perf_counter()
        storage.insert_events(events)
        while storage.fold_pending_usage():  # what the server's background fold does
            pass
        inserting += time.perf_counter() - started
    return inserting


def _ingest_cost(backend: str, batches: int) -> tuple[float, float]:
    """events/s of insert_events in batches of 100 from one instance (as over HTTP), with the
    rollups (the folds of every event counted in) and without (no fold), each on a fresh
    database: what the rollups cost."""
    rng = np.random.default_rng(5)
    now = datetime.now(UTC)
    work = []
    for _ in range(batches):
        events = _chunk(rng, now, 100, (0, 1 / (_DAYS * 24)))  # the last hour
        owner = events[0].instance_id
        work.append([event.model_copy(update={"instance_id": owner}) for event in events])
    rates = []
    for rollups in (True, False):
        with database(backend) as url:
            storage = open_storage(url)
            storage.migrate()
            try:
                started = time.perf_counter()
                for batch in work:
                    storage.insert_events(batch)
                while rollups and storage.fold_pending_usage():
                    pass
                rates.append(batches * 100 / (time.perf_counter() - started))
            finally:
                storage.close()
    return rates[0], rates[1]


def _median_ms(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and p99 of `repeats` calls, in milliseconds (after one warm-up call)."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), percentile(times, 99)


def _scan_ms(url: str, start: datetime, end: datetime) -> float:
    """The same totals by a scan of the events table (what the rollups replace)."""
    if url.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        sql = (
            "SELECT model, count(*), sum(actual_input_tokens), sum(actual_cost_usd_micros) "
            "FROM events WHERE timestamp >= ? AND timestamp < ? GROUP BY model"
        )
        params: tuple[Any, ...] = (start.isoformat(), end.isoformat())
    else:
        import psycopg

        conn = psycopg.connect(url)  # type: ignore[assignment]
        sql = sql = (
            "SELECT model, count(*), sum(actual_input_tokens), sum(actual_cost_usd_micros) "
            "FROM events WHERE timestamp >= %s AND timestamp < %s GROUP BY model"
        )
        params = (start, end)
    try:
        median, _ = _median_ms(lambda: conn.execute(sql, params).fetchall(), 3)
    finally:
        conn.close()
    return median


def _backend(backend: str, count: int, repeats: int) -> list[Result]:
    name = f"{backend}, {count:,} events"
    now = datetime.now(UTC)
    # Not at midnight: the edges' partial days are summed from events, the worst case.
    end = now - timedelta(hours=5, minutes=17)
    start = end - timedelta(days=90)
    results = []
    with database(backend) as url:
        storage = open_storage(url)
        try:
            storage.migrate()
            inserting = _load(storage, count, now)
            results.append(
                Result(
                    SUITE,
                    f"load via insert_events, {name}",
                    count / inserting,
                    "events/s",
                    f"batches of {_CHUNK:,} in time order, with rollups, {inserting:.1f} s",
                )
            )
            # Events not folded yet (after the fold's cursor), spread over the range, read
            # beside the rollups.
            pending = _chunk(np.random.default_rng(12), now, _TAIL, (0, 0.7))
            storage.insert_events(pending)
            scan = _scan_ms(url, start, end)
            for group_by in _GROUP_BYS:
                median, p99 = _median_ms(
                    lambda g=group_by: query_usage(  # type: ignore[misc]
                        storage, instance_id=None, start=start, end=end, group_by=g
                    ),
                    repeats,
                )
                label = ",".join(group_by) or "(none)"
                results.append(
                    Result(
                        SUITE,
                        f"query_usage, 90 days, admin, group_by={label}, {name}",
                        median,
                        "ms",
                        f"p99 {p99:.0f} ms; scan of events {scan / median:.0f}x slower",
                    )
                )
            median, p99 = _median_ms(
                lambda: query_usage(
                    storage,
                    instance_id=_INSTANCES[0],
                    start=start,
                    end=end,
                    group_by=("day", "model"),
                ),
                repeats,
            )
            results.append(
                Result(
                    SUITE,
                    f"query_usage, 90 days, one instance, group_by=day,model, {name}",
                    median,
                    "ms",
                    f"p99 {p99:.0f} ms",
                )
            )
            median, p99 = _median_ms(
                lambda: query_token_percentiles(storage, instance_id=None, start=start, end=end),
                repeats,
            )
            results.append(
                Result(
                    SUITE,
                    f"query_token_percentiles, 90 days, admin, {name}",
                    median,
                    "ms",
                    f"p99 {p99:.0f} ms; scan of events {scan / median:.0f}x slower",
                )
            )
            key, _ = issue_api_key(storage, None, "bench", admin=True)
            with serve_process(url, workers=1) as base_url:
                median, p99 = _http(base_url, key, start, end, repeats)
            results.append(
                Result(
                    SUITE,
                    f"GET /v1/usage, 90 days, group_by=day,model, {name}",
                    median,
                    "ms",
                    f"p99 {p99:.0f} ms, over HTTP",
                )
            )
            results.append(
                Result(
                    SUITE,
                    f"scan of events, 90 days, by model, {name}",
                    scan,
                    "ms",
                    "the same sums without rollups, for comparison",
                )
            )
        finally:
            storage.close()
    return results


def _http(
    base_url: str, key: str, start: datetime, end: datetime, repeats: int
) -> tuple[float, float]:
    params = {"from": start.isoformat(), "to": end.isoformat(), "group_by": "day,model"}
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as http:

        def once() -> None:
            http.get("/v1/usage", params=params).raise_for_status()

        return _median_ms(once, repeats)


def _ingest(backend: str, batches: int) -> Result:
    with_rollups, without = _ingest_cost(backend, batches)
    return Result(
        SUITE,
        f"insert_events, batches of 100 from one instance, {backend}",
        with_rollups,
        "events/s",
        f"{without:,.0f} events/s without rollups: {without / with_rollups:.1f}x the time",
    )


def run(quick: bool) -> list[Result]:
    """Run the whole suite; `quick` trades precision for time."""
    count = 100_000 if quick else 1_000_000
    repeats = 5 if quick else 20
    batches = 100 if quick else 300
    results = [_ingest("sqlite", batches), _ingest("postgres", batches)]
    return results + _backend("sqlite", count, repeats) + _backend("postgres", count, repeats)
