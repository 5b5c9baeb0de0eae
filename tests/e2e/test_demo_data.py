"""The demo's simulated workload: deterministic, valid, and shaped for the fallback story."""

from __future__ import annotations

import random
from collections import Counter
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import (
    Complexity,
    Outcome,
    PredictionQuery,
    Provider,
    TaskCompletionEvent,
    TaskType,
)
from mosaicstack_telemetry_server.demo_data import (
    DEMO_QUERIES,
    random_uuid,
    simulate_events,
)

INSTANCES = [UUID(int=n, version=4) for n in range(1, 4)]


def _dims(item: TaskCompletionEvent | PredictionQuery) -> tuple[str, str, str, str]:
    return (item.task_type.value, item.model, item.provider.value, item.complexity.value)


def test_same_seed_gives_the_same_events() -> None:
    first = [e for _, e in simulate_events(random.Random(7), INSTANCES, 50)]
    again = [e for _, e in simulate_events(random.Random(7), INSTANCES, 50)]
    other = [e for _, e in simulate_events(random.Random(8), INSTANCES, 50)]

    def strip(events: list[TaskCompletionEvent]) -> list[dict[str, object]]:
        return [e.model_dump(exclude={"timestamp"}) for e in events]

    assert strip(first) == strip(again)
    assert strip(first) != strip(other)


def test_events_are_spread_round_robin_over_instances() -> None:
    pairs = list(simulate_events(random.Random(1), INSTANCES, 9))
    assert [which for which, _ in pairs] == [0, 1, 2] * 3
    assert all(event.instance_id == INSTANCES[which] for which, event in pairs)


def test_no_instance_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one instance"):
        list(simulate_events(random.Random(1), [], 1))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_every_simulated_event_is_valid_and_within_schema_caps(seed: int) -> None:
    # build() validates: reaching the end without ValidationError is the point.
    for _, event in simulate_events(random.Random(seed), INSTANCES, 40):
        assert event.actual_cost_usd_micros <= 100_000_000
        assert event.task_duration_ms <= 86_400_000
        assert event.quality_gate_passed == (event.outcome is Outcome.SUCCESS)
        assert event.task_type is not TaskType.SECURITY_AUDIT


def test_workload_has_failures_retries_and_several_routes() -> None:
    events = [e for _, e in simulate_events(random.Random(3), INSTANCES, 1000)]
    outcomes = Counter(e.outcome for e in events)
    assert set(outcomes) == set(Outcome)
    assert outcomes[Outcome.SUCCESS] > 500
    assert any(e.retry_count > 0 for e in events)
    assert {e.provider for e in events} == {
        Provider.ANTHROPIC,
        Provider.OPENAI,
        Provider.OPENROUTER,
        Provider.OLLAMA,
    }
    # Local inference is free; hosted routes are not.
    assert all(e.actual_cost_usd_micros == 0 for e in events if e.provider is Provider.OLLAMA)
    assert all(e.actual_cost_usd_micros > 0 for e in events if e.provider is Provider.OPENAI)


def test_fallback_queries_never_have_exact_data() -> None:
    events = [e for _, e in simulate_events(random.Random(5), INSTANCES, 3000)]
    seen = Counter(_dims(e) for e in events)
    seen_task_types = {e.task_type for e in events}
    exact = [q for q in DEMO_QUERIES if q.shows == "exact match"]
    fallbacks = [q for q in DEMO_QUERIES if q.shows != "exact match"]
    assert exact
    assert fallbacks
    assert all(seen[_dims(q.query)] >= 5 for q in exact)
    assert all(seen[_dims(q.query)] == 0 for q in fallbacks)
    assert any(q.query.task_type not in seen_task_types for q in DEMO_QUERIES)
    assert any(q.query.complexity is Complexity.CRITICAL for q in fallbacks)


def test_random_uuid_is_version_4_and_seeded() -> None:
    value = random_uuid(random.Random(1))
    assert value.version == 4
    assert value == random_uuid(random.Random(1))
