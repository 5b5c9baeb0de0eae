"""An outage costs what overflows the queue during it, never what waits for the interval.

A producer tracks at 100 events/s against the wire server on 127.0.0.1, which answers 503 for a
while and then recovers. The default interval (300 s) stays: recovery must come from the
submitter's own backoff, and the backlog must then go out back to back. Both submitters.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from mosaicstack_telemetry import TelemetryClient, TelemetryStats

from ._wire_server import Answer, WireServer
from .conftest import make_config, make_event, wait_until

RATE_PER_SECOND = 100


@dataclass
class Outcome:
    """What a run measured."""

    tracked: int
    recovered_after: float
    stats: TelemetryStats


def _recovered(wire: WireServer, moment: float) -> bool:
    return any(200 <= r.status < 300 and r.received_at >= moment for r in wire.event_requests())


def _first_success_after(wire: WireServer, moment: float) -> float:
    ok = [r.received_at for r in wire.event_requests() if 200 <= r.status < 300]
    return min(t for t in ok if t >= moment) - moment


def _produce(client: TelemetryClient, seconds: float) -> int:
    count, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        client.track(make_event())
        count += 1
        time.sleep(1 / RATE_PER_SECOND)
    return count


async def _produce_async(client: TelemetryClient, seconds: float) -> int:
    count, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        client.track(make_event())
        count += 1
        await asyncio.sleep(1 / RATE_PER_SECOND)
    return count


def _run_threaded(wire: WireServer, client: TelemetryClient, outage: float) -> Outcome:
    client.start()
    wire.down = True
    back_at: list[float] = []

    def recover() -> None:
        time.sleep(outage)
        wire.down = False
        back_at.append(time.monotonic())

    restorer = threading.Thread(target=recover)
    restorer.start()
    tracked = _produce(client, outage + 1.0)
    restorer.join()
    # A partial batch left after the backlog waits for the interval; stop() sends it.
    wait_until(lambda: _recovered(wire, back_at[0]), timeout=outage + 30)
    client.stop()
    return Outcome(tracked, _first_success_after(wire, back_at[0]), client.stats())


async def _run_async(wire: WireServer, client: TelemetryClient, outage: float) -> Outcome:
    await client.start_async()
    wire.down = True
    loop = asyncio.get_running_loop()
    back_at: list[float] = []

    def recover() -> None:
        wire.down = False
        back_at.append(time.monotonic())

    loop.call_later(outage, recover)
    tracked = await _produce_async(client, outage + 1.0)
    deadline = time.monotonic() + outage + 30
    while not _recovered(wire, back_at[0]) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await client.stop_async()
    return Outcome(tracked, _first_success_after(wire, back_at[0]), client.stats())


def _run(mode: str, wire: WireServer, client: TelemetryClient, outage: float) -> Outcome:
    if mode == "thread":
        return _run_threaded(wire, client, outage)
    return asyncio.run(_run_async(wire, client, outage))


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_a_blip_longer_than_the_in_flush_retries_loses_nothing(wire: WireServer, mode: str) -> None:
    # max_retries=1: the in-flush retries are over long before the server is back.
    client = TelemetryClient(make_config(wire.url, submit_interval_seconds=300.0, max_retries=1))
    outcome = _run(mode, wire, client, outage=3.0)

    assert outcome.recovered_after < 3.0  # the backoff's step at this point, not 300 s
    assert outcome.stats.evicted == 0
    assert outcome.stats.sent == outcome.tracked
    assert len(wire.delivered()) == outcome.tracked


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_a_long_outage_loses_only_what_overflowed_the_queue(wire: WireServer, mode: str) -> None:
    config = make_config(wire.url, submit_interval_seconds=300.0, max_retries=1, max_queue_size=200)
    client = TelemetryClient(config)
    outcome = _run(mode, wire, client, outage=5.0)

    stats = outcome.stats
    assert outcome.recovered_after < 8.0  # at most one capped-so-far backoff step
    # About 100/s for 5 s into a queue of 200: the rest overflowed during the outage itself.
    assert 0 < stats.evicted <= outcome.tracked - 200
    assert stats.sent == outcome.tracked - stats.evicted
    assert len(wire.delivered()) == stats.sent
    assert stats.failed_batches >= 1
    assert stats.retries >= 1


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_after_a_failed_flush_the_client_waits_as_long_as_the_server_asked(
    wire: WireServer, mode: str
) -> None:
    # No retry within the flush: the recovery backoff alone (0.5 to 1 s after a first failure)
    # would come back long before the 3 s this server asked for.
    wire.script(Answer(503, headers={"Retry-After": "3"}, body={"error": {"code": "unavailable"}}))
    config = make_config(wire.url, submit_interval_seconds=0.1, max_retries=0)

    def two_requests() -> bool:
        return len(wire.event_requests()) >= 2

    if mode == "thread":
        client = TelemetryClient(config)
        client.start()
        client.track(make_event())
        wire.wait_for(two_requests, timeout=30)
        client.stop()
    else:

        async def run() -> None:
            client = TelemetryClient(config)
            await client.start_async()
            client.track(make_event())
            deadline = time.monotonic() + 30
            while not two_requests() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await client.stop_async()

        asyncio.run(run())
    first, second = wire.event_requests()[:2]
    assert first.status == 503
    assert second.status == 200
    assert second.received_at - first.received_at >= 3.0
    assert len(wire.delivered()) == 1


# Failed tries before the server returns: by then the normal backoff's step is 8 to 16 s, which
# at 100 events/s would overflow the queue below with events tracked after the return.
_FAILED_TRIES = 5
_EVICTING_CONFIG = {"submit_interval_seconds": 300.0, "max_retries": 0, "max_queue_size": 300}


def _failed_tries(wire: WireServer) -> int:
    return sum(1 for r in wire.event_requests() if r.status == 503)


@dataclass
class Overflow:
    """An outage during which the queue overflowed, and what became of the events after it."""

    tracked: list[tuple[str, float]]
    back_at: float
    stats: TelemetryStats


def _overflow_threaded(wire: WireServer, client: TelemetryClient) -> Overflow:
    tracked: list[tuple[str, float]] = []
    done = threading.Event()

    def produce() -> None:
        while not done.is_set():
            event = make_event()
            client.track(event)
            tracked.append((str(event.event_id), time.monotonic()))
            time.sleep(1 / RATE_PER_SECOND)

    client.start()
    wire.down = True
    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_until(lambda: _failed_tries(wire) >= _FAILED_TRIES, timeout=90)
        wire.down = False
        back_at = time.monotonic()
        wait_until(lambda: _recovered(wire, back_at), timeout=60)
    finally:
        done.set()
        producer.join()
    client.stop()
    return Overflow(tracked, back_at, client.stats())


async def _overflow_async(wire: WireServer, client: TelemetryClient) -> Overflow:
    tracked: list[tuple[str, float]] = []

    async def produce() -> None:
        while True:
            event = make_event()
            client.track(event)
            tracked.append((str(event.event_id), time.monotonic()))
            await asyncio.sleep(1 / RATE_PER_SECOND)

    async def until(condition: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "condition not met in time"
            await asyncio.sleep(0.01)

    await client.start_async()
    wire.down = True
    producer = asyncio.create_task(produce())
    try:
        await until(lambda: _failed_tries(wire) >= _FAILED_TRIES, timeout=90)
        wire.down = False
        back_at = time.monotonic()
        await until(lambda: _recovered(wire, back_at), timeout=60)
    finally:
        producer.cancel()
    await client.stop_async()
    return Overflow(tracked, back_at, client.stats())


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_after_an_outage_that_overflowed_the_queue_the_first_batch_comes_within_seconds(
    wire: WireServer, mode: str
) -> None:
    client = TelemetryClient(make_config(wire.url, **_EVICTING_CONFIG))
    if mode == "thread":
        outcome = _overflow_threaded(wire, client)
    else:
        outcome = asyncio.run(_overflow_async(wire, client))

    # The evicting queue's 2 s cap (and some slack for a loaded machine), not a step of 8-16 s.
    assert _first_success_after(wire, outcome.back_at) < 4.0
    stats = outcome.stats
    assert stats.evicted > 0  # the queue did overflow during the outage
    delivered = wire.delivered()
    assert stats.sent + stats.evicted == len(outcome.tracked) == len(delivered) + stats.evicted
    # What was tracked once the server was back is all delivered: only the outage overflowed.
    after_return = [i for i, at in outcome.tracked if at >= outcome.back_at]
    assert after_return
    assert [i for i in after_return if i not in delivered] == []
