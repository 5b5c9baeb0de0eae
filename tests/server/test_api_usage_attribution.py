"""GET /v1/usage by schema 1.1's attribution over a real server, on both backends: 1.0 and 1.1
events fed to one server, grouped by and filtered on project, branch and user, with the cache
and reasoning sums, against plain arithmetic on the events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from _api_helpers import Served, make_event
from _usage_helpers import expected_usage, generated_events

from mosaicstack_telemetry import TaskCompletionEvent

_RANGE = {"from": "2025-12-20T05:00:00Z", "to": "2026-02-04T19:30:00Z"}
_SUMS = (
    "tasks",
    "input_tokens",
    "output_tokens",
    "cost_usd_micros",
    "duration_ms",
    "successes",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
# (group_by, filters): each attribution alone and with others, filters alone and combined,
# and three group_by names with a filter (no cuboid holds four: summed from the events).
_QUESTIONS: tuple[tuple[str, dict[str, str]], ...] = (
    ("project", {}),
    ("branch", {}),
    ("user", {}),
    ("project,model", {}),
    ("project,branch,user", {}),
    ("day,project", {}),
    ("", {"project": "acme/billing"}),
    ("", {"branch": "main"}),
    ("", {"user": "lee@example.com"}),
    ("model", {"project": "widgets", "branch": "fix/ünïcode-paths"}),
    ("week", {"project": "acme/web", "branch": "main", "user": "dana"}),
    ("model,branch,outcome", {"project": "acme/billing"}),
    ("user,task_type,harness", {"project": "widgets", "branch": "main"}),
    ("project", {"project": "nobody/none"}),
)


def _feed(served: Served, events: list[TaskCompletionEvent]) -> None:
    """What a 1.0 client (1.0 events, without the new fields) and a 1.1 client send."""
    client = served.client()
    for start in range(0, len(events), 100):
        batch = [
            event.model_dump(mode="json", exclude_none=True)
            for event in events[start : start + 100]
        ]
        response = client.post("/v1/events/batch", json={"events": batch})
        assert response.status_code == 200, response.text


def _expected(events: list[TaskCompletionEvent], group_by: str, filters: dict[str, str]) -> Any:
    names = [name for name in group_by.split(",") if name]
    start, end = (datetime.fromisoformat(_RANGE[edge]) for edge in _RANGE)
    return expected_usage(
        events, instance_id=None, start=start, end=end, group_by=names, filters=filters
    )


def _answers_exactly(client: httpx.Client, events: list[TaskCompletionEvent]) -> None:
    for group_by, filters in _QUESTIONS:
        response = client.get("/v1/usage", params={**_RANGE, "group_by": group_by, **filters})
        assert response.status_code == 200, response.text
        body = response.json()
        groups, totals = _expected(events, group_by, filters)
        names = body["group_by"]
        got = {tuple(group["key"][name] for name in names): group for group in body["groups"]}
        assert set(got) == set(groups), (group_by, filters)
        for key, sums in groups.items():
            for name in _SUMS:
                assert got[key][name] == sums.get(name, 0), (group_by, filters, key, name)
        for name in _SUMS:
            assert body["totals"][name] == totals.get(name, 0), (group_by, filters, name)
        keys = [
            [(v is not None, v or "") for v in group["key"].values()] for group in body["groups"]
        ]
        assert keys == sorted(keys)  # null first, then by text


def test_usage_by_attribution_equals_plain_arithmetic_folded_or_not(server: Served) -> None:
    events = generated_events(800, seed=31, instances=[server.instance_id])
    assert {event.schema_version for event in events} == {"1.0", "1.1"}
    _feed(server, events[:500])
    server.storage.fold_pending_usage()
    _feed(server, events[500:])  # the rest read from the events after the cursor
    client = server.client()
    _answers_exactly(client, events)
    while server.storage.fold_pending_usage():
        pass
    _answers_exactly(client, events)


def test_events_without_the_attribution_group_under_json_null_first(server: Served) -> None:
    client = server.client()
    old = make_event(server.instance_id, timestamp="2026-01-05T10:00:00Z")
    new = make_event(
        server.instance_id,
        schema_version="1.1",
        timestamp="2026-01-05T11:00:00Z",
        project="acme/web",
        cache_read_tokens=1_234,
        reasoning_tokens=56,
    )
    assert client.post("/v1/events/batch", json={"events": [new, old]}).status_code == 200
    query = {"from": "2026-01-05", "to": "2026-01-06", "group_by": "project,user"}
    body = client.get("/v1/usage", params=query).json()
    assert [group["key"] for group in body["groups"]] == [
        {"project": None, "user": None},
        {"project": "acme/web", "user": None},
    ]
    assert [group["cache_read_tokens"] for group in body["groups"]] == [0, 1_234]
    assert body["totals"]["reasoning_tokens"] == 56
    assert body["totals"]["cache_write_tokens"] == 0
    only = client.get("/v1/usage", params={**query, "project": "acme/web"}).json()
    assert only["totals"]["tasks"] == 1


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("project", "", "1 to 200 characters"),
        ("branch", "b" * 201, "1 to 200 characters"),
        ("user", "dana\nroot", "control characters"),
        ("project", "a\x7fb", "control characters"),
    ],
)
def test_an_invalid_attribution_filter_is_a_422_naming_it(
    sqlite_server: Served, name: str, value: str, message: str
) -> None:
    response = sqlite_server.client().get("/v1/usage", params={name: value})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith(f"{name}: ")
    assert message in error["message"]


def test_a_repeated_attribution_filter_is_a_422(sqlite_server: Served) -> None:
    response = sqlite_server.client().get("/v1/usage?project=a&project=b")
    assert response.status_code == 422
    assert "given more than once" in response.json()["error"]["message"]


def test_a_filter_value_of_200_characters_is_taken(sqlite_server: Served) -> None:
    response = sqlite_server.client().get("/v1/usage", params={"branch": "b" * 200})
    assert response.status_code == 200
    assert response.json()["totals"]["tasks"] == 0
