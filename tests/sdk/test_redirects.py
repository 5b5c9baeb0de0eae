"""Redirects: 307/308 are followed (POST kept, the key only to the same origin); 301/302/303 are
not (they would turn the POST into a GET) and the WARNING says where server_url should point."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mosaicstack_telemetry import TelemetryClient

from ._wire_server import Answer, WireServer
from .conftest import API_KEY, make_config, make_event, warnings_of


@pytest.fixture
def other_wire() -> Iterator[WireServer]:
    """A second server: another origin (another port) than `wire`."""
    server = WireServer()
    try:
        yield server
    finally:
        server.close()


def _accepted_ids(server: WireServer) -> list[str]:
    return [i for r in server.requests if 200 <= r.status < 300 for i in r.event_ids]


@pytest.mark.parametrize("status", [307, 308])
def test_a_method_preserving_redirect_on_the_same_origin_is_followed_with_the_key(
    wire: WireServer, status: int
) -> None:
    wire.script(Answer(status, {"Location": "/moved/v1/events/batch"}))
    event = make_event()
    with TelemetryClient(make_config(wire.url)) as client:
        client.track(event)

    first, second = wire.requests
    assert first.path == "/v1/events/batch"
    assert second.path == "/moved/v1/events/batch"
    assert second.event_ids == [str(event.event_id)]
    assert second.headers["authorization"] == f"Bearer {API_KEY}"
    assert _accepted_ids(wire) == [str(event.event_id)]


async def test_the_async_submitter_follows_a_redirect_to_another_origin_without_the_key(
    wire: WireServer, other_wire: WireServer
) -> None:
    wire.script(Answer(308, {"Location": f"{other_wire.url}/v1/events/batch"}))
    event = make_event()
    async with TelemetryClient(make_config(wire.url)) as client:
        client.track(event)

    (moved,) = other_wire.requests
    assert moved.event_ids == [str(event.event_id)]
    assert "authorization" not in moved.headers  # another origin never gets the key


def test_the_thread_follows_a_redirect_to_another_origin_without_the_key(
    wire: WireServer, other_wire: WireServer
) -> None:
    wire.script(Answer(307, {"Location": f"{other_wire.url}/v1/events/batch"}))
    with TelemetryClient(make_config(wire.url)) as client:
        client.track(make_event())

    (moved,) = other_wire.requests
    assert "authorization" not in moved.headers
    assert len(_accepted_ids(other_wire)) == 1


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_redirect_that_would_become_a_get_is_dropped_naming_the_new_url(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture, status: int
) -> None:
    wire.script(Answer(status, {"Location": "https://telemetry.example.com/v1/events/batch"}))
    with TelemetryClient(make_config(wire.url)) as client:
        client.track(make_event())

    assert len(wire.requests) == 1  # neither followed nor retried
    assert client.queue_size == 0
    (warning,) = warnings_of(sdk_logs)
    assert f"HTTP {status} redirect to https://telemetry.example.com/v1/events/batch" in warning
    assert "set server_url to it" in warning


def test_a_redirect_loop_stops_after_three_hops(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture
) -> None:
    wire.script(*[Answer(307, {"Location": "/v1/events/batch"})] * 10)
    with TelemetryClient(make_config(wire.url)) as client:
        client.track(make_event())

    assert len(wire.requests) == 4  # the request and 3 redirects, then dropped
    (warning,) = warnings_of(sdk_logs)
    assert "not followed: more than 3 redirects" in warning


@pytest.mark.parametrize("location", ["ftp://files.example.com/x", "file:///etc/passwd"])
def test_a_redirect_to_another_scheme_is_not_followed(
    wire: WireServer, sdk_logs: pytest.LogCaptureFixture, location: str
) -> None:
    wire.script(Answer(307, {"Location": location}))
    with TelemetryClient(make_config(wire.url)) as client:
        client.track(make_event())

    assert len(wire.requests) == 1
    (warning,) = warnings_of(sdk_logs)
    assert "not followed" in warning
