"""GET /v1/usage and admin keys over a real server: tenancy, the contract's answers and errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from _api_helpers import Served, make_event

from mosaicstack_telemetry_server.auth import issue_api_key

_NOW = datetime.now(UTC).replace(microsecond=0)


def _stamp(days_ago: float) -> str:
    return (_NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")


def _submit(client: httpx.Client, instance_id: uuid.UUID, events: list[dict[str, Any]]) -> None:
    response = client.post("/v1/events/batch", json={"events": events})
    assert response.status_code == 200, response.text


def _admin(served: Served) -> httpx.Client:
    key, record = issue_api_key(served.storage, None, "ops", admin=True)
    assert record.is_admin
    return served.client(key)


def _two_instances(served: Served) -> tuple[httpx.Client, uuid.UUID, httpx.Client, uuid.UUID]:
    mine, other = served.instance_id, uuid.uuid4()
    other_key, _ = served.issue(other)
    own_client, other_client = served.client(), served.client(other_key)
    _submit(
        own_client,
        mine,
        [
            make_event(mine, timestamp=_stamp(1), actual_cost_usd_micros=100, model="m-a"),
            make_event(mine, timestamp=_stamp(2), actual_cost_usd_micros=200, model="m-b"),
        ],
    )
    _submit(
        other_client,
        other,
        [make_event(other, timestamp=_stamp(1), actual_cost_usd_micros=7000, outcome="failure")],
    )
    return own_client, mine, other_client, other


def test_an_instance_key_sees_only_its_own_instance(server: Served) -> None:
    own, _mine, other, _other_id = _two_instances(server)
    body = own.get("/v1/usage", params={"group_by": "model"}).json()
    assert body["totals"]["tasks"] == 2
    assert body["totals"]["cost_usd_micros"] == 300
    assert [group["key"] for group in body["groups"]] == [{"model": "m-a"}, {"model": "m-b"}]
    theirs = other.get("/v1/usage").json()
    assert theirs["totals"]["tasks"] == 1
    assert theirs["totals"]["cost_usd_micros"] == 7000
    assert theirs["totals"]["success_rate"] == 0.0
    assert theirs["groups"] == [{"key": {}, **theirs["totals"]}]
    for params in ({"instance_id": str(uuid.uuid4())}, {"group_by": "instance_id"}):
        refused = own.get("/v1/usage", params=params)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"


def test_an_admin_key_reads_every_instance_and_may_narrow_to_one(server: Served) -> None:
    _own, mine, _other, other = _two_instances(server)
    admin = _admin(server)
    everything = admin.get("/v1/usage", params={"group_by": "instance_id"}).json()
    assert everything["totals"]["tasks"] == 3
    by_instance = {g["key"]["instance_id"]: g["tasks"] for g in everything["groups"]}
    assert by_instance == {str(mine): 2, str(other): 1}
    one = admin.get("/v1/usage", params={"instance_id": str(other)}).json()
    assert one["totals"]["cost_usd_micros"] == 7000
    nobody = admin.get("/v1/usage", params={"instance_id": str(uuid.uuid4())}).json()
    assert nobody["groups"] == []
    assert nobody["totals"]["tasks"] == 0


def test_an_admin_key_cannot_submit_events_but_may_ask_for_predictions(
    sqlite_server: Served,
) -> None:
    admin = _admin(sqlite_server)
    event = make_event(sqlite_server.instance_id, timestamp=_stamp(1))
    refused = admin.post("/v1/events/batch", json={"events": [event]})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert sqlite_server.storage.count_events() == 0
    query = {
        "task_type": "implementation",
        "model": "m",
        "provider": "anthropic",
        "complexity": "medium",
    }
    predicted = admin.post("/v1/predictions/batch", json={"queries": [query]})
    assert predicted.status_code == 200
    assert predicted.json()["results"][0]["metadata"]["fallback_level"] == -1


def test_range_defaults_to_the_last_30_days_and_is_echoed_in_utc(sqlite_server: Served) -> None:
    client = sqlite_server.client()
    _submit(
        client,
        sqlite_server.instance_id,
        [make_event(sqlite_server.instance_id, timestamp=_stamp(days)) for days in (1, 29, 31)],
    )
    body = client.get("/v1/usage").json()
    assert body["totals"]["tasks"] == 2
    start = datetime.fromisoformat(body["from"])
    end = datetime.fromisoformat(body["to"])
    assert body["from"].endswith("Z")
    assert end - start == timedelta(days=30)
    assert abs(end - datetime.now(UTC)) < timedelta(minutes=1)
    assert body["group_by"] == []
    dated = client.get(
        "/v1/usage", params={"from": "2020-01-01", "to": "2020-01-02T02:00:00+02:00"}
    ).json()
    assert (dated["from"], dated["to"]) == ("2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z")
    # A "+" typed into a URL unencoded reaches the server as a space.
    raw = client.get("/v1/usage?from=2020-01-01T02:00:00+02:00&to=2020-01-03").json()
    assert raw["from"] == "2020-01-01T00:00:00Z"


def test_invalid_parameters_get_422_that_say_what_was_wrong(shared_api: httpx.Client) -> None:
    cases = [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-01-01T00:00:00"}, "from"),  # no offset: ambiguous
        ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
        ({"from": "2026-01-01", "to": "2026-01-01"}, "from"),
        ({"from": "2024-01-01", "to": "2025-01-02"}, "from"),  # 367 days
        ({"group_by": "colour"}, "group_by"),
        ({"group_by": "day,day"}, "group_by"),
        ({"group_by": "day,model,harness,outcome"}, "group_by"),
        ({"group_by": "day,,model"}, "group_by"),
        ([("from", "2026-01-01"), ("from", "2026-01-02")], "from"),
        ({"to": "0001-01-01T00:00:00Z"}, "to"),  # the default span before it overflows
        ({"from": "9999-12-31T23:00:00Z"}, "from"),  # its next day overflows
    ]
    for params, field in cases:
        response = shared_api.get("/v1/usage", params=params)
        assert response.status_code == 422, (params, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["details"][0]["field"] == field, params
    ok = shared_api.get("/v1/usage", params={"from": "2024-01-01", "to": "2025-01-01"})
    assert ok.status_code == 200  # 366 days: a leap year is allowed


def test_an_admin_instance_filter_must_be_a_uuid(sqlite_server: Served) -> None:
    admin = _admin(sqlite_server)
    response = admin.get("/v1/usage", params={"instance_id": "not-a-uuid"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "instance_id"


def test_usage_needs_a_key(shared_server: Served) -> None:
    response = httpx.get(shared_server.url + "/v1/usage")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_usage_is_in_the_served_openapi_document(shared_api: httpx.Client) -> None:
    document = shared_api.get("/openapi.json").json()
    operation = document["paths"]["/v1/usage"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert names == {"from", "to", "group_by", "instance_id", "project", "branch", "user"}
    assert {"200", "401", "403", "422"} <= set(operation["responses"])
    assert "403" in document["paths"]["/v1/events/batch"]["post"]["responses"]
    assert "UsageReport" in document["components"]["schemas"]
