"""The asyncio submitter: the same contract as the thread, driven by a task of the running loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mosaicstack_telemetry import TelemetryClient

from ._wire_server import Answer, WireServer
from .conftest import make_config, make_event, no_jitter, warnings_of


async def _until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


async def test_async_context_manager_flushes_on_exit(wire: WireServer) -> None:
    events = [make_event() for _ in range(3)]
    async with TelemetryClient(make_config(wire.url)) as client:
        assert client.is_running
        for event in events:
            client.track(event)
    assert not client.is_running
    assert wire.delivered() == {str(e.event_id): 1 for e in events}


async def test_async_full_batch_wakes_the_task(wire: WireServer) -> None:
    async with TelemetryClient(make_config(wire.url, batch_size=4)) as client:
        for _ in range(4):
            client.track(make_event())
        await _until(lambda: len(wire.delivered()) == 4, timeout=5)


async def test_async_task_is_woken_by_tracks_from_other_threads(wire: WireServer) -> None:
    async with TelemetryClient(make_config(wire.url, batch_size=4)) as client:
        worker = threading.Thread(target=lambda: [client.track(make_event()) for _ in range(4)])
        worker.start()
        worker.join()
        await _until(lambda: len(wire.delivered()) == 4, timeout=5)


async def test_async_interval_flush(wire: WireServer) -> None:
    async with TelemetryClient(make_config(wire.url, submit_interval_seconds=0.05)) as client:
        client.track(make_event())
        await _until(lambda: len(wire.delivered()) == 1, timeout=5)


async def test_async_retries_honour_retry_after_then_deliver(wire: WireServer) -> None:
    wire.script(Answer(503, {"Retry-After": "1"}))
    async with TelemetryClient(make_config(wire.url, batch_size=1), random=no_jitter) as client:
        client.track(make_event())
        await _until(lambda: len(wire.delivered()) == 1)
    first, second = wire.requests
    assert second.received_at - first.received_at >= 0.95


async def test_async_split_drop_and_put_back_follow_the_contract(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    wire.script(Answer(413), Answer(422), Answer(500), Answer(500))
    events = [make_event() for _ in range(4)]
    config = make_config(wire.url, batch_size=4, max_retries=1)
    async with TelemetryClient(config, random=no_jitter) as client:
        for event in events:
            client.track(event)
        # 4 -> 413; first half -> 422 dropped; second half -> 500, 500: re-queued
        await _until(lambda: client.queue_size == 2 and len(wire.requests) == 4)
    ids = [str(e.event_id) for e in events]
    assert [r.event_ids for r in wire.requests] == [ids, ids[:2], ids[2:], ids[2:], ids[2:]]
    assert set(wire.delivered()) == set(ids[2:])
    assert len(warnings_of(sdk_logs)) == 2


async def test_async_stop_is_bounded_when_the_server_hangs(wire: WireServer) -> None:
    wire.hang = True
    client = TelemetryClient(make_config(wire.url, request_timeout_seconds=0.5))
    await client.start_async()
    client.track(make_event())

    started = time.perf_counter()
    await client.stop_async()
    assert time.perf_counter() - started < 0.5 + 1.0 + 0.5
    assert client.queue_size == 1


async def test_async_stop_is_bounded_when_the_server_is_down(unused_url: str) -> None:
    client = TelemetryClient(make_config(unused_url, request_timeout_seconds=0.5))
    await client.start_async()
    client.track(make_event())
    started = time.perf_counter()
    await client.stop_async()
    assert time.perf_counter() - started < 0.5 + 1.0 + 0.5
    assert client.queue_size == 1


async def test_async_track_stays_fast_while_the_server_hangs(wire: WireServer) -> None:
    wire.hang = True
    config = make_config(wire.url, batch_size=10, request_timeout_seconds=0.5)
    client = TelemetryClient(config)
    await client.start_async()
    events = [make_event() for _ in range(5000)]
    started = time.perf_counter()
    for event in events:
        client.track(event)
    assert time.perf_counter() - started < 1.0
    await client.stop_async()


async def test_async_dry_run_and_disabled_send_nothing(wire: WireServer) -> None:
    async with TelemetryClient(make_config(wire.url, dry_run=True)) as client:
        client.track(make_event())
    disabled = TelemetryClient(make_config(wire.url, enabled=False))
    await disabled.start_async()
    assert not disabled.is_running
    disabled.track(make_event())
    await disabled.stop_async()
    assert wire.requests == []


async def test_start_async_twice_keeps_one_task(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url))
    await client.start_async()
    tasks = len(asyncio.all_tasks())
    await client.start_async()
    client.start()  # a thread is not added beside a running task either
    assert len(asyncio.all_tasks()) == tasks
    await client.stop_async()
    await client.stop_async()


async def test_sync_stop_of_an_async_client_lets_the_task_flush(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url))
    await client.start_async()
    client.track(make_event())
    client.stop()  # cannot await from sync code: the task is asked to stop and flushes alone
    assert not client.is_running
    await _until(lambda: len(wire.delivered()) == 1)


async def test_stop_async_of_a_thread_client_flushes(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url))
    client.start()
    client.track(make_event())
    await client.stop_async()
    assert len(wire.delivered()) == 1


async def test_async_stop_interrupts_a_long_retry_wait_and_still_delivers(
    wire: WireServer,
) -> None:
    wire.script(Answer(503, {"Retry-After": "300"}))
    client = TelemetryClient(make_config(wire.url, batch_size=1), random=no_jitter)
    await client.start_async()
    event = make_event()
    client.track(event)
    await _until(lambda: len(wire.requests) == 1)

    started = time.perf_counter()
    await client.stop_async()
    assert time.perf_counter() - started < 1.5
    assert wire.delivered() == {str(event.event_id): 1}
