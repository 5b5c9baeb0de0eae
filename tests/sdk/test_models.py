"""The wire models: every range bound, types, JSON round trip, and the builder's defaults."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mosaicstack_telemetry import (
    BatchEventRequest,
    BatchEventResponse,
    Complexity,
    EventBuilder,
    Harness,
    Outcome,
    PredictionQuery,
    Provider,
    QualityGate,
    RepoSizeCategory,
    TaskCompletionEvent,
    TaskType,
)

from .conftest import INSTANCE_ID, make_event

# field -> (lowest accepted, highest accepted) for the integer and float ranges of schema 1.0
RANGES: dict[str, tuple[Any, Any]] = {
    "task_duration_ms": (0, 86_400_000),
    "estimated_input_tokens": (0, 10_000_000),
    "estimated_output_tokens": (0, 10_000_000),
    "actual_input_tokens": (0, 10_000_000),
    "actual_output_tokens": (0, 10_000_000),
    "estimated_cost_usd_micros": (0, 100_000_000),
    "actual_cost_usd_micros": (0, 100_000_000),
    "context_compactions": (0, 100),
    "context_rotations": (0, 50),
    "retry_count": (0, 20),
    "context_utilization_final": (0.0, 1.0),
}


def _fields(**overrides: Any) -> dict[str, Any]:
    data = json.loads(make_event().model_dump_json())
    data.update(overrides)
    return data


@pytest.mark.parametrize("name", sorted(RANGES))
def test_every_range_accepts_its_bounds_and_rejects_just_outside(name: str) -> None:
    low, high = RANGES[name]
    step = 1 if isinstance(low, int) else 1e-9
    for inside in (low, high):
        assert (
            getattr(TaskCompletionEvent.model_validate(_fields(**{name: inside})), name) == inside
        )
    for outside in (low - step, high + step):
        with pytest.raises(ValidationError, match=name):
            TaskCompletionEvent.model_validate(_fields(**{name: outside}))


@given(
    name=st.sampled_from(sorted(RANGES)),
    data=st.data(),
)
def test_values_inside_ranges_are_accepted_and_outside_rejected(name: str, data: Any) -> None:
    low, high = RANGES[name]
    if isinstance(low, int):
        value = data.draw(st.integers(min_value=low - 1000, max_value=high + 1000))
    else:
        value = data.draw(st.floats(min_value=-1.0, max_value=2.0, allow_nan=False))
    if low <= value <= high:
        assert getattr(TaskCompletionEvent.model_validate(_fields(**{name: value})), name) == value
    else:
        with pytest.raises(ValidationError):
            TaskCompletionEvent.model_validate(_fields(**{name: value}))


@pytest.mark.parametrize("name", sorted(n for n in RANGES if n != "context_utilization_final"))
@pytest.mark.parametrize("wrong", ["12", 1.5, True, None, [1]])
def test_counts_reject_wrong_types(name: str, wrong: object) -> None:
    with pytest.raises(ValidationError):
        TaskCompletionEvent.model_validate(_fields(**{name: wrong}))


@pytest.mark.parametrize(
    ("name", "wrong"),
    [
        ("context_utilization_final", "0.5"),
        ("context_utilization_final", True),
        ("quality_gate_passed", "yes"),
        ("quality_gate_passed", 1),
        ("task_type", "sleeping"),
        ("complexity", "extreme"),
        ("harness", "vim"),
        ("provider", "acme"),
        ("outcome", "meh"),
        ("repo_size_category", "gigantic"),
        ("quality_gates_run", ["build", "deploy"]),
        ("instance_id", "not-a-uuid"),
        ("event_id", 12),
        ("timestamp", "yesterday"),
        ("model", ""),
        ("model", "m" * 101),
        ("model", 5),
        ("language", "l" * 31),
    ],
)
def test_fields_reject_wrong_types_and_values(name: str, wrong: object) -> None:
    with pytest.raises(ValidationError, match=name):
        TaskCompletionEvent.model_validate(_fields(**{name: wrong}))


def test_string_lengths_accept_their_bounds() -> None:
    event = TaskCompletionEvent.model_validate(_fields(model="m" * 100, language="l" * 30))
    assert (len(event.model), len(event.language or "")) == (100, 30)
    assert TaskCompletionEvent.model_validate(_fields(model="m")).model == "m"


def test_required_fields_are_required() -> None:
    for name in ("instance_id", "task_duration_ms", "model", "outcome", "quality_gate_passed"):
        data = _fields()
        del data[name]
        with pytest.raises(ValidationError, match=name):
            TaskCompletionEvent.model_validate(data)


def test_optional_fields_have_their_defaults() -> None:
    data = _fields()
    for name in (
        "event_id",
        "schema_version",
        "timestamp",
        "quality_gates_run",
        "quality_gates_failed",
        "language",
        "repo_size_category",
    ):
        del data[name]
    event = TaskCompletionEvent.model_validate(data)
    assert isinstance(event.event_id, uuid.UUID)
    assert event.schema_version == "1.0"
    assert event.timestamp.tzinfo is not None
    assert abs(datetime.now(UTC) - event.timestamp) < timedelta(minutes=1)
    assert event.quality_gates_run == event.quality_gates_failed == []
    assert event.language is None
    assert event.repo_size_category is None


def test_timestamps_are_sent_in_utc() -> None:
    local = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    event = TaskCompletionEvent.model_validate(_fields(timestamp=local.isoformat()))
    assert event.timestamp == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    naive = TaskCompletionEvent.model_validate(_fields(timestamp="2026-01-01T10:00:00"))
    assert naive.timestamp.tzinfo == UTC


@pytest.mark.parametrize("field", ["model", "language", "schema_version"])
@pytest.mark.parametrize("bad", ["a\x00b", "tab\there", "\x7f", "line\n"])
def test_text_fields_reject_control_characters(field: str, bad: str) -> None:
    # A NUL cannot be stored in PostgreSQL text: it must be a per-event rejection, not a 5xx.
    with pytest.raises(ValidationError, match=field):
        TaskCompletionEvent.model_validate(_fields(**{field: bad}))


def test_prediction_query_rejects_control_characters_in_model() -> None:
    with pytest.raises(ValidationError, match="model"):
        PredictionQuery(
            task_type=TaskType.TESTING,
            model="x\x00",
            provider=Provider.OPENAI,
            complexity=Complexity.LOW,
        )


def test_timestamp_without_a_utc_form_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="out of range"):
        TaskCompletionEvent.model_validate(_fields(timestamp="0001-01-01T00:00:00+05:00"))


_printable = st.characters(blacklist_categories=["Cc", "Cs"])

_events = st.builds(
    lambda **kw: (
        EventBuilder(kw.pop("instance"))
        .task_type(kw["task_type"])
        .complexity_level(kw["complexity"])
        .harness_type(kw["harness"])
        .provider(kw["provider"])
        .model(kw["model"])
        .duration_ms(kw["duration"])
        .tokens(estimated_in=kw["tokens"], actual_out=kw["tokens"])
        .cost(actual=kw["cost"])
        .quality(passed=kw["passed"], gates_run=kw["gates"])
        .context(utilization=kw["utilization"])
        .outcome_value(kw["outcome"])
        .language(kw["language"])
        .repo_size(kw["repo"])
        .build()
    ),
    instance=st.uuids(),
    task_type=st.sampled_from(TaskType),
    complexity=st.sampled_from(Complexity),
    harness=st.sampled_from(Harness),
    provider=st.sampled_from(Provider),
    outcome=st.sampled_from(Outcome),
    model=st.text(_printable, min_size=1, max_size=100),
    duration=st.integers(0, 86_400_000),
    tokens=st.integers(0, 10_000_000),
    cost=st.integers(0, 100_000_000),
    passed=st.booleans(),
    gates=st.lists(st.sampled_from(QualityGate), max_size=6),
    utilization=st.floats(0.0, 1.0),
    language=st.none() | st.text(_printable, max_size=30),
    repo=st.none() | st.sampled_from(RepoSizeCategory),
)


@given(_events)
def test_event_json_round_trips(event: TaskCompletionEvent) -> None:
    wire = event.model_dump_json()
    assert TaskCompletionEvent.model_validate_json(wire) == event
    data = json.loads(wire)
    assert data["task_type"] == event.task_type.value
    assert data["instance_id"] == str(event.instance_id)


@given(st.lists(_events, min_size=1, max_size=5))
def test_batch_request_round_trips(events: list[TaskCompletionEvent]) -> None:
    batch = BatchEventRequest(events=events)
    assert BatchEventRequest.model_validate_json(batch.model_dump_json()) == batch


def test_batch_request_holds_1_to_100_events() -> None:
    BatchEventRequest(events=[make_event()] * 100)
    for count in (0, 101):
        with pytest.raises(ValidationError):
            BatchEventRequest(events=[make_event()] * count)


def test_batch_response_reads_the_servers_answer() -> None:
    event_id = str(uuid.uuid4())
    answer = BatchEventResponse.model_validate(
        {
            "accepted": 0,
            "rejected": 1,
            "results": [{"event_id": event_id, "status": "rejected", "error": "model: too long"}],
        }
    )
    assert answer.results[0].event_id == uuid.UUID(event_id)
    assert answer.results[0].error == "model: too long"


def test_prediction_query_is_hashable_and_validated() -> None:
    query = PredictionQuery(
        task_type=TaskType.TESTING, model="m", provider=Provider.OPENAI, complexity=Complexity.LOW
    )
    assert {query: 1}[query.model_copy()] == 1
    with pytest.raises(ValidationError):
        PredictionQuery(
            task_type=TaskType.TESTING,
            model="",
            provider=Provider.OPENAI,
            complexity=Complexity.LOW,
        )


def test_reused_builder_mints_a_fresh_event_id_per_build() -> None:
    builder = EventBuilder(INSTANCE_ID).model("m").quality(passed=True)
    first, second = builder.build(), builder.build()
    assert first.event_id != second.event_id
    fixed = uuid.uuid4()
    builder.event_id(fixed)
    assert builder.build().event_id == builder.build().event_id == fixed


def test_builder_defaults_match_the_reference() -> None:
    event = EventBuilder(uuid.UUID(INSTANCE_ID)).quality(passed=False).build()
    assert event.task_type is TaskType.UNKNOWN
    assert event.complexity is Complexity.MEDIUM
    assert event.harness is Harness.UNKNOWN
    assert event.model == "unknown"
    assert event.provider is Provider.UNKNOWN
    assert event.task_duration_ms == 0
    assert event.outcome is Outcome.FAILURE
    assert event.retry_count == 0
    assert event.language is None
    assert event.repo_size_category is None
    assert event.actual_input_tokens == event.estimated_cost_usd_micros == 0
    assert event.context_utilization_final == 0.0


def test_builder_setters_chain_and_land_in_their_fields() -> None:
    stamp = datetime(2026, 1, 2, tzinfo=UTC)
    event = (
        EventBuilder(INSTANCE_ID)
        .timestamp(stamp)
        .retry_count(2)
        .tokens(estimated_in=1, estimated_out=2, actual_in=3, actual_out=4)
        .cost(estimated=5, actual=6)
        .quality(passed=True, gates_run=[QualityGate.LINT], gates_failed=[QualityGate.TEST])
        .context(compactions=7, rotations=8, utilization=0.5)
        .build()
    )
    assert event.timestamp == stamp
    assert event.retry_count == 2
    assert (
        event.estimated_input_tokens,
        event.estimated_output_tokens,
        event.actual_input_tokens,
        event.actual_output_tokens,
    ) == (1, 2, 3, 4)
    assert (event.estimated_cost_usd_micros, event.actual_cost_usd_micros) == (5, 6)
    assert event.quality_gates_run == [QualityGate.LINT]
    assert event.quality_gates_failed == [QualityGate.TEST]
    assert (event.context_compactions, event.context_rotations) == (7, 8)


def test_builder_rejects_out_of_range_values() -> None:
    with pytest.raises(ValidationError):
        EventBuilder(INSTANCE_ID).retry_count(21).build()
