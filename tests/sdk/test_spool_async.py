"""Under asyncio the spool's files are written (and large ones read) in a worker thread.

The application's event loop keeps running while the submitter spools thousands of events: a
ticking task sees the spool's files appear one by one, which it could not if the loop were held
for the whole write. And nothing is lost on the way: every event comes back out of the spool.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mosaicstack_telemetry import TelemetryClient

from ._wire_server import WireServer
from .conftest import make_config, make_event, warnings_of

# Events evicted into the spool at once: thirty files of one batch each.
_EVICTED = 3_000


def _spool_files(spool: Path) -> int:
    """Files written to the spool so far: claimed ones too (a claim is a rename, not a write)."""
    return sum(".events" in name for name in os.listdir(spool)) if spool.exists() else 0


async def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_the_loop_keeps_running_while_a_full_queue_is_spooled_and_nothing_is_lost(
    wire: WireServer, unused_url: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    config = make_config(
        unused_url,
        spool_dir=spool,
        max_queue_size=_EVICTED,
        submit_interval_seconds=300.0,
        shutdown_timeout_seconds=10.0,
    )
    events = [make_event() for _ in range(2 * _EVICTED)]
    client = TelemetryClient(config)
    await client.start_async()
    seen: set[int] = set()
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            seen.add(_spool_files(spool))
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    for event in events:  # without yielding: the queue evicts half of them, kept for the spool
        client.track(event)
    await _until(lambda: client.stats().spooled >= _EVICTED)
    done.set()
    await ticker
    # The ticker ran between two of the thirty files: the write did not hold the loop.
    assert any(0 < count < _EVICTED // 100 for count in seen), sorted(seen)

    await client.stop_async()  # the server is unreachable: the rest goes to the spool too
    stats = client.stats()
    assert (stats.spooled, stats.evicted, stats.sent) == (2 * _EVICTED, 0, 0)

    up = TelemetryClient(make_config(wire.url, spool_dir=spool, submit_interval_seconds=300.0))
    await up.start_async()  # reads the spool's files (of 100 events: in a thread) and sends them
    await _until(lambda: len(wire.delivered()) == 2 * _EVICTED, timeout=120)
    await up.stop_async()
    assert wire.delivered() == {str(e.event_id): 1 for e in events}
    assert _spool_files(spool) == 0


async def test_a_burst_beyond_twice_the_queue_between_two_wakes_evicts_the_excess_and_says_so(
    unused_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The documented limit of the spool: track() never writes, so what arrives before the
    # submitter wakes beyond the queue and as many set aside is evicted, counted and logged.
    config = make_config(unused_url, spool_dir=tmp_path, max_queue_size=100)
    client = TelemetryClient(config)
    await client.start_async()
    for _ in range(350):  # without yielding: the submitter cannot wake in between
        client.track(make_event())
    assert client.stats().evicted == 150
    await client.stop_async()
    stats = client.stats()
    assert (stats.evicted, stats.spooled, stats.sent) == (150, 200, 0)
    assert "150 events were evicted because the queue was full" in warnings_of(caplog)
