"""What a batch loses for good is limited to the events at fault, and reported once per batch."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import TelemetryClient

from ._wire_server import Answer, Recorded, WireServer, accepted_answer
from .conftest import make_config, make_event, warnings_of


def _sdk_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("mosaicstack_telemetry")]


def test_an_event_broken_after_track_is_dropped_alone_with_one_warning(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    good = [make_event() for _ in range(4)]
    bad = make_event()
    client = TelemetryClient(make_config(wire.url))
    for event in (*good[:2], bad, *good[2:]):
        client.track(event)
    bad.model = object()  # type: ignore[assignment]  # models are mutable: no validation here

    client.start()
    client.stop()

    assert wire.delivered() == {str(e.event_id): 1 for e in good}
    assert client.queue_size == 0
    (warning,) = warnings_of(sdk_logs)
    assert "dropped 1 of a batch of 5 events" in warning
    assert "could not be serialised" in warning
    records = _sdk_records(sdk_logs)
    assert all(r.levelno < logging.ERROR and r.exc_info is None for r in records)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(broken=st.lists(st.booleans(), min_size=1, max_size=12))
def test_only_the_unserialisable_events_of_a_batch_are_lost(
    wire: WireServer, broken: list[bool]
) -> None:
    events = [make_event() for _ in broken]
    client = TelemetryClient(make_config(wire.url))
    for event in events:
        client.track(event)
    for event, is_broken in zip(events, broken, strict=True):
        if is_broken:
            event.task_type = object()  # type: ignore[assignment]

    client.start()
    client.stop()

    delivered = wire.delivered()
    for event, is_broken in zip(events, broken, strict=True):
        assert delivered[str(event.event_id)] == (0 if is_broken else 1)
    assert client.queue_size == 0


def test_a_server_refusing_every_size_costs_few_requests_and_one_warning(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    wire.script(*[Answer(413)] * 300)
    client = TelemetryClient(make_config(wire.url))
    for _ in range(100):
        client.track(make_event())

    client.start()
    client.stop()

    sizes = [len(r.event_ids) for r in wire.requests]
    # Halved down to one event (100, 50, 25, 12, 6, 3, 1), then each part left tried once.
    assert sizes == [100, 50, 25, 12, 6, 3, 1, 2, 3, 6, 13, 25, 50]
    assert client.queue_size == 0
    (warning,) = warnings_of(sdk_logs)
    assert "dropped 100 of a batch of 100 events" in warning
    assert "HTTP 413 even for a single event" in warning


def test_one_oversized_event_costs_only_itself(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    events = [make_event() for _ in range(8)]
    too_large = str(events[5].event_id)

    def body_limit(request: Recorded) -> Answer:
        return Answer(413) if too_large in request.event_ids else accepted_answer(request)

    wire.script(*[body_limit] * 20)
    client = TelemetryClient(make_config(wire.url))
    for event in events:
        client.track(event)

    client.start()
    client.stop()

    assert set(wire.delivered()) == {str(e.event_id) for e in events} - {too_large}
    assert client.queue_size == 0
    (warning,) = warnings_of(sdk_logs)
    assert "dropped 1 of a batch of 8 events (HTTP 413 even for a single event)" in warning


def test_a_batch_losing_events_for_two_reasons_says_both_in_one_warning(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    wire.script(Answer(413), Answer(422, body={"error": {"message": "bad first half"}}))
    events = [make_event() for _ in range(4)]
    client = TelemetryClient(make_config(wire.url))
    for event in events:
        client.track(event)
    events[3].model = object()  # type: ignore[assignment]

    client.start()
    client.stop()

    # 3 sendable events -> 413; [0] -> 422 (dropped); [1, 2] -> accepted
    assert set(wire.delivered()) == {str(events[1].event_id), str(events[2].event_id)}
    (warning,) = warnings_of(sdk_logs)
    assert "dropped 2 of a batch of 4 events" in warning
    assert "bad first half" in warning
    assert "could not be serialised" in warning


def test_dry_run_logs_the_serialisable_events_and_reports_the_others(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    good, bad = make_event(), make_event()
    client = TelemetryClient(make_config(wire.url, dry_run=True))
    client.track(good)
    client.track(bad)
    bad.model = object()  # type: ignore[assignment]

    client.start()
    client.stop()

    assert wire.requests == []
    (dry,) = [r.getMessage() for r in sdk_logs.records if "dry run" in r.getMessage()]
    assert str(good.event_id) in dry
    assert str(bad.event_id) not in dry
    (warning,) = warnings_of(sdk_logs)
    assert "dropped 1 of a batch of 2 events" in warning
