"""The budget routes over a real server on both backends: who may do what, what a budget
shows, and that its spend is the figure `GET /v1/usage` gives for its scope and period."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from _api_helpers import Served, make_event

from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.budgets.periods import period_bounds

_NOW = datetime.now(UTC)


def _z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _admin(served: Served) -> httpx.Client:
    key, _ = issue_api_key(served.storage, None, "ops", admin=True)
    return served.client(key)


def _put(admin: httpx.Client, name: str, **body: Any) -> httpx.Response:
    return admin.put(f"/v1/budgets/{name}", json={"period": "month", **body})


def _submit(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    response = client.post("/v1/events/batch", json={"events": events})
    assert response.status_code == 200, response.text


def test_a_budget_is_created_listed_replaced_and_deleted_without_its_secret(
    server: Served,
) -> None:
    admin = _admin(server)
    created = _put(
        admin,
        "team.a",
        amount_usd_micros=50_000_000,
        webhook_url="https://hooks.example/T0/B0",
        webhook_secret="s3cret-value",
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert "s3cret-value" not in created.text
    assert "webhook_secret" not in body
    assert body["thresholds"] == [0.5, 0.8, 1.0]
    assert body["spent_usd_micros"] == 0
    assert body["left_usd_micros"] == 50_000_000
    start, end = period_bounds("month", _NOW)
    assert (body["period_start"], body["period_end"]) == (_z(start), _z(end))
    assert _put(admin, "b", amount_usd_micros=1, period="day", thresholds=[1.0, 0.25]).json()[
        "thresholds"
    ] == [0.25, 1.0]
    replaced = _put(admin, "team.a", amount_usd_micros=7, period="week").json()
    assert (replaced["amount_usd_micros"], replaced["period"]) == (7, "week")
    listed = admin.get("/v1/budgets").json()["budgets"]
    assert [budget["name"] for budget in listed] == ["b", "team.a"]
    assert "s3cret" not in admin.get("/v1/budgets").text
    assert admin.delete("/v1/budgets/b").status_code == 204
    missing = admin.delete("/v1/budgets/b")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert [budget["name"] for budget in admin.get("/v1/budgets").json()["budgets"]] == ["team.a"]


def test_an_instance_key_manages_nothing_and_sees_the_budgets_covering_it(server: Served) -> None:
    admin, own = _admin(server), server.client()
    other = uuid.uuid4()
    for name, instance in (("mine", server.instance_id), ("all", None), ("theirs", other)):
        instance_id = None if instance is None else str(instance)
        assert _put(admin, name, amount_usd_micros=10, instance_id=instance_id).status_code == 200
    assert own.get("/v1/budgets").status_code == 403
    assert _put(own, "x", amount_usd_micros=1).json()["error"]["code"] == "forbidden"
    assert own.delete("/v1/budgets/mine").status_code == 403
    seen = [budget["name"] for budget in own.get("/v1/budgets/status").json()["budgets"]]
    assert seen == ["all", "mine"]
    every = [budget["name"] for budget in admin.get("/v1/budgets/status").json()["budgets"]]
    assert every == ["all", "mine", "theirs"]


@pytest.mark.parametrize(
    "body",
    [
        {"amount_usd_micros": 0},
        {"amount_usd_micros": 1.5},
        {"amount_usd_micros": "10"},
        {"amount_usd_micros": True},
        {"amount_usd_micros": 10, "period": "year"},
        {"amount_usd_micros": 10, "thresholds": [0.5, 0.5]},
        {"amount_usd_micros": 10, "thresholds": [0.1 * n for n in range(1, 12)]},
        {"amount_usd_micros": 10, "thresholds": [0]},
        {"amount_usd_micros": 10, "thresholds": [5e-324]},  # would fire at no spend at all
        {"amount_usd_micros": 10, "webhook_url": "file:///etc/passwd"},
        {"amount_usd_micros": 10, "webhook_url": "http://hé.example/"},
        {"amount_usd_micros": 10, "webhook_url": "http://host:99999/"},
        {"amount_usd_micros": 10, "webhook_url": "https://" + "a" * 2050},
        {"amount_usd_micros": 10, "webhook_secret": ""},
        {"amount_usd_micros": 10, "project": "p" * 201},
        {"amount_usd_micros": 10, "colour": "red"},
    ],
)
def test_an_invalid_budget_is_refused_with_422(sqlite_server: Served, body: dict[str, Any]) -> None:
    response = _admin(sqlite_server).put("/v1/budgets/ok", json={"period": "month", **body})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert "/etc/passwd" not in response.text


def test_a_bad_name_or_body_is_refused(sqlite_server: Served) -> None:
    admin = _admin(sqlite_server)
    assert _put(admin, "a" * 65, amount_usd_micros=1).status_code == 422
    assert _put(admin, "sp ace", amount_usd_micros=1).status_code == 422
    broken = admin.put("/v1/budgets/x", content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_json"
    assert admin.get("/v1/budgets").json() == {"budgets": []}


def test_the_spend_is_what_usage_reports_for_the_scope_and_period(server: Served) -> None:
    admin, own = _admin(server), server.client()
    other = uuid.uuid4()
    other_key, _ = server.issue(other)
    start, end = period_bounds("day", _NOW)
    inside = [start + timedelta(microseconds=1), _NOW - timedelta(seconds=1)]
    # Outside the period: the last microsecond before it (events past now are refused).
    before = start - timedelta(microseconds=1)
    _submit(
        own,
        [make_event(server.instance_id, timestamp=_z(stamp), actual_cost_usd_micros=cost)
         for stamp, cost in ((inside[0], 1_234), (inside[1], 5_000), (before, 900_000))]
        + [make_event(server.instance_id, timestamp=_z(inside[1]), actual_cost_usd_micros=77,
                      schema_version="1.1", project="acme/app")],
    )  # fmt: skip
    _submit(
        server.client(other_key),
        [make_event(other, timestamp=_z(inside[1]), actual_cost_usd_micros=40_000),
         make_event(other, timestamp=_z(inside[0]), actual_cost_usd_micros=3,
                    schema_version="1.1", project="acme/app")],
    )  # fmt: skip
    scopes = {
        "one": {"instance_id": str(server.instance_id)},
        "every": {},
        "one-project": {"instance_id": str(server.instance_id), "project": "acme/app"},
        "every-project": {"project": "acme/app"},
    }
    for name, scope in scopes.items():
        assert _put(admin, name, amount_usd_micros=10_000, period="day", **scope).status_code == 200
    budgets = {budget["name"]: budget for budget in admin.get("/v1/budgets").json()["budgets"]}
    window = {"from": _z(start), "to": _z(end)}
    mine = admin.get("/v1/usage", params={**window, "instance_id": str(server.instance_id)})
    every = admin.get("/v1/usage", params=window)
    assert budgets["one"]["spent_usd_micros"] == mine.json()["totals"]["cost_usd_micros"] == 6_311
    assert budgets["every"]["spent_usd_micros"] == every.json()["totals"]["cost_usd_micros"]
    assert budgets["every"]["spent_usd_micros"] == 46_314
    assert budgets["one-project"]["spent_usd_micros"] == 77
    assert budgets["every-project"]["spent_usd_micros"] == 80
    one = budgets["one"]
    assert one["left_usd_micros"] == 3_689
    assert one["forecast_usd_micros"] >= one["spent_usd_micros"]
    assert budgets["every"]["left_usd_micros"] == 0


def test_the_budget_routes_are_in_the_openapi_document(sqlite_api: httpx.Client) -> None:
    paths = sqlite_api.get("/openapi.json").json()["paths"]
    assert set(paths["/v1/budgets/{name}"]) == {"put", "delete"}
    assert "get" in paths["/v1/budgets"]
    assert "get" in paths["/v1/budgets/status"]
