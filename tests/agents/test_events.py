"""A task becomes an event: priced, clamped to the schema, with a stable id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from mosaicstack_telemetry_agents.events import MAX_MICROS, MAX_TOKENS, Estimate, to_event
from mosaicstack_telemetry_agents.settings import Profile
from mosaicstack_telemetry_agents.summary import Summary
from mosaicstack_telemetry_agents.tasks import Request, Task

INSTANCE = str(uuid.uuid4())


def _task(*requests: Request, key: str = "p1") -> Task:
    task = Task("claude_code", "anthropic", "s", key, requests=list(requests))
    task.see(datetime(2026, 2, 1, 10, tzinfo=UTC))
    task.see(datetime(2026, 2, 1, 10, 2, tzinfo=UTC))
    return task


def test_a_model_with_no_price_costs_zero_and_is_warned_about_once() -> None:
    warnings: list[str] = []
    summary = Summary(warn=warnings.append)
    request = Request("no-such-model-anywhere", input_tokens=10, output_tokens=5)
    for _ in range(3):
        event = to_event(_task(request), INSTANCE, Profile(), summary)
        assert event.actual_cost_usd_micros == 0
    assert len(warnings) == 1
    assert "no-such-model-anywhere" in warnings[0]
    assert summary.unpriced["no-such-model-anywhere"] == 3


def test_each_field_over_its_limit_is_clamped_on_its_own_and_counted() -> None:
    warnings: list[str] = []
    summary = Summary(warn=warnings.append)
    huge = Request("claude-opus-4-6", cache_read_tokens=12_000_000, output_tokens=3_000_000)
    pricey = Request("claude-opus-4-6", output_tokens=4_000_000)
    event = to_event(_task(huge, pricey), INSTANCE, Profile(), summary)
    assert event.actual_input_tokens == MAX_TOKENS
    assert event.actual_output_tokens == 7_000_000  # under its limit: kept as it is
    assert event.actual_cost_usd_micros == MAX_MICROS  # $181 > $100
    assert summary.clamped == {"input_tokens": 1, "cost": 1}
    assert len(warnings) == 1


def test_the_event_carries_the_turn_its_estimate_and_a_stable_id() -> None:
    summary = Summary(warn=lambda _: None)
    request = Request("claude-sonnet-4-5", input_tokens=3, cache_write_1h_tokens=100)
    estimate = Estimate(input_tokens=500, output_tokens=50, cost_usd_micros=1234)
    first = to_event(_task(request), INSTANCE, Profile(), summary, estimate)
    again = to_event(_task(request), INSTANCE, Profile(), summary)
    other = to_event(_task(request, key="p2"), INSTANCE, Profile(), summary)
    assert first.event_id == again.event_id != other.event_id
    assert first.actual_input_tokens == 103
    assert (first.estimated_input_tokens, first.estimated_cost_usd_micros) == (500, 1234)
    assert first.task_duration_ms == 120_000
    # 100 tokens of 1-hour cache writes at $6/M, 3 input tokens at $3/M.
    assert first.actual_cost_usd_micros == 609
    assert first.outcome.value == "success"
    assert first.quality_gate_passed


@given(
    st.lists(
        st.builds(
            Request,
            st.sampled_from(["claude-sonnet-4-5", "gpt-5", "mystery"]),
            st.integers(0, 10**8),
            st.integers(0, 10**8),
            st.integers(0, 10**7),
            st.integers(0, 10**7),
            st.integers(0, 10**8),
        ),
        max_size=5,
    )
)
def test_any_task_gives_an_event_within_the_schema(requests: list[Request]) -> None:
    event = to_event(_task(*requests), INSTANCE, Profile(), Summary(warn=lambda _: None))
    assert 0 <= event.actual_input_tokens <= MAX_TOKENS
    assert 0 <= event.actual_cost_usd_micros <= MAX_MICROS
