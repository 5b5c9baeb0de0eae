"""Schema 1.1 over real HTTP, on both backends: its optional fields are stored and read back,
a 1.0 client and a 1.1 client feed the same server, and a 1.0 event carrying a 1.1 field is
rejected with the field named."""

from __future__ import annotations

import httpx
import pytest
from _api_helpers import Served, make_event

from mosaicstack_telemetry import EventBuilder
from mosaicstack_telemetry.models.events import SCHEMA_1_1_FIELDS

BATCH = "/v1/events/batch"

ATTRIBUTION = {
    "project": "acme/billing",
    "branch": "feature/invoices",
    "user": "dana@example.com",
    "cache_read_tokens": 120_000,
    "cache_write_tokens": 8_000,
    "reasoning_tokens": 1_500,
}


def test_a_1_1_event_is_stored_with_every_field_and_a_1_0_event_without_them(
    server: Served, api: httpx.Client
) -> None:
    new = make_event(server.instance_id, schema_version="1.1", **ATTRIBUTION)
    old = make_event(server.instance_id)
    response = api.post(BATCH, json={"events": [new, old]})
    assert response.status_code == 200, response.text
    stored_new = server.storage.get_event(server.instance_id, new["event_id"])
    stored_old = server.storage.get_event(server.instance_id, old["event_id"])
    assert stored_new is not None
    assert stored_old is not None
    assert stored_new.schema_version == "1.1"
    assert {name: getattr(stored_new, name) for name in SCHEMA_1_1_FIELDS} == ATTRIBUTION
    assert stored_old.schema_version == "1.0"
    assert all(getattr(stored_old, name) is None for name in SCHEMA_1_1_FIELDS)
    # Read back, the 1.0 event is its 1.0 form: none of the 1.1 keys appear, not even as null.
    assert set(stored_old.model_dump(mode="json")) == set(old)


def test_an_event_with_1_1_fields_and_no_schema_version_is_taken_as_1_1(
    server: Served, api: httpx.Client
) -> None:
    event = make_event(server.instance_id, project="acme/web")
    del event["schema_version"]
    response = api.post(BATCH, json={"events": [event]})
    assert response.status_code == 200, response.text
    stored = server.storage.get_event(server.instance_id, event["event_id"])
    assert stored is not None
    assert (stored.schema_version, stored.project) == ("1.1", "acme/web")


@pytest.mark.parametrize("field", SCHEMA_1_1_FIELDS)
def test_a_1_0_event_carrying_a_1_1_field_is_rejected_naming_it(
    sqlite_server: Served, sqlite_api: httpx.Client, field: str
) -> None:
    event = make_event(sqlite_server.instance_id, schema_version="1.0")
    event[field] = ATTRIBUTION[field]
    response = sqlite_api.post(BATCH, json={"events": [event]})
    assert response.status_code == 207
    result = response.json()["results"][0]
    assert result["status"] == "rejected"
    assert f"{field} is a schema 1.1 field" in result["error"]
    assert "(schema_1_1_field)" in result["error"]
    assert sqlite_server.storage.count_events() == 0


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("project", "", "string_too_short"),
        ("branch", "b" * 201, "string_too_long"),
        ("user", "a\nb", "string_pattern_mismatch"),
        ("user", 42, "string_type"),
        ("cache_read_tokens", -1, "greater_than_equal"),
        ("cache_write_tokens", 10_000_001, "less_than_equal"),
        ("reasoning_tokens", "12", "int_type"),
    ],
)
def test_a_1_1_field_out_of_its_range_is_rejected_naming_the_rule(
    sqlite_server: Served, sqlite_api: httpx.Client, field: str, value: object, rule: str
) -> None:
    event = make_event(sqlite_server.instance_id, schema_version="1.1", **{field: value})
    response = sqlite_api.post(BATCH, json={"events": [event]})
    error = response.json()["results"][0]["error"]
    assert error.startswith(f"{field}:"), error
    assert f"({rule})" in error


def test_events_from_the_sdk_builder_round_trip_through_the_server(
    server: Served, api: httpx.Client
) -> None:
    plain = EventBuilder(server.instance_id).model("claude-sonnet-4").build()
    attributed = (
        EventBuilder(server.instance_id)
        .model("claude-sonnet-4")
        .project("acme/billing")
        .branch("main")
        .user("dana")
        .cache_tokens(read=10, write=5)
        .reasoning_tokens(7)
        .build()
    )
    body = b'{"events":[' + plain.model_dump_json().encode() + b","
    body += attributed.model_dump_json().encode() + b"]}"
    response = api.post(BATCH, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    for event in (plain, attributed):
        assert server.storage.get_event(server.instance_id, event.event_id) == event
