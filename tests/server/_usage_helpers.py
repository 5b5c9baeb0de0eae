"""Helpers of the usage tests: generated events, the expected sums by plain arithmetic, and the
rollup tables read back next to a recount from the events."""

from __future__ import annotations

import os
import random
import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from _storage_helpers import INSTANCE, OTHER_INSTANCE, make_event

from mosaicstack_telemetry import (
    Complexity,
    Harness,
    Outcome,
    Provider,
    TaskCompletionEvent,
    TaskType,
)

THIRD_INSTANCE = UUID("33333333-3333-4333-8333-333333333333")
INSTANCES = (INSTANCE, OTHER_INSTANCE, THIRD_INSTANCE)
# Crosses a month, a year and the ISO week 2026-W01 that starts on 2025-12-29.
FIRST = datetime(2025, 12, 20, tzinfo=UTC)
LAST = datetime(2026, 2, 5, tzinfo=UTC)
_MODELS = (
    ("claude-sonnet-4-5", Provider.ANTHROPIC),
    ("gpt-5", Provider.OPENAI),
    ("qwen3-coder", Provider.OLLAMA),
)


def generated_events(
    count: int, seed: int, instances: Sequence[UUID] = INSTANCES
) -> list[TaskCompletionEvent]:
    """`count` varied events between FIRST and LAST; one in ten exactly at a UTC midnight."""
    rng = random.Random(seed)
    span = int((LAST - FIRST).total_seconds())
    events = []
    for _ in range(count):
        if rng.random() < 0.1:
            timestamp = FIRST + timedelta(days=rng.randrange(span // 86_400))
        else:
            timestamp = FIRST + timedelta(
                seconds=rng.randrange(span), microseconds=rng.randrange(10**6)
            )
        model, provider = rng.choice(_MODELS)
        events.append(
            make_event(
                instance_id=rng.choice(instances),
                event_id=uuid4(),
                timestamp=timestamp,
                task_type=rng.choice(
                    [TaskType.IMPLEMENTATION, TaskType.TESTING, TaskType.DEBUGGING]
                ),
                complexity=rng.choice(list(Complexity)),
                harness=rng.choice([Harness.CLAUDE_CODE, Harness.AIDER]),
                model=model,
                provider=provider,
                actual_input_tokens=rng.choice(
                    [0, rng.randrange(1, 60), rng.randrange(1, 400_000)]
                ),
                actual_output_tokens=rng.randrange(0, 50_000),
                actual_cost_usd_micros=rng.randrange(0, 5_000_000),
                task_duration_ms=rng.randrange(0, 3_600_000),
                outcome=rng.choice(list(Outcome)),
                quality_gate_passed=rng.random() < 0.7,
            )
        )
    return events


def key_of(event: TaskCompletionEvent, name: str) -> str:
    """The value of one `group_by` dimension for an event, computed independently of the server."""
    day = event.timestamp.astimezone(UTC).date()
    if name == "day":
        return day.isoformat()
    if name == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if name == "month":
        return day.strftime("%Y-%m")
    value = getattr(event, name)
    return str(value.value if hasattr(value, "value") else value)


def expected_usage(
    events: Sequence[TaskCompletionEvent],
    *,
    instance_id: UUID | None,
    start: datetime,
    end: datetime,
    group_by: Sequence[str],
) -> tuple[dict[tuple[str, ...], dict[str, int]], dict[str, int]]:
    """Sums per group key and in total, by plain arithmetic over the events."""
    groups: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    totals: dict[str, int] = defaultdict(int)
    for event in events:
        if not start <= event.timestamp < end:
            continue
        if instance_id is not None and event.instance_id != instance_id:
            continue
        key = tuple(key_of(event, name) for name in group_by)
        for sums in (groups[key], totals):
            sums["tasks"] += 1
            sums["input_tokens"] += event.actual_input_tokens
            sums["output_tokens"] += event.actual_output_tokens
            sums["cost_usd_micros"] += event.actual_cost_usd_micros
            sums["duration_ms"] += event.task_duration_ms
            sums["successes"] += event.outcome == Outcome.SUCCESS
            sums["gate_passes"] += event.quality_gate_passed
    return {key: dict(sums) for key, sums in groups.items()}, dict(totals)


_ROLLUP = (
    "SELECT instance_id, day, task_type, complexity, harness, model, provider, outcome, tasks, "
    "input_tokens, output_tokens, cost_usd_micros, duration_ms, successes, gate_passes "
    "FROM usage_daily"
)
_BUCKETS = "SELECT instance_id, day, model, kind, bucket, count FROM usage_token_buckets"


def _recount_usage(day: str, successes: str, gates: str) -> str:
    return (
        f"SELECT instance_id, {day}, task_type, complexity, harness, model, provider, outcome, "
        "count(*), sum(actual_input_tokens), sum(actual_output_tokens), "
        f"sum(actual_cost_usd_micros), sum(task_duration_ms), {successes}, {gates} "
        "FROM events GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"
    )


@contextmanager
def _rows(database_url: str) -> Iterator[Any]:
    if database_url.startswith("sqlite:"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn:
            yield lambda sql: sorted(tuple(map(str, row)) for row in conn.execute(sql))
    else:
        import psycopg

        with psycopg.connect(database_url) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            yield lambda sql: sorted(tuple(map(str, row)) for row in conn.execute(sql))


def rollups_and_recount(database_url: str) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """(usage rollup rows, their recount from events, token bucket rows, their recount)."""
    from mosaicstack_telemetry_server.token_sketch import bucket_of

    with _rows(database_url) as rows:
        if database_url.startswith("sqlite:"):
            recount = _recount_usage(
                "substr(timestamp, 1, 10)", "sum(outcome = 'success')", "sum(quality_gate_passed)"
            )
            day = "substr(timestamp, 1, 10)"
        else:
            recount = _recount_usage(
                "(timestamp AT TIME ZONE 'UTC')::date",
                "count(*) FILTER (WHERE outcome = 'success')",
                "count(*) FILTER (WHERE quality_gate_passed)",
            )
            day = "(timestamp AT TIME ZONE 'UTC')::date"
        rollup, recounted = rows(_ROLLUP), rows(recount)
        buckets = rows(_BUCKETS)
        tokens = rows(
            f"SELECT instance_id, {day}, model, actual_input_tokens, actual_output_tokens "
            "FROM events"
        )
    # The buckets recounted in Python, with token_sketch's own mapping.
    counts: dict[tuple[str, ...], int] = defaultdict(int)
    for instance_id, event_day, model, input_tokens, output_tokens in tokens:
        counts[(instance_id, event_day, model, "input", str(bucket_of(int(input_tokens))))] += 1
        counts[(instance_id, event_day, model, "output", str(bucket_of(int(output_tokens))))] += 1
    bucket_recount = sorted((*key, str(count)) for key, count in counts.items())
    return rollup, recounted, buckets, bucket_recount


def postgres_base_url() -> str:
    """The test PostgreSQL URL, as tests/conftest.py finds it (for module-scoped fixtures)."""
    url = os.environ.get("MOSAIC_TELEMETRY_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail("MOSAIC_TELEMETRY_TEST_POSTGRES_URL must be set in CI")
    pytest.skip("PostgreSQL tests need MOSAIC_TELEMETRY_TEST_POSTGRES_URL")


def execute(database_url: str, sql: str, params: Sequence[Any] = ()) -> None:
    """Run one statement outside the storage classes (e.g. on an older schema)."""
    if database_url.startswith("sqlite:"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn:
            conn.execute(sql, params)
            conn.commit()
    else:
        import psycopg

        with psycopg.connect(database_url) as conn:
            conn.execute(sql.replace("?", "%s").encode(), params)
