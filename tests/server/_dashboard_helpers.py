"""Helpers of the dashboard tests: seeded events, a signed-in client, page fields."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx

from mosaicstack_telemetry import TaskCompletionEvent
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
