"""POST /v1/events/batch over real HTTP: per-event verdicts, idempotency, instance binding."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
from _api_helpers import Served, make_event

BATCH = "/v1/events/batch"


def _verdicts(response: httpx.Response) -> list[tuple[str | None, str]]:
    return [(r["event_id"], r["status"]) for r in response.json()["results"]]


def test_valid_batch_is_accepted_with_200_and_stored(server: Served, api: httpx.Client) -> None:
    events = [make_event(server.instance_id) for _ in range(3)]
    response = api.post(BATCH, json={"events": events})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["accepted"] == 3
    assert body["rejected"] == 0
    assert _verdicts(response) == [(e["event_id"], "accepted") for e in events]
    assert all(r["error"] is None for r in body["results"])
    assert server.storage.count_events() == 3


def test_each_event_is_judged_on_its_own_with_207(server: Served, api: httpx.Client) -> None:
    good = make_event(server.instance_id)
    bad_enum = make_event(server.instance_id, task_type="juggling")
    bad_range = make_event(server.instance_id, task_duration_ms=-5)
    bad_type = make_event(server.instance_id, actual_input_tokens="12")
    response = api.post(BATCH, json={"events": [bad_enum, good, bad_range, bad_type]})
    assert response.status_code == 207
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 3)
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["rejected", "accepted", "rejected", "rejected"]
    errors = [r["error"] for r in body["results"]]
    assert errors[0].startswith("task_type:")
    assert "(enum)" in errors[0]
    assert errors[2].startswith("task_duration_ms:")
    assert "greater_than_equal" in errors[2]
    assert errors[3].startswith("actual_input_tokens:")
    assert "int_type" in errors[3]
    assert body["results"][0]["event_id"] == bad_enum["event_id"]
    assert server.storage.count_events() == 1


def test_resending_a_batch_accepts_it_again_and_stores_it_once(
    server: Served, api: httpx.Client
) -> None:
    events = [make_event(server.instance_id) for _ in range(5)]
    first = api.post(BATCH, json={"events": events})
    again = api.post(BATCH, json={"events": events})
    assert first.status_code == again.status_code == 200
    assert again.json()["accepted"] == 5
    assert server.storage.count_events() == 5


def test_an_event_repeated_within_a_batch_is_stored_once(server: Served, api: httpx.Client) -> None:
    event = make_event(server.instance_id)
    response = api.post(BATCH, json={"events": [event, event, event]})
    assert response.status_code == 200
    assert _verdicts(response) == [(event["event_id"], "accepted")] * 3
    assert server.storage.count_events() == 1


def test_event_of_another_instance_is_rejected_and_never_stored(
    server: Served, api: httpx.Client
) -> None:
    mine = make_event(server.instance_id)
    theirs = make_event(uuid.uuid4())
    response = api.post(BATCH, json={"events": [mine, theirs]})
    assert response.status_code == 207
    result = response.json()["results"][1]
    assert result == {
        "event_id": theirs["event_id"],
        "status": "rejected",
        "error": "instance_id does not match the API key's instance",
    }
    assert server.storage.count_events() == 1
    # The other instance's own key may still send that very event id: it was never stored.
    other_key, _ = server.issue(uuid.UUID(theirs["instance_id"]))
    response = server.client(other_key).post(BATCH, json={"events": [theirs]})
    assert response.status_code == 200
    assert server.storage.count_events() == 2


def test_same_event_id_from_two_instances_is_stored_for_each(
    server: Served, api: httpx.Client
) -> None:
    other = uuid.uuid4()
    other_key, _ = server.issue(other)
    event_id = str(uuid.uuid4())
    assert api.post(BATCH, json={"events": [make_event(server.instance_id, event_id=event_id)]})
    response = server.client(other_key).post(
        BATCH, json={"events": [make_event(other, event_id=event_id)]}
    )
    assert response.status_code == 200
    assert server.storage.count_events() == 2


def test_gzip_body_is_accepted(server: Served, api: httpx.Client) -> None:
    events = [make_event(server.instance_id) for _ in range(100)]
    body = gzip.compress(json.dumps({"events": events}).encode())
    response = api.post(
        BATCH,
        content=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.json()["accepted"] == 100
    assert server.storage.count_events() == 100


def test_multi_member_gzip_body_is_accepted(
    sqlite_server: Served, sqlite_api: httpx.Client
) -> None:
    text = json.dumps({"events": [make_event(sqlite_server.instance_id)]}).encode()
    body = gzip.compress(text[:20]) + gzip.compress(text[20:])
    response = sqlite_api.post(
        BATCH,
        content=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200


def test_entries_without_readable_id_get_null_event_id(
    sqlite_server: Served, sqlite_api: httpx.Client
) -> None:
    no_id_and_bad = make_event(sqlite_server.instance_id, task_duration_ms=-1)
    del no_id_and_bad["event_id"]
    bad_id = make_event(sqlite_server.instance_id, event_id="not-a-uuid")
    response = sqlite_api.post(BATCH, json={"events": [no_id_and_bad, bad_id, 42, None, ["x"]]})
    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["event_id"] for r in results] == [None] * 5
    assert results[0]["error"].startswith("task_duration_ms:")
    assert results[1]["error"].startswith("event_id:")
    assert all(r["error"].startswith("(event): must be a JSON object") for r in results[2:])


def test_fields_the_reference_defaults_may_be_left_out(
    sqlite_server: Served, sqlite_api: httpx.Client
) -> None:
    event = make_event(sqlite_server.instance_id)
    del event["timestamp"], event["schema_version"], event["event_id"]
    before = datetime.now(UTC)
    response = sqlite_api.post(BATCH, json={"events": [event]})
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert result["status"] == "accepted"
    minted = UUID(result["event_id"])  # the server's own id, returned to the client
    stored = sqlite_server.storage.get_event(sqlite_server.instance_id, minted)
    assert stored is not None
    assert stored.schema_version == "1.0"
    assert before - timedelta(seconds=1) <= stored.timestamp <= datetime.now(UTC)


def test_only_the_known_schema_versions_are_accepted(
    sqlite_server: Served, sqlite_api: httpx.Client
) -> None:
    events = [
        make_event(sqlite_server.instance_id, schema_version="2.0"),
        make_event(sqlite_server.instance_id, schema_version="1.3"),
        make_event(sqlite_server.instance_id, schema_version="v1"),
        make_event(sqlite_server.instance_id, schema_version="1.0"),
        make_event(sqlite_server.instance_id, schema_version="1.1"),
    ]
    response = sqlite_api.post(BATCH, json={"events": events})
    statuses = [r["status"] for r in response.json()["results"]]
    assert statuses == ["rejected", "rejected", "rejected", "accepted", "accepted"]
    for result in response.json()["results"][:3]:
        assert result["error"] == (
            "schema_version: must be one of 1.0, 1.1 (unsupported_schema_version)"
        )


def test_rejection_error_names_the_field_without_echoing_huge_input(
    sqlite_server: Served, sqlite_api: httpx.Client
) -> None:
    huge = "Z" * 200_000
    event = make_event(sqlite_server.instance_id, model=huge, language=huge)
    response = sqlite_api.post(BATCH, json={"events": [event]})
    assert response.status_code == 207
    error = response.json()["results"][0]["error"]
    assert "model:" in error
    assert "string_too_long" in error
    assert "ZZZZ" not in error
    assert len(response.content) < 2_000


def test_an_event_with_many_problems_gets_a_bounded_error(
    sqlite_server: Served, sqlite_api: httpx.Client
) -> None:
    event = {"event_id": str(uuid.uuid4()), "timestamp": "x", "schema_version": "1.0"}
    response = sqlite_api.post(BATCH, json={"events": [event]})
    error = response.json()["results"][0]["error"]
    assert error.count(";") == 5  # five problems named, then "and N more"
    assert error.endswith("more")


def test_unknown_fields_are_ignored(sqlite_server: Served, sqlite_api: httpx.Client) -> None:
    event = make_event(sqlite_server.instance_id, future_field={"nested": [1, 2, 3]})
    response = sqlite_api.post(BATCH, json={"events": [event]})
    assert response.status_code == 200


def test_implausible_timestamps_are_rejected_per_event_with_the_reason(
    server: Served, api: httpx.Client
) -> None:
    now = datetime.now(UTC)
    ahead = make_event(server.instance_id, timestamp=(now + timedelta(hours=25)).isoformat())
    ancient = make_event(server.instance_id, timestamp="2019-12-31T23:59:59Z")
    year_one = make_event(server.instance_id, timestamp="0001-01-01T00:00:00Z")
    edge_ahead = make_event(server.instance_id, timestamp=(now + timedelta(hours=23)).isoformat())
    edge_old = make_event(server.instance_id, timestamp="2020-01-01T00:00:00Z")
    response = api.post(BATCH, json={"events": [ahead, ancient, year_one, edge_ahead, edge_old]})
    assert response.status_code == 207
    statuses = [r["status"] for r in response.json()["results"]]
    assert statuses == ["rejected", "rejected", "rejected", "accepted", "accepted"]
    errors = [r["error"] for r in response.json()["results"]]
    assert "more than 24 hours ahead" in errors[0]
    assert "before 2020-01-01" in errors[1]
    assert "before 2020-01-01" in errors[2]
    assert all("(implausible_timestamp)" in error for error in errors[:3])
    assert server.storage.count_events() == 2
