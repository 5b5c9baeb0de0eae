"""stop()/stop_async() of a client started with start_async(), from every place they can be called.

The final flush must happen, or be left to the exit hook, whichever loop or thread calls stop:
never a lost queue, never an exception.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from mosaicstack_telemetry import TelemetryClient

from ._wire_server import Answer, Recorded, WireServer, accepted_answer
from .conftest import make_config, make_event, wait_until, warnings_of


async def _start_and_track(client: TelemetryClient, count: int) -> None:
    await client.start_async()
    for _ in range(count):
        client.track(make_event())


@pytest.fixture
def loop_in_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running forever in another thread (as in a web server's worker)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_sync_stop_after_the_loop_ended_flushes_every_event(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url))
    asyncio.run(_start_and_track(client, 3))  # returns: the task and its loop are gone

    client.stop()

    assert sum(wire.delivered().values()) == 3
    assert client.queue_size == 0
    assert not client.is_running


def test_stop_async_on_a_new_loop_after_the_first_one_closed_flushes_without_raising(
    wire: WireServer,
) -> None:
    client = TelemetryClient(make_config(wire.url))
    asyncio.run(_start_and_track(client, 3))

    asyncio.run(client.stop_async())

    assert sum(wire.delivered().values()) == 3
    assert client.queue_size == 0


def test_sync_stop_from_another_thread_waits_for_the_loops_final_flush(
    wire: WireServer, loop_in_thread: asyncio.AbstractEventLoop
) -> None:
    client = TelemetryClient(make_config(wire.url))
    started = asyncio.run_coroutine_threadsafe(_start_and_track(client, 3), loop_in_thread)
    started.result(5)
    assert client.is_running

    client.stop()

    assert sum(wire.delivered().values()) == 3
    assert client.queue_size == 0


def test_stop_async_on_another_loop_waits_for_the_owning_loops_final_flush(
    wire: WireServer, loop_in_thread: asyncio.AbstractEventLoop
) -> None:
    client = TelemetryClient(make_config(wire.url))
    asyncio.run_coroutine_threadsafe(_start_and_track(client, 3), loop_in_thread).result(5)

    asyncio.run(client.stop_async())

    assert sum(wire.delivered().values()) == 3
    assert client.queue_size == 0


def test_stop_when_the_owning_loop_is_stopped_but_not_closed_flushes_from_the_caller(
    wire: WireServer,
) -> None:
    loop = asyncio.new_event_loop()
    client = TelemetryClient(make_config(wire.url))
    try:
        loop.run_until_complete(_start_and_track(client, 2))  # the loop stops, its task waits

        client.stop()

        assert sum(wire.delivered().values()) == 2
        assert client.queue_size == 0
        # Should the loop run again, its task only finds the stop request and an empty queue.
        loop.run_until_complete(asyncio.wait_for(asyncio.gather(*asyncio.all_tasks(loop)), 5))
        assert sum(wire.delivered().values()) == 2
    finally:
        loop.close()


def _slow_answers(wire: WireServer, seconds: float, count: int) -> None:
    def slow(request: Recorded) -> Answer:
        time.sleep(seconds)  # the server's own slowness, not a wait of the test
        return accepted_answer(request)

    wire.script(*[slow] * count)


def _accounted(wire: WireServer, client: TelemetryClient) -> int:
    return len(wire.delivered()) + client.queue_size


def test_stop_during_a_slow_flush_ends_on_time_and_leaves_the_rest_queued(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    _slow_answers(wire, 0.3, 20)
    config = make_config(
        wire.url,
        request_timeout_seconds=1.0,
        shutdown_timeout_seconds=1.0,
        batch_size=10,
        submit_interval_seconds=0.05,
    )
    client = TelemetryClient(config)
    for _ in range(100):
        client.track(make_event())
    client.start()
    wait_until(lambda: len(wire.requests) >= 1)  # the interval flush is under way

    started = time.monotonic()
    client.stop()
    elapsed = time.monotonic() - started

    assert elapsed < 1.0 + 0.4  # the flush budget, not the join's extra grace second
    # Nothing is in flight once stop() returns: every event is delivered or still queued.
    assert _accounted(wire, client) >= 100
    assert 0 < client.queue_size < 100
    assert any(f"{client.queue_size} events still queued" in m for m in warnings_of(sdk_logs))


async def test_stop_async_during_a_slow_flush_ends_on_time_and_leaves_the_rest_queued(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    _slow_answers(wire, 0.3, 20)
    config = make_config(
        wire.url,
        request_timeout_seconds=1.0,
        shutdown_timeout_seconds=1.0,
        batch_size=10,
        submit_interval_seconds=0.05,
    )
    client = TelemetryClient(config)
    for _ in range(100):
        client.track(make_event())
    await client.start_async()
    deadline = time.monotonic() + 10
    while not wire.requests and time.monotonic() < deadline:  # the interval flush is under way
        await asyncio.sleep(0.01)

    started = time.monotonic()
    await client.stop_async()
    elapsed = time.monotonic() - started

    assert elapsed < 1.0 + 0.4
    assert _accounted(wire, client) >= 100
    assert 0 < client.queue_size < 100
    assert any(f"{client.queue_size} events still queued" in m for m in warnings_of(sdk_logs))
