"""Event factories and hypothesis strategies shared by the storage tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

from hypothesis import strategies as st

from mosaicstack_telemetry import (
    Complexity,
    Harness,
    Outcome,
    Provider,
    QualityGate,
    RepoSizeCategory,
    TaskCompletionEvent,
    TaskType,
)

INSTANCE = UUID("11111111-1111-4111-8111-111111111111")
OTHER_INSTANCE = UUID("22222222-2222-4222-8222-222222222222")


def make_event(**overrides: Any) -> TaskCompletionEvent:
    """A valid event with plain values; any field can be overridden."""
    fields: dict[str, Any] = {
        "instance_id": INSTANCE,
        "event_id": uuid4(),
        "timestamp": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "task_duration_ms": 120_000,
        "task_type": TaskType.IMPLEMENTATION,
        "complexity": Complexity.MEDIUM,
        "harness": Harness.CLAUDE_CODE,
        "model": "claude-sonnet-4-5",
        "provider": Provider.ANTHROPIC,
        "estimated_input_tokens": 1000,
        "estimated_output_tokens": 500,
        "actual_input_tokens": 1200,
        "actual_output_tokens": 450,
        "estimated_cost_usd_micros": 9000,
        "actual_cost_usd_micros": 9500,
        "quality_gate_passed": True,
        "quality_gates_run": [QualityGate.BUILD, QualityGate.TEST],
        "quality_gates_failed": [],
        "context_compactions": 1,
        "context_rotations": 0,
        "context_utilization_final": 0.625,
        "outcome": Outcome.SUCCESS,
        "retry_count": 0,
        "language": "python",
        "repo_size_category": RepoSizeCategory.MEDIUM,
    }
    fields.update(overrides)
    return TaskCompletionEvent(**fields)


# The schema refuses control characters (PostgreSQL text cannot hold NUL), and lone
# surrogates are not valid UTF-8.
_text_chars = st.characters(blacklist_categories=("Cs", "Cc"))
_offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)


def _texts(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.text(_text_chars, min_size=min_size, max_size=max_size)


def _counts(high: int) -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=high)


events_strategy: st.SearchStrategy[TaskCompletionEvent] = st.builds(
    TaskCompletionEvent,
    instance_id=st.uuids(),
    event_id=st.uuids(),
    schema_version=_texts(1, 16),
    # Kept a day inside datetime's range: converting an extreme offset time to UTC overflows.
    timestamp=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_offsets
    ),
    task_duration_ms=_counts(86_400_000),
    task_type=st.sampled_from(TaskType),
    complexity=st.sampled_from(Complexity),
    harness=st.sampled_from(Harness),
    model=_texts(1, 100),
    provider=st.sampled_from(Provider),
    estimated_input_tokens=_counts(10_000_000),
    estimated_output_tokens=_counts(10_000_000),
    actual_input_tokens=_counts(10_000_000),
    actual_output_tokens=_counts(10_000_000),
    estimated_cost_usd_micros=_counts(100_000_000),
    actual_cost_usd_micros=_counts(100_000_000),
    quality_gate_passed=st.booleans(),
    quality_gates_run=st.lists(st.sampled_from(QualityGate), max_size=8),
    quality_gates_failed=st.lists(st.sampled_from(QualityGate), max_size=8),
    context_compactions=_counts(100),
    context_rotations=_counts(50),
    context_utilization_final=st.floats(min_value=0.0, max_value=1.0),
    outcome=st.sampled_from(Outcome),
    retry_count=_counts(20),
    language=st.none() | _texts(0, 30),
    repo_size_category=st.none() | st.sampled_from(RepoSizeCategory),
)


def run_together(count: int, work: Callable[[int], Any], timeout: float = 30.0) -> list[Any]:
    """Run work(0..count-1) in threads released at the same instant; their results in order.

    Re-raises the first exception a thread hit, so a failure is never lost in a thread.
    """
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout)
            results[index] = work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a worker thread did not finish in time"
    if errors:
        raise errors[0]
    return results
