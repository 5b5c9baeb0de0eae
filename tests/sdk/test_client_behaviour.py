"""TelemetryClient's promises beyond the wire: track() never fails, modes, threads, secrecy."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from mosaicstack_telemetry import TelemetryClient, TelemetryConfig

from ._wire_server import Answer, Recorded, WireServer
from .conftest import API_KEY, INSTANCE_ID, make_config, make_event, wait_until, warnings_of


@pytest.mark.parametrize("junk", [None, {"event_id": "x"}, "event", 42, object(), [make_event()]])
def test_track_drops_anything_that_is_not_an_event_without_raising(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture, junk: object
) -> None:
    with TelemetryClient(make_config(wire.url)) as client:
        client.track(junk)  # type: ignore[arg-type]
        assert client.queue_size == 0

    assert wire.requests == []
    (warning,) = warnings_of(sdk_logs)
    assert type(junk).__name__ in warning


def test_track_log_lines_are_rate_limited_in_a_hot_loop(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    client = TelemetryClient(make_config(wire.url))
    for _ in range(10_000):
        client.track(None)  # type: ignore[arg-type]

    assert len(warnings_of(sdk_logs)) == 1


def test_full_queue_evicts_the_oldest_and_warns_once_per_flush(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    events = [make_event() for _ in range(8)]
    with TelemetryClient(make_config(wire.url, max_queue_size=5)) as client:
        for event in events:
            client.track(event)
        assert client.queue_size == 5

    assert wire.requests[0].event_ids == [str(e.event_id) for e in events[3:]]
    (warning,) = warnings_of(sdk_logs)
    assert "3 events were evicted" in warning


def test_disabled_client_starts_nothing_and_sends_nothing(wire: WireServer) -> None:
    threads_before = threading.active_count()
    client = TelemetryClient(make_config(wire.url, enabled=False, batch_size=1))
    client.start()
    assert not client.is_running
    assert threading.active_count() == threads_before
    client.track(make_event())
    assert client.queue_size == 0
    client.refresh_predictions_sync([])
    client.stop()
    with client:
        client.track(make_event())
    assert wire.requests == []


def test_disabled_by_environment_overrides_the_constructor(
    wire: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOSAIC_TELEMETRY_ENABLED", "off")
    with TelemetryClient(make_config(wire.url, enabled=True)) as client:
        assert not client.is_running
        client.track(make_event())
    assert wire.requests == []


def test_dry_run_logs_batches_and_sends_nothing(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    event = make_event()
    with TelemetryClient(make_config(wire.url, dry_run=True)) as client:
        assert client.is_running
        client.track(event)

    assert wire.requests == []
    assert client.queue_size == 0
    dry = [r.getMessage() for r in sdk_logs.records if "dry run" in r.getMessage()]
    assert len(dry) == 1
    assert str(event.event_id) in dry[0]


def test_context_manager_starts_and_stops(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url))
    assert not client.is_running
    with client as entered:
        assert entered is client
        assert client.is_running
        client.start()  # already running: no second worker
        assert client.is_running
    assert not client.is_running
    client.stop()  # safe when not running


def test_stop_before_start_is_a_no_op(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url))
    client.track(make_event())
    client.stop()
    assert client.queue_size == 1
    assert wire.requests == []


def test_eight_threads_tracking_at_once_lose_and_duplicate_nothing(wire: WireServer) -> None:
    config = make_config(wire.url, max_queue_size=5000, submit_interval_seconds=0.02)
    per_thread = [[make_event() for _ in range(250)] for _ in range(8)]
    client = TelemetryClient(config)
    client.start()
    barrier = threading.Barrier(8)

    def work(events: list[object]) -> None:
        barrier.wait()
        for event in events:
            client.track(event)  # type: ignore[arg-type]

    threads = [threading.Thread(target=work, args=(events,)) for events in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.stop()

    expected = {str(e.event_id): 1 for events in per_thread for e in events}
    assert wire.delivered() == expected
    assert all(len(r.event_ids) <= 100 for r in wire.requests)


def test_invalid_config_warns_and_the_submitter_survives(
    sdk_logs: pytest.LogCaptureFixture,
) -> None:
    client = TelemetryClient(TelemetryConfig(server_url="", api_key="", instance_id=""))
    messages = warnings_of(sdk_logs)
    assert any("server_url is required" in m for m in messages)
    assert any("api_key" in m for m in messages)
    sdk_logs.clear()

    client.start()
    client.track(make_event())
    client.stop()  # sending fails permanently (no URL): dropped and logged, nothing raised
    assert client.queue_size == 0
    (warning,) = warnings_of(sdk_logs)
    assert "dropped a batch of 1 events" in warning


def test_invalid_numbers_fall_back_to_safe_values(wire: WireServer) -> None:
    config = make_config(wire.url, batch_size=500, max_queue_size=0, submit_interval_seconds=-1)
    with TelemetryClient(config) as client:
        for _ in range(150):
            client.track(make_event())
    sizes = [len(r.event_ids) for r in wire.requests]
    assert sum(sizes) == 150
    assert max(sizes) == 100  # batch_size fell back to 100, not 500 (over the server's limit)
    assert len(sizes) <= 3  # no busy loop from a negative interval: one wake, then the final flush


def test_config_of_wrong_types_does_not_break_the_constructor(
    sdk_logs: pytest.LogCaptureFixture,
) -> None:
    config = TelemetryConfig(submit_interval_seconds="soon")  # type: ignore[arg-type]
    client = TelemetryClient(config)
    client.track(make_event())
    assert client.queue_size == 1
    assert any("could not be validated" in m for m in warnings_of(sdk_logs))


def test_disabled_client_does_not_warn_about_its_config(
    sdk_logs: pytest.LogCaptureFixture,
) -> None:
    TelemetryClient(TelemetryConfig(enabled=False))
    assert warnings_of(sdk_logs) == []


def test_repr_never_shows_the_api_key(wire: WireServer) -> None:
    client = TelemetryClient(make_config(wire.url))
    assert API_KEY not in repr(client)
    assert API_KEY not in repr(client.config)
    assert wire.url in repr(client)


def test_logs_never_contain_the_api_key(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    # A misbehaving server echoing the key must not get it into our logs either.
    wire.script(Answer(401, body={"error": {"message": f"bad key {API_KEY}"}}))
    for api_key in (API_KEY, API_KEY + "\n"):
        config = make_config(wire.url, api_key=api_key, max_retries=0)
        with TelemetryClient(config) as client:
            client.track(make_event())
            client.refresh_predictions_sync([])

    assert sdk_logs.records
    for record in sdk_logs.records:
        assert API_KEY not in record.getMessage()
        assert API_KEY not in (sdk_logs.text or "")


def test_the_sdk_logs_only_under_its_own_logger(
    wire: WireServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with TelemetryClient(make_config(wire.url, batch_size=1)) as client:
        client.track(make_event())
        client.track(None)  # type: ignore[arg-type]
    ours = [r for r in caplog.records if r.name.startswith("mosaicstack_telemetry")]
    assert ours
    assert all(r.name == "mosaicstack_telemetry" for r in ours)


def test_happy_path_is_quiet_at_info(wire: WireServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mosaicstack_telemetry")
    with TelemetryClient(make_config(wire.url, batch_size=2)) as client:
        for _ in range(5):
            client.track(make_event())
    assert len(wire.delivered()) == 5
    assert [r for r in caplog.records if r.name.startswith("mosaicstack_telemetry")] == []


def test_instance_id_from_config_flows_into_events(wire: WireServer) -> None:
    with TelemetryClient(make_config(wire.url)) as client:
        client.track(make_event())
    assert wire.requests[0].body["events"][0]["instance_id"] == INSTANCE_ID


def _key_fragments(length: int = 12) -> list[str]:
    return [API_KEY[i : i + length] for i in range(len(API_KEY) - length + 1)]


@pytest.mark.parametrize("padding", [250, 270, 290])
def test_no_part_of_the_key_leaks_when_a_long_error_body_is_cut_for_the_log(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture, padding: int
) -> None:
    # The key sits across the 300-character cut of the logged body: cut first, and the part
    # before the cut would no longer match the key and escape redaction.
    wire.script(Answer(401, body="x" * padding + f"Bearer {API_KEY}"))
    with TelemetryClient(make_config(wire.url, max_retries=0)) as client:
        client.track(make_event())

    logged = "\n".join(r.getMessage() for r in sdk_logs.records)
    assert "HTTP 401" in logged
    assert not [part for part in _key_fragments() if part in logged]


def test_no_part_of_the_key_leaks_from_long_rejection_errors(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    def rejected(request: Recorded) -> Answer:
        results = [
            {"event_id": i, "status": "rejected", "error": "y" * 180 + API_KEY}
            for i in request.event_ids
        ]
        return Answer(207, body={"accepted": 0, "rejected": len(results), "results": results})

    wire.script(rejected)
    with TelemetryClient(make_config(wire.url)) as client:
        client.track(make_event())

    logged = "\n".join(r.getMessage() for r in sdk_logs.records)
    assert "server rejected 1 of 1 events" in logged
    assert not [part for part in _key_fragments() if part in logged]


@pytest.mark.parametrize(
    "overrides",
    [
        {"submit_interval_seconds": float("inf")},
        {"request_timeout_seconds": float("inf")},
        {"submit_interval_seconds": 1e300},
        {"request_timeout_seconds": 1e300},
        {"submit_interval_seconds": 10**400},
    ],
)
def test_unusable_durations_still_give_a_working_client_that_stops_at_once(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture, overrides: dict[str, float]
) -> None:
    client = TelemetryClient(make_config(wire.url, **overrides))
    (warning,) = warnings_of(sdk_logs)
    assert "finite positive number" in warning or "capped at" in warning

    client.start()
    wait_until(lambda: client.is_running)
    client.track(make_event())
    started = time.monotonic()
    client.stop()

    assert time.monotonic() - started < 2.0
    assert len(wire.delivered()) == 1
    assert not [r for r in sdk_logs.records if r.levelno >= logging.ERROR]


def test_flush_sends_now_returns_what_is_left_and_refuses_a_timeout_that_is_not_a_number(
    wire: WireServer, unused_url: str
) -> None:
    client = TelemetryClient(make_config(wire.url))  # never started: flush() works all the same
    events = [make_event() for _ in range(3)]
    for event in events:
        client.track(event)
    assert client.flush() == 0
    assert set(wire.delivered()) == {str(e.event_id) for e in events}
    with pytest.raises(TypeError, match="timeout"):
        client.flush(timeout="soon")  # type: ignore[arg-type]
    down = TelemetryClient(make_config(unused_url, max_retries=0))
    down.track(make_event())
    assert down.flush(timeout=0.5) == 1  # bounded, and the event is still queued
    assert down.flush(timeout=0) == 1  # no time at all: nothing is tried
    disabled = TelemetryClient(make_config(wire.url, enabled=False))
    disabled.track(make_event())
    assert disabled.flush() == 0
    assert disabled.stats().tracked == 0
