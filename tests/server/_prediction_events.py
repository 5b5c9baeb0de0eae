"""Events and queries of one task type for the prediction tests, on generated data."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from mosaicstack_telemetry import (
    Complexity,
    Harness,
    Outcome,
    PredictionQuery,
    Provider,
    TaskCompletionEvent,
    TaskType,
)
from mosaicstack_telemetry_server.storage.base import WILDCARD, StatsKey

DAY0 = datetime(2026, 9, 1, 12, tzinfo=UTC)
INSTANCE = uuid4()
TASK = TaskType.IMPLEMENTATION
# The task type's fallback level 3 group: every event of the task type.
TASK_WIDE = StatsKey(3, TASK.value, WILDCARD, WILDCARD, WILDCARD)


def event(
    rng: random.Random,
    *,
    day: int = 0,
    model: str = "m",
    provider: Provider = Provider.ANTHROPIC,
    complexity: Complexity = Complexity.MEDIUM,
    tokens: float | None = None,
) -> TaskCompletionEvent:
    value = int(tokens if tokens is not None else rng.lognormvariate(9, 1.2))
    return TaskCompletionEvent(
        instance_id=INSTANCE,
        timestamp=DAY0 + timedelta(days=day),
        task_duration_ms=rng.choice([0, rng.randrange(1, 10**7)]),
        task_type=TASK,
        complexity=complexity,
        harness=Harness.CLAUDE_CODE,
        model=model,
        provider=provider,
        estimated_input_tokens=rng.choice([0, rng.randrange(1, 10**6)]),
        estimated_output_tokens=rng.randrange(1, 10**5),
        actual_input_tokens=value,
        actual_output_tokens=rng.randrange(10**5),
        estimated_cost_usd_micros=0,
        actual_cost_usd_micros=rng.choice([0, rng.randrange(10**6)]),
        quality_gate_passed=rng.random() < 0.7,
        context_compactions=0,
        context_rotations=0,
        context_utilization_final=0.5,
        outcome=rng.choice(list(Outcome)),
        retry_count=0,
    )


def query(
    model: str = "m",
    provider: Provider = Provider.ANTHROPIC,
    complexity: Complexity = Complexity.MEDIUM,
) -> PredictionQuery:
    return PredictionQuery(task_type=TASK, model=model, provider=provider, complexity=complexity)
