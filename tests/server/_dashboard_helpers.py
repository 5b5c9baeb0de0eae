"""Helpers of the dashboard tests: seeded events, a signed-in client, page fields."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import numpy as np
from _api_helpers import Served, make_event

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server.dashboard.formatting import format_count
from mosaicstack_telemetry_server.demo_data import simulate_events
from mosaicstack_telemetry_server.storage import Storage

SIGN_IN = "/dashboard/sign-in"
SIGN_OUT = "/dashboard/sign-out"
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def seed(
    storage: Storage, instances: Sequence[uuid.UUID], count: int, seed: int = 7
) -> list[TaskCompletionEvent]:
    """Store `count` simulated events spread over `instances` and the last two weeks."""
    now = datetime.now(UTC)
    events = [e for _, e in simulate_events(random.Random(seed), list(instances), count, now=now)]
    for start in range(0, len(events), 100):
        storage.insert_events(events[start : start + 100])
    return events


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token of the page's form."""
    match = _CSRF.search(page.text)
    assert match, "the page has no form with a CSRF token"
    return match[1]


def browser(url: str) -> httpx.Client:
    """A client that keeps cookies and follows nothing (redirects are checked by hand)."""
    return httpx.Client(base_url=url, follow_redirects=False, timeout=30.0)


def sign_in(client: httpx.Client, key: str) -> httpx.Response:
    """Fetch the sign-in form and post `key` with its token, as a browser on the page would."""
    form = client.get(SIGN_IN)
    origin = str(client.base_url).rstrip("/")
    return client.post(
        SIGN_IN,
        data={"csrf": csrf_of(form), "key": key},
        headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"},
    )


def total(page: httpx.Response, field: str) -> str:
    """The text of one headline total on the overview page."""
    match = re.search(rf'<dd id="total-{field}">([^<]*)</dd>', page.text)
    assert match, f"no total {field} on the page"
    return match[1]


def table(page: httpx.Response, chart_id: str) -> tuple[list[str], list[list[str]]]:
    """The head and the rows of the table of numbers of one chart, as text."""
    found: list[list[str]] = []
    inside = False

    class Reader(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            nonlocal inside
            if tag == "table":
                inside = ("id", f"{chart_id}-table") in attrs
            elif inside and tag == "tr":
                found.append([])
            elif inside and tag in ("th", "td"):
                found[-1].append("")

        def handle_endtag(self, tag: str) -> None:
            nonlocal inside
            if tag == "table":
                inside = False

        def handle_data(self, data: str) -> None:
            if inside and found and found[-1]:
                found[-1][-1] += data

    Reader().feed(page.text)
    assert found, f"no table of {chart_id} on the page"
    head, *rows = [[cell.strip() for cell in row] for row in found]
    return head, rows


# (model, provider, project, tasks, cost of each in micro-dollars): a priced model, a free
# local one, and one genai-prices does not know (its client stored 0), in a project of its own.
PRICED_AND_UNPRICED = (
    ("claude-sonnet-4-5", "anthropic", "acme/web", 2, 1_230_000),
    ("qwen3-coder", "ollama", "acme/web", 1, 0),
    ("mystery-coder-9", "custom", "acme/lab", 3, 0),
)


def day_of_the_events() -> datetime:
    """Yesterday at noon: inside the last 7 days, and every event on the same UTC day."""
    return datetime.combine(datetime.now(UTC).date() - timedelta(days=1), time(12), UTC)


def submit_priced_and_unpriced(served: Served) -> None:
    """Store the events of PRICED_AND_UNPRICED through `POST /v1/events/batch`."""
    noon = day_of_the_events()
    events: list[dict[str, Any]] = [
        make_event(
            served.instance_id,
            schema_version="1.1",
            model=model,
            provider=provider,
            project=project,
            actual_cost_usd_micros=cost,
            timestamp=(noon + timedelta(minutes=10 * m + n)).isoformat(),
        )
        for m, (model, provider, project, tasks, cost) in enumerate(PRICED_AND_UNPRICED)
        for n in range(tasks)
    ]
    response = served.client().post("/v1/events/batch", json={"events": events})
    assert response.status_code == 200, response.text


def project_token_events(served: Served, project: str) -> list[dict[str, Any]]:
    """A project's events of two models in the last hours, with tokens unlike the simulated
    events' (`seed`), in their wire form (not yet sent)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return [
        make_event(
            served.instance_id,
            schema_version="1.1",
            project=project,
            model=("claude-sonnet-4-5", "gpt-5")[n % 2],
            provider=("anthropic", "openai")[n % 2],
            actual_input_tokens=400_000 + 7_919 * n,
            actual_output_tokens=90_000 - 1_013 * n,
            timestamp=(now - timedelta(hours=1, minutes=n)).isoformat(),
        )
        for n in range(25)
    ]


def token_table(events: list[dict[str, Any]]) -> list[list[str]]:
    """The rows of the token chart's table for these events: numpy's percentiles (linear, as
    PostgreSQL's percentile_cont) rounded to the nearest token, by model."""
    rows = []
    for model in sorted({event["model"] for event in events}):
        mine = [event for event in events if event["model"] == model]
        for kind in ("input", "output"):
            values = np.percentile([e[f"actual_{kind}_tokens"] for e in mine], [10, 50, 90])
            rows.append([model, kind, *(format_count(int(np.rint(v))) for v in values)])
    return rows
