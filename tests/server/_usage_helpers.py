"""Helpers of the usage tests: generated events, the expected sums by plain arithmetic, and the
rollup tables read back next to a recount from the events."""

from __future__ import annotations

import itertools
import os
import random
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, date, datetime, timedelta
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
    """`count` varied events between FIRST and LAST; one in ten exactly at a UTC midnight.

    Two in three are schema 1.1 events carrying some of its fields (drawn from a generator of
    their own, so the 1.0 fields are what they were before 1.1 existed).
    """
    rng = random.Random(seed)
    extra = random.Random(f"{seed}:1.1")
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
                **_attribution(extra),
            )
        )
    return events


def _attribution(rng: random.Random) -> dict[str, Any]:
    """Some schema 1.1 fields, or none (a 1.0 event) one time in three."""
    if rng.random() < 1 / 3:
        return {}
    fields: dict[str, Any] = {"project": rng.choice(_PROJECTS)}
    if rng.random() < 0.8:
        fields["branch"] = rng.choice(["main", "feature/invoices", "fix/ünïcode-paths"])
    if rng.random() < 0.5:
        fields["user"] = rng.choice(["dana", "lee@example.com"])
    if rng.random() < 0.7:
        fields["cache_read_tokens"] = rng.randrange(0, 300_000)
        fields["cache_write_tokens"] = rng.randrange(0, 40_000)
    if rng.random() < 0.3:
        fields["reasoning_tokens"] = rng.randrange(0, 20_000)
    return fields


_PROJECTS = ("acme/billing", "acme/web", "widgets")


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
    if value is None:  # an attribution the event lacks: the key value null
        return None  # type: ignore[return-value]
    return str(value.value if hasattr(value, "value") else value)


def expected_usage(
    events: Sequence[TaskCompletionEvent],
    *,
    instance_id: UUID | None,
    start: datetime,
    end: datetime,
    group_by: Sequence[str],
    filters: dict[str, str] | None = None,
) -> tuple[dict[tuple[str, ...], dict[str, int]], dict[str, int]]:
    """Sums per group key and in total, by plain arithmetic over the events (those whose
    `filters` attributions equal their values); a missing count is 0."""
    groups: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    totals: dict[str, int] = defaultdict(int)
    for event in events:
        if not start <= event.timestamp < end:
            continue
        if instance_id is not None and event.instance_id != instance_id:
            continue
        if any(getattr(event, name) != value for name, value in (filters or {}).items()):
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
            sums["cache_read_tokens"] += event.cache_read_tokens or 0
            sums["cache_write_tokens"] += event.cache_write_tokens or 0
            sums["reasoning_tokens"] += event.reasoning_tokens or 0
    return {key: dict(sums) for key, sums in groups.items()}, dict(totals)


_EVENTS = (
    "SELECT instance_id, timestamp, task_type, complexity, harness, model, provider, outcome, "
    "actual_input_tokens, actual_output_tokens, actual_cost_usd_micros, task_duration_ms, "
    "quality_gate_passed, project, branch, user_name, cache_read_tokens, cache_write_tokens, "
    "reasoning_tokens FROM events"
)
_DIMS = (
    "task_type",
    "complexity",
    "harness",
    "model",
    "provider",
    "outcome",
    "project",
    "branch",
    "user_name",
)


@contextmanager
def _query(database_url: str) -> Iterator[Any]:
    if database_url.startswith("sqlite:"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn:
            yield lambda sql: conn.execute(sql).fetchall()
    else:
        import psycopg

        with psycopg.connect(database_url) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            yield lambda sql: conn.execute(sql).fetchall()


def _day(value: Any) -> str:
    if isinstance(value, str):
        return value[:10]
    if isinstance(value, datetime):
        return value.astimezone(UTC).date().isoformat()
    return str(value)


def _ints(values: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(value) for value in values)


def rollups_and_recount(database_url: str) -> dict[str, tuple[Any, Any]]:
    """For each rollup table: (its rows, the same rows recounted from every stored event), as
    comparable dicts, once every pending event is folded. The recount is plain Python over the
    events, independent of the server: every set of at most three dimensions, for the event's
    instance and for all ("*")."""
    from mosaicstack_telemetry_server.storage import open_storage
    from mosaicstack_telemetry_server.token_sketch import bucket_of

    storage = open_storage(database_url)
    try:
        while storage.fold_pending_usage():
            pass
    finally:
        storage.close()
    with _query(database_url) as query:
        events = query(_EVENTS)
        daily_rows = query(
            "SELECT dims, day, instance_id, v1, v2, v3, tasks, input_tokens, output_tokens, "
            "cost_usd_micros, duration_ms, successes, gate_passes, cache_read_tokens, "
            "cache_write_tokens, reasoning_tokens FROM usage_daily"
        )
        bucket_rows = query(
            "SELECT instance_id, day, model, kind, bucket, count FROM usage_token_buckets"
        )
        block_rows = query(
            "SELECT instance_id, block_start, model, kind, bucket, count FROM usage_token_blocks"
        )
    cuboids = [dims for size in range(4) for dims in itertools.combinations(_DIMS, size)]
    daily: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0] * 10)
    buckets: Counter[tuple[Any, ...]] = Counter()
    for row in events:
        instance_id, day = str(row[0]), _day(row[1])
        # A missing attribution is "" in its rollup slot, a missing count 0.
        values = dict(zip(_DIMS, [*row[2:8], *(value or "" for value in row[13:16])], strict=True))
        sums = (
            1,
            row[8],
            row[9],
            row[10],
            row[11],
            row[7] == "success",
            bool(row[12]),
            *(value or 0 for value in row[16:19]),
        )
        for owner in (instance_id, "*"):
            for dims in cuboids:
                padded = [*(values[name] for name in dims), "", "", ""][:3]
                total = daily[(",".join(dims), day, owner, *padded)]
                for index, value in enumerate(sums):
                    total[index] += int(value)
            for period in (day, block_of(day)):
                buckets[(owner, period, row[5], "input", bucket_of(row[8]))] += 1
                buckets[(owner, period, row[5], "output", bucket_of(row[9]))] += 1
    return {
        "daily": (
            {(r[0], _day(r[1]), str(r[2]), *r[3:6]): _ints(r[6:]) for r in daily_rows},
            {key: tuple(sums) for key, sums in daily.items()},
        ),
        # Days and blocks (keyed by their first day, "B" + the day) in one dict.
        "token_buckets": (
            {
                **{(str(r[0]), _day(r[1]), *r[2:4], int(r[4])): int(r[5]) for r in bucket_rows},
                **{
                    (str(r[0]), f"B{_day(r[1])}", *r[2:4], int(r[4])): int(r[5]) for r in block_rows
                },
            },
            dict(buckets),
        ),
    }


_EPOCH = date(1970, 1, 1)


def block_of(day: str) -> str:
    """The key of a day's 16-day token block in `rollups_and_recount`, computed here by
    plain arithmetic: "B" and the block's first day, a multiple of 16 days after 1970-01-01."""
    offset = (date.fromisoformat(day) - _EPOCH).days // 16 * 16
    return f"B{(_EPOCH + timedelta(days=offset)).isoformat()}"


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


def insert_raw(
    database_url: str, events: Sequence[TaskCompletionEvent], *, schema_1_1: bool = False
) -> None:
    """Store 1.0 events with plain INSERTs, as a server before schema 3 did (no rollups);
    with `schema_1_1`, their 1.1 fields too (a database at schema 8 or later)."""
    from mosaicstack_telemetry_server.storage._common import (
        EVENT_COLUMNS,
        SCHEMA_1_1_COLUMNS,
        event_row,
        iso_utc,
    )

    width = len(EVENT_COLUMNS) - (0 if schema_1_1 else len(SCHEMA_1_1_COLUMNS))
    columns = [*EVENT_COLUMNS[:width], "received_at"]
    sql = f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join(['?'] * len(columns))})"
    for event in events:
        row = list(event_row(event))[:width]
        if database_url.startswith("sqlite:"):
            row[0], row[1], row[3] = str(row[0]), str(row[1]), iso_utc(row[3])
            execute(database_url, sql, [*row, iso_utc(datetime.now(UTC))])
        else:
            execute(database_url, sql, [*row, datetime.now(UTC)])


def postgres_base_url() -> str:
    """The test PostgreSQL URL, as tests/conftest.py finds it (for module-scoped fixtures)."""
    url = os.environ.get("MOSAIC_TELEMETRY_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail("MOSAIC_TELEMETRY_TEST_POSTGRES_URL must be set in CI")
    pytest.skip("PostgreSQL tests need MOSAIC_TELEMETRY_TEST_POSTGRES_URL")
