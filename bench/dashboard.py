"""Dashboard pages over a large table: the overview and the explorer at 1,000,000 events.

The table is loaded as the `usage` suite loads it (events over the last 120 days, folded into
the rollups as they are stored). Pages are fetched over HTTP from a server process by a signed-in
client, as a browser gets them: each overview page runs five usage queries and the token
percentiles (plus the instance list for an admin), all from rollups.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx

from bench import usage as usage_suite
from bench._server import database, serve_process
from bench._timing import Result, deadline_wait, percentile
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.storage import open_storage

__all__ = ["run"]

SUITE = "dashboard"
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
_EXPLORER = {
    "task_type": "implementation",
    "model": "claude-sonnet-4",
    "provider": "openrouter",
    "complexity": "high",
}


@contextmanager
def _signed_in(base_url: str, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        form = client.get("/dashboard/sign-in")
        token = _CSRF.search(form.text)
        assert token, "no sign-in form"
        response = client.post(
            "/dashboard/sign-in",
            data={"csrf": token[1], "key": key},
            headers={"Origin": base_url, "Sec-Fetch-Site": "same-origin"},
        )
        assert response.status_code == 303, response.status_code
        yield client


def _page_ms(client: httpx.Client, path: str, params: dict[str, str], repeats: int) -> list[float]:
    assert client.get(path, params=params).status_code == 200  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(path, params=params)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return times


def _backend(backend: str, count: int, repeats: int) -> list[Result]:
    name = f"{backend}, {count:,} events"
    results = []
    with database(backend) as url:
        storage = open_storage(url)
        try:
            storage.migrate()
            usage_suite._load(storage, count, datetime.now(UTC))  # the usage suite's table
            admin, _ = issue_api_key(storage, None, "bench", admin=True)
            instance, _ = issue_api_key(storage, usage_suite._INSTANCES[0], "bench")
        finally:
            storage.close()
        with serve_process(url, workers=1) as base_url:
            # A server started on a bulk-loaded table first summarizes it for predictions in
            # the background (seconds at 1M events; in a process of its own, so that pages
            # need not wait for it): timed once during it, then the steady state once done.
            with _signed_in(base_url, admin) as client:
                times = _page_ms(client, "/dashboard", {"days": "90"}, 10)
                label = f"overview, 90 days, admin, {name}, while summarizing the load"
                results.append(_result(label, times))
            _wait_summarized(url)
            for who, key in (("admin", admin), ("instance key", instance)):
                with _signed_in(base_url, key) as client:
                    for days in ("7", "30", "90"):
                        times = _page_ms(client, "/dashboard", {"days": days}, repeats)
                        results.append(_result(f"overview, {days} days, {who}, {name}", times))
            with _signed_in(base_url, admin) as client:
                times = _page_ms(client, "/dashboard/explorer", _EXPLORER, repeats)
                results.append(_result(f"explorer, one prediction, {name}", times))
    return results


def _wait_summarized(url: str) -> None:
    """Until the server's prediction summaries have read every stored event."""
    storage = open_storage(url)
    try:

        def summarized() -> bool:
            time.sleep(0.2)  # a poll, not a busy loop beside the server's own work
            return storage.event_backlog() == 0

        deadline_wait(summarized, 900, "the server to summarize the load for predictions")
    finally:
        storage.close()


def _result(label: str, times: list[float]) -> Result:
    note = f"p95 {percentile(times, 95):.0f} ms, max {max(times):.0f} ms, over HTTP"
    return Result(SUITE, label, statistics.median(times), "ms", note)


def run(quick: bool) -> list[Result]:
    """Both backends at 1,000,000 events (100,000 with --quick)."""
    count = 100_000 if quick else 1_000_000
    repeats = 10 if quick else 30
    return _backend("sqlite", count, repeats) + _backend("postgres", count, repeats)
