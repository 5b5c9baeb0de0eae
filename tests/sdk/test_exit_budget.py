"""Interpreter exit is bounded by `shutdown_timeout_seconds`, whatever the server does.

Timed in a child process, from its last `track()` to its end: a hard bound the issue sets
(<= 2.5 s with a server that accepts and never answers, <= 1 s with the connection refused),
with the default config (request timeout 10 s, shutdown budget 2 s).
"""

from __future__ import annotations

import time

import pytest

from ._child import child_env, spawn
from ._wire_server import WireServer

# Started, tracks, and leaves without stop(): the exit hook does the final flush.
TRACK_AND_EXIT = """
import sys
from mosaicstack_telemetry import EventBuilder, TelemetryClient, TelemetryConfig
client = TelemetryClient(TelemetryConfig())
client.start()
for _ in range(5):
    client.track(EventBuilder(client.config.instance_id).model("m").build())
print("tracked", flush=True)
"""


def _seconds_from_last_track_to_exit(url: str) -> float:
    child = spawn(TRACK_AND_EXIT, child_env(url, None, timed=True))
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "tracked"
    started = time.monotonic()
    child.wait(timeout=30)
    elapsed = time.monotonic() - started
    assert child.returncode == 0
    return elapsed


def test_exit_with_a_hanging_server_takes_at_most_the_budget(wire: WireServer) -> None:
    wire.hang = True
    assert _seconds_from_last_track_to_exit(wire.url) <= 2.5
    assert len(wire.event_requests()) == 1  # it did try


def test_exit_with_the_connection_refused_takes_under_a_second(unused_url: str) -> None:
    assert _seconds_from_last_track_to_exit(unused_url) <= 1.0


@pytest.mark.parametrize("budget", ["0.5"])
def test_the_budget_comes_from_the_environment(wire: WireServer, budget: str) -> None:
    wire.hang = True
    child = spawn(
        TRACK_AND_EXIT,
        child_env(wire.url, None, timed=True, MOSAIC_TELEMETRY_SHUTDOWN_TIMEOUT=budget),
    )
    assert child.stdout is not None
    child.stdout.readline()
    started = time.monotonic()
    child.wait(timeout=30)
    assert time.monotonic() - started <= float(budget) + 0.5
