"""One project's token ranges (issue 18 item 4): exact p10/p50/p90 of each model's most recent
events of the project, on both backends, checked against numpy.percentile of the same events;
and the overview page that shows them when its project filter picks one."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import numpy as np
import pytest
from _api_helpers import Served, make_event
from _dashboard_helpers import browser, project_token_events, sign_in, table, token_table
from _storage_helpers import INSTANCE
from _usage_helpers import generated_events

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server.dashboard.data import PROJECT_TOKEN_EVENTS
from mosaicstack_telemetry_server.dashboard.formatting import format_count
from mosaicstack_telemetry_server.storage import Storage
from mosaicstack_telemetry_server.storage.base import TokenPercentileRow

EVENTS = generated_events(600, seed=41)
# Whole days and partial ones at both edges.
START = datetime(2025, 12, 25, 6, tzinfo=UTC)
END = datetime(2026, 1, 30, 18, tzinfo=UTC)


def _stored(storage: Storage) -> list[tuple[int, TaskCompletionEvent]]:
    """Every stored event with its row id (what orders events of the same instant)."""
    storage.insert_events(EVENTS)
    return storage.export_events(instance_id=None, start=None, end=None, after=0, limit=10_000)


def _expected(
    stored: list[tuple[int, TaskCompletionEvent]],
    project: str,
    per_model: int,
    instance_id: UUID | None,
) -> dict[str, tuple[int, list[float], list[float]]]:
    """Per model: the sample's size and numpy's percentiles of its input and output tokens."""
    chosen = [
        (event.timestamp, row_id, event)
        for row_id, event in stored
        if event.project == project
        and START <= event.timestamp < END
        and instance_id in (None, event.instance_id)
    ]
    found = {}
    for model in {event.model for _, _, event in chosen}:
        latest = sorted(
            (item for item in chosen if item[2].model == model),
            key=lambda item: (item[0], item[1]),
            reverse=True,
        )[:per_model]
        found[model] = (
            len(latest),
            list(np.percentile([e.actual_input_tokens for _, _, e in latest], [10, 50, 90])),
            list(np.percentile([e.actual_output_tokens for _, _, e in latest], [10, 50, 90])),
        )
    return found


def _got(rows: list[TokenPercentileRow]) -> dict[str, tuple[int, list[float], list[float]]]:
    return {
        row.model: (row.events, list(row.input_tokens), list(row.output_tokens)) for row in rows
    }


def _flat(found: dict[str, tuple[int, list[float], list[float]]]) -> dict[str, list[float]]:
    return {
        model: [events, *inputs, *outputs] for model, (events, inputs, outputs) in found.items()
    }


@pytest.mark.parametrize("per_model", [1, 2, 7, 40, 10_000])
def test_a_projects_token_percentiles_are_numpys_over_each_models_latest_events(
    storage: Storage, per_model: int
) -> None:
    stored = _stored(storage)
    for project in ("acme/billing", "widgets"):
        for instance_id in (None, INSTANCE):
            rows = storage.project_token_percentiles(
                instance_id=instance_id, start=START, end=END, project=project, per_model=per_model
            )
            expected = _expected(stored, project, per_model, instance_id)
            assert expected, "the sample must not be empty"
            got, wanted = _flat(_got(rows)), _flat(expected)
            assert got.keys() == wanted.keys()
            for model, values in wanted.items():
                assert got[model] == pytest.approx(values, rel=1e-12), (project, model)
            if per_model == 7:
                assert all(row.events == 7 for row in rows)  # bounded: more are stored


def test_a_project_without_events_in_the_range_has_no_token_ranges(storage: Storage) -> None:
    _stored(storage)
    for project in ("nobody", "acme/web"):
        rows = storage.project_token_percentiles(
            instance_id=None,
            start=datetime(2030, 1, 1, tzinfo=UTC),
            end=datetime(2030, 2, 1, tzinfo=UTC),
            project=project,
            per_model=10,
        )
        assert rows == []
    with pytest.raises(ValueError, match="at least 1"):
        storage.project_token_percentiles(
            instance_id=None, start=START, end=END, project="widgets", per_model=0
        )


def test_the_overview_of_a_project_shows_that_projects_exact_token_ranges(server: Served) -> None:
    events = project_token_events(server, "acme/heavy")
    other = [make_event(server.instance_id, actual_input_tokens=1_000) for _ in range(5)]
    response = server.client().post("/v1/events/batch", json={"events": events + other})
    assert response.status_code == 200, response.text
    with browser(server.url) as client:
        sign_in(client, server.key)
        everyone = client.get("/dashboard", params={"days": 7})
        heavy = client.get("/dashboard", params={"days": 7, "project": "acme/heavy"})
    _, rows = table(heavy, "chart-tokens")
    assert rows == token_table(events)
    assert table(everyone, "chart-tokens")[1] != rows
    note = f"each model's {format_count(PROJECT_TOKEN_EVENTS)} most recent tasks in the range"
    assert note in heavy.text
    assert 'id="tokens-note"' not in everyone.text
