"""Schema 1.1 in the SDK: the optional attribution and token-detail fields, the builder's
setters for them, and a 1.0 event that stays byte for byte what it was before 1.1."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mosaicstack_telemetry import SCHEMA_VERSION, EventBuilder, TaskCompletionEvent
from mosaicstack_telemetry.models.events import SCHEMA_1_1_FIELDS

from .conftest import INSTANCE_ID

EVENT_ID = uuid.UUID("0b7f1c2e-3d4a-4b5c-8d6e-7f8091a2b3c4")
WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)

# The wire form of a builder-made event before schema 1.1 existed (commit 7d31b63), as bytes.
WIRE_1_0 = (
    '{"instance_id":"' + str(INSTANCE_ID) + '","event_id":"' + str(EVENT_ID) + '",'
    '"schema_version":"1.0","timestamp":"2026-12-01T09:30:00Z","task_duration_ms":0,'
    '"task_type":"unknown","complexity":"medium","harness":"unknown","model":"unknown",'
    '"provider":"unknown","estimated_input_tokens":0,"estimated_output_tokens":0,'
    '"actual_input_tokens":0,"actual_output_tokens":0,"estimated_cost_usd_micros":0,'
    '"actual_cost_usd_micros":0,"quality_gate_passed":false,"quality_gates_run":[],'
    '"quality_gates_failed":[],"context_compactions":0,"context_rotations":0,'
    '"context_utilization_final":0.0,"outcome":"failure","retry_count":0,"language":null,'
    '"repo_size_category":null}'
)


def _builder() -> EventBuilder:
    return EventBuilder(INSTANCE_ID).event_id(EVENT_ID).timestamp(WHEN)


def test_an_event_built_without_1_1_fields_is_the_1_0_wire_form_byte_for_byte() -> None:
    event = _builder().build()
    assert event.model_dump_json() == WIRE_1_0
    assert event.schema_version == SCHEMA_VERSION == "1.0"


def test_the_builder_sets_every_1_1_field_and_the_event_says_1_1() -> None:
    event = (
        _builder()
        .tokens(actual_in=150_000, actual_out=4_000)
        .project("acme/billing")
        .branch("feature/invoices")
        .user("dana")
        .cache_tokens(read=120_000, write=8_000)
        .reasoning_tokens(1_500)
        .build()
    )
    assert event.schema_version == "1.1"
    wire = json.loads(event.model_dump_json())
    assert {name: wire[name] for name in SCHEMA_1_1_FIELDS} == {
        "project": "acme/billing",
        "branch": "feature/invoices",
        "user": "dana",
        "cache_read_tokens": 120_000,
        "cache_write_tokens": 8_000,
        "reasoning_tokens": 1_500,
    }
    # Cache and reasoning are parts of the totals, never added to them.
    assert (wire["actual_input_tokens"], wire["actual_output_tokens"]) == (150_000, 4_000)


def test_setting_a_1_1_field_to_none_unsets_it_and_the_event_is_1_0_again() -> None:
    builder = _builder().project("acme/web").cache_tokens(read=5)
    assert builder.build().schema_version == "1.1"
    builder.project(None).cache_tokens(read=None)
    assert builder.build().model_dump_json() == WIRE_1_0


def test_cache_tokens_may_set_one_count_without_the_other() -> None:
    event = _builder().cache_tokens(write=42).build()
    assert (event.cache_read_tokens, event.cache_write_tokens) == (None, 42)
    assert "cache_read_tokens" not in json.loads(event.model_dump_json())


@pytest.mark.parametrize("field", SCHEMA_1_1_FIELDS)
def test_an_explicit_1_0_event_carrying_a_1_1_field_is_invalid_and_names_it(field: str) -> None:
    data = json.loads(WIRE_1_0)
    data[field] = 7 if field.endswith("_tokens") else "x"
    with pytest.raises(ValidationError) as caught:
        TaskCompletionEvent.model_validate(data)
    (error,) = caught.value.errors()
    assert error["type"] == "schema_1_1_field"
    assert error["msg"].startswith(f"{field} is a schema 1.1 field")


def test_an_explicit_1_1_event_without_1_1_fields_is_kept_as_sent() -> None:
    data = {**json.loads(WIRE_1_0), "schema_version": "1.1"}
    assert TaskCompletionEvent.model_validate(data).schema_version == "1.1"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("project", ""),
        ("project", "p" * 201),
        ("branch", "main\x00"),
        ("user", "a\tb"),
        ("user", 5),
        ("cache_read_tokens", -1),
        ("cache_write_tokens", 10_000_001),
        ("reasoning_tokens", 1.5),
        ("reasoning_tokens", "3"),
    ],
)
def test_1_1_fields_reject_values_outside_their_range(field: str, value: Any) -> None:
    data = {**json.loads(WIRE_1_0), "schema_version": "1.1", field: value}
    with pytest.raises(ValidationError) as caught:
        TaskCompletionEvent.model_validate(data)
    assert caught.value.errors()[0]["loc"] == (field,)


def test_1_1_fields_accept_their_bounds() -> None:
    event = (
        _builder()
        .project("p" * 200)
        .branch("b")
        .user("ü" * 200)
        .cache_tokens(read=0, write=10_000_000)
        .reasoning_tokens(10_000_000)
        .build()
    )
    assert TaskCompletionEvent.model_validate_json(event.model_dump_json()) == event


_label = st.none() | st.text(
    st.characters(blacklist_categories=["Cc", "Cs"]), min_size=1, max_size=200
)
_count = st.none() | st.integers(0, 10_000_000)


@given(project=_label, branch=_label, user=_label, read=_count, write=_count, reasoning=_count)
def test_any_mix_of_1_1_fields_round_trips_and_sets_the_version(**fields: Any) -> None:
    event = (
        _builder()
        .project(fields["project"])
        .branch(fields["branch"])
        .user(fields["user"])
        .cache_tokens(read=fields["read"], write=fields["write"])
        .reasoning_tokens(fields["reasoning"])
        .build()
    )
    wire = event.model_dump_json()
    assert TaskCompletionEvent.model_validate_json(wire) == event
    carried = [name for name in SCHEMA_1_1_FIELDS if getattr(event, name) is not None]
    assert event.schema_version == ("1.1" if carried else "1.0")
    assert [name for name in SCHEMA_1_1_FIELDS if name in json.loads(wire)] == carried
    if not carried:
        assert wire == WIRE_1_0
