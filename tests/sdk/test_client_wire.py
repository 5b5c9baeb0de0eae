"""The client side of the wire contract, against a real HTTP server on 127.0.0.1 (sync path)."""

from __future__ import annotations

import gzip
import json
import threading
import time

import pytest

from mosaicstack_telemetry import TelemetryClient

from ._wire_server import Answer, Recorded, WireServer
from .conftest import API_KEY, make_config, make_event, no_jitter, wait_until, warnings_of


def _rejecting_first(request: Recorded) -> Answer:
    ids = request.event_ids
    results = [{"event_id": ids[0], "status": "rejected", "error": "model: too long"}] + [
        {"event_id": i, "status": "accepted", "error": None} for i in ids[1:]
    ]
    return Answer(207, body={"accepted": len(ids) - 1, "rejected": 1, "results": results})


def test_batch_goes_out_with_bearer_user_agent_and_json(wire: WireServer) -> None:
    events = [make_event()]
    with TelemetryClient(make_config(wire.url, user_agent="agent-test/9")) as client:
        for event in events:
            client.track(event)

    (request,) = wire.requests
    assert request.path == "/v1/events/batch"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["user-agent"] == "agent-test/9"
    assert request.headers["content-type"] == "application/json"
    assert "content-encoding" not in request.headers  # one event is under 1 KiB
    assert request.event_ids == [str(e.event_id) for e in events]
    assert request.body["events"][0] == json.loads(events[0].model_dump_json())


def test_large_batches_are_gzipped(wire: WireServer) -> None:
    events = [make_event() for _ in range(20)]
    with TelemetryClient(make_config(wire.url)) as client:
        for event in events:
            client.track(event)

    (request,) = wire.requests
    assert request.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(request.raw))["events"][19]["event_id"] == str(
        events[19].event_id
    )
    assert len(request.raw) < len(gzip.decompress(request.raw))


def test_batches_respect_batch_size(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url, batch_size=10))
    client.start()
    for _ in range(25):
        client.track(make_event())
    client.stop()

    sizes = [len(r.event_ids) for r in wire.requests]
    assert sum(sizes) == 25
    assert max(sizes) <= 10


def test_full_batch_wakes_the_submitter_before_the_interval(wire: WireServer) -> None:
    with TelemetryClient(make_config(wire.url, batch_size=5, submit_interval_seconds=60)) as c:
        for _ in range(5):
            c.track(make_event())
        wire.wait_for(lambda: len(wire.delivered()) == 5, timeout=5)
        assert c.queue_size == 0


def test_interval_flushes_a_partial_batch(wire: WireServer) -> None:
    with TelemetryClient(make_config(wire.url, submit_interval_seconds=0.05)) as client:
        client.track(make_event())
        wire.wait_for(lambda: len(wire.delivered()) == 1, timeout=5)
        assert client.is_running


def test_transient_errors_are_retried_honouring_retry_after(wire: WireServer) -> None:
    wire.script(Answer(503, {"Retry-After": "1"}), Answer(429, {"Retry-After": "0"}))
    config = make_config(wire.url, batch_size=1)
    with TelemetryClient(config, random=no_jitter) as client:
        event = make_event()
        client.track(event)
        wire.wait_for(lambda: wire.delivered()[str(event.event_id)] == 1, timeout=10)

    first, second, third = wire.requests
    assert [r.status for r in wire.requests] == [503, 429, 200]
    assert second.received_at - first.received_at >= 0.95
    assert first.event_ids == second.event_ids == third.event_ids


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_exhausted_retries_put_the_batch_back_with_one_warning(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture, status: int
) -> None:
    wire.script(*[Answer(status)] * 3)
    config = make_config(wire.url, batch_size=2, max_retries=2)
    client = TelemetryClient(config, random=no_jitter)
    client.start()
    events = [make_event(), make_event()]
    for event in events:
        client.track(event)
    wire.wait_for(lambda: len(wire.requests) == 3)
    wait_until(lambda: client.queue_size == 2)

    assert len(warnings_of(sdk_logs)) == 1
    assert f"HTTP {status}" in warnings_of(sdk_logs)[0]
    client.stop()  # the final flush delivers the put-back events, in their order
    assert wire.requests[-1].event_ids == [str(e.event_id) for e in events]
    assert client.queue_size == 0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 415, 422])
def test_permanent_errors_drop_the_batch_without_retry(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture, status: int
) -> None:
    wire.script(Answer(status, body={"error": {"code": "nope", "message": "bad batch"}}))
    with TelemetryClient(make_config(wire.url), random=no_jitter) as client:
        client.track(make_event())
        client.track(make_event())

    assert len(wire.requests) == 1
    assert client.queue_size == 0
    (warning,) = warnings_of(sdk_logs)
    assert f"HTTP {status}" in warning
    assert "bad batch" in warning


def test_payload_too_large_splits_the_batch_in_halves(wire: WireServer) -> None:
    wire.script(Answer(413), Answer(413))
    events = [make_event() for _ in range(4)]
    with TelemetryClient(make_config(wire.url)) as client:
        for event in events:
            client.track(event)

    ids = [str(e.event_id) for e in events]
    assert [r.event_ids for r in wire.requests] == [ids, ids[:2], ids[:1], ids[1:2], ids[2:]]
    assert set(wire.delivered()) == set(ids)


def test_single_event_still_too_large_is_dropped(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    wire.script(Answer(413), Answer(413), Answer(413))
    events = [make_event(), make_event()]
    with TelemetryClient(make_config(wire.url)) as client:
        for event in events:
            client.track(event)

    assert [len(r.event_ids) for r in wire.requests] == [2, 1, 1]
    assert client.queue_size == 0
    (warning,) = warnings_of(sdk_logs)  # one per top-level batch, not one per event
    assert "dropped a batch of 2 events (HTTP 413 even for a single event)" in warning


def test_rejected_events_are_logged_and_never_resent(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    wire.script(_rejecting_first)
    events = [make_event() for _ in range(3)]
    later = make_event()
    with TelemetryClient(make_config(wire.url, batch_size=3)) as client:
        for event in events:
            client.track(event)
        wire.wait_for(lambda: len(wire.requests) == 1)
        client.track(later)  # the next flush must not carry the rejected event again

    assert [r.event_ids for r in wire.requests][1] == [str(later.event_id)]
    (warning,) = warnings_of(sdk_logs)
    assert str(events[0].event_id) in warning
    assert "model: too long" in warning


def test_outage_then_recovery_delivers_every_event_exactly_once(wire: WireServer) -> None:
    wire.down = True
    config = make_config(wire.url, batch_size=10, max_retries=1, submit_interval_seconds=0.05)
    client = TelemetryClient(config, random=no_jitter)
    client.start()
    events = [make_event() for _ in range(50)]
    for event in events:
        client.track(event)
    wire.wait_for(lambda: len(wire.requests) >= 6)
    assert not wire.delivered()
    wire.down = False
    wire.wait_for(lambda: len(wire.delivered()) == 50, timeout=10)
    client.stop()

    assert wire.delivered() == {str(e.event_id): 1 for e in events}
    assert client.queue_size == 0


def test_track_stays_fast_while_the_server_hangs(wire: WireServer) -> None:
    wire.hang = True
    config = make_config(
        wire.url, batch_size=10, request_timeout_seconds=0.5, submit_interval_seconds=0.01
    )
    client = TelemetryClient(config)
    client.start()
    events = [make_event() for _ in range(5000)]

    started = time.perf_counter()
    for event in events:
        client.track(event)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert client.queue_size <= 1000
    stopped = time.perf_counter()
    client.stop()
    assert time.perf_counter() - stopped < 0.5 + 1.0 + 1.0


def test_stop_is_bounded_when_the_server_hangs(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    wire.hang = True
    client = TelemetryClient(make_config(wire.url, request_timeout_seconds=0.5))
    client.start()
    client.track(make_event())

    started = time.perf_counter()
    client.stop()
    assert time.perf_counter() - started < 0.5 + 1.0 + 0.5
    assert not client.is_running
    assert client.queue_size == 1  # kept, not lost: a later start() would send it
    assert any("still queued" in w for w in warnings_of(sdk_logs))


def test_stop_is_bounded_when_the_server_is_down(unused_url: str) -> None:
    client = TelemetryClient(make_config(unused_url, request_timeout_seconds=0.5))
    client.start()
    client.track(make_event())

    started = time.perf_counter()
    client.stop()
    assert time.perf_counter() - started < 0.5 + 1.0 + 0.5
    assert client.queue_size == 1


def test_events_survive_stop_and_go_out_after_restart(wire: WireServer) -> None:
    wire.down = True
    config = make_config(wire.url, request_timeout_seconds=0.3, max_retries=0)
    client = TelemetryClient(config)
    client.start()
    event = make_event()
    client.track(event)
    client.stop()
    assert client.queue_size == 1

    wire.down = False
    client.start()
    client.stop()
    assert wire.delivered() == {str(event.event_id): 1}


def test_stop_interrupts_a_long_retry_wait_and_still_delivers(wire: WireServer) -> None:
    wire.script(Answer(503, {"Retry-After": "300"}))
    client = TelemetryClient(make_config(wire.url, batch_size=1), random=no_jitter)
    client.start()
    event = make_event()
    client.track(event)
    wire.wait_for(lambda: len(wire.requests) == 1)

    started = time.perf_counter()
    client.stop()  # wakes the 300 s wait; the final flush sends the event
    assert time.perf_counter() - started < 1.5
    assert wire.delivered() == {str(event.event_id): 1}


def test_after_a_failed_flush_a_busy_process_waits_for_the_recovery_backoff(
    wire: WireServer,
) -> None:
    # The queue holds full batches again at once (put back + new tracks): waking on every one
    # of them would retry a failing server as fast as the process tracks. The wait is the
    # recovery backoff (0.5 s at first without jitter), not the interval (60 s here).
    wire.script(Answer(503))
    config = make_config(wire.url, batch_size=2, max_retries=0, submit_interval_seconds=60.0)
    events = [make_event() for _ in range(6)]
    with TelemetryClient(config, random=no_jitter) as client:
        client.track(events[0])
        client.track(events[1])  # a full batch: woken, sent, 503, put back
        wait_until(lambda: len(wire.requests) == 1 and client.queue_size == 2)
        for event in events[2:]:
            client.track(event)
        wait_until(lambda: len(wire.delivered()) == 6, timeout=5)
    first, second = wire.requests[:2]
    assert 0.45 <= second.received_at - first.received_at < 5.0
    assert set(wire.delivered()) == {str(e.event_id) for e in events}


def test_tracks_racing_across_a_full_batch_never_leave_it_waiting(wire: WireServer) -> None:
    # Only a partial batch may wait for the (here 60 s) interval: never a full one, however the
    # tracking threads interleave between a put and its size check.
    config = make_config(wire.url, batch_size=10, submit_interval_seconds=60.0)
    with TelemetryClient(config) as client:
        for _ in range(20):
            barrier = threading.Barrier(8)

            def work(barrier: threading.Barrier) -> None:
                barrier.wait()
                for _ in range(5):
                    client.track(make_event())

            threads = [threading.Thread(target=work, args=(barrier,)) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wait_until(lambda: client.queue_size < 10, timeout=5)
