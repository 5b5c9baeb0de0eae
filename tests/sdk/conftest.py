"""Fixtures of the SDK tests: a wire server, a config pointing at it, events to track."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mosaicstack_telemetry import (
    EventBuilder,
    Outcome,
    TaskCompletionEvent,
    TaskType,
    TelemetryConfig,
)

from ._wire_server import WireServer

API_KEY = "5ec2e7" + "0123456789abcdef" * 3 + "fedcba9876"
INSTANCE_ID = "2f0c4b0e-5d1f-4c5e-9a57-2b1b1c9a1e11"

assert len(API_KEY) == 64


@pytest.fixture(autouse=True)
def _no_telemetry_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own MOSAIC_TELEMETRY_* variables must not leak into what the tests pin.
    for name in (
        "MOSAIC_TELEMETRY_ENABLED",
        "MOSAIC_TELEMETRY_SERVER_URL",
        "MOSAIC_TELEMETRY_API_KEY",
        "MOSAIC_TELEMETRY_INSTANCE_ID",
        "MOSAIC_TELEMETRY_SHUTDOWN_TIMEOUT",
        "MOSAIC_TELEMETRY_SPOOL_DIR",
        "MOSAIC_TELEMETRY_SPOOL_MAX_BYTES",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def wire() -> Iterator[WireServer]:
    """A fresh scriptable server on 127.0.0.1."""
    server = WireServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def unused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def sdk_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything the SDK logs, from DEBUG up."""
    caplog.set_level(logging.DEBUG, logger="mosaicstack_telemetry")
    return caplog


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The SDK's WARNING (and worse) messages."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("mosaicstack_telemetry") and r.levelno >= logging.WARNING
    ]


def make_config(url: str, **overrides: Any) -> TelemetryConfig:
    """A valid config for `url`; long interval unless a test wants background flushes."""
    values: dict[str, Any] = {
        "server_url": url,
        "api_key": API_KEY,
        "instance_id": INSTANCE_ID,
        "submit_interval_seconds": 60.0,
        "request_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return TelemetryConfig(**values)


def make_event(**fields: Any) -> TaskCompletionEvent:
    """A valid event with a fresh id."""
    builder = (
        EventBuilder(INSTANCE_ID)
        .task_type(TaskType.IMPLEMENTATION)
        .model("claude-sonnet-4")
        .duration_ms(1000)
        .outcome_value(Outcome.SUCCESS)
        .quality(passed=True)
    )
    event = builder.build()
    return event.model_copy(update=fields) if fields else event


def no_jitter() -> float:
    """A jitter source that makes every backoff zero (Retry-After still applies)."""
    return 0.0


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


def new_id() -> str:
    """A fresh event id as a string."""
    return str(uuid.uuid4())
