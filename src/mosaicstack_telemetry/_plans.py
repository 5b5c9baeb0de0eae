"""Plans: generators that decide and yield `Send`/`Wait`/`Check` actions for an executor to do.

A plan never does I/O; `SyncExchange` (a thread) and `AsyncExchange` (an asyncio task) in
`_transport` perform its actions and send the results back in, so both run the same decisions.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

from mosaicstack_telemetry._reply import Reply

__all__ = [
    "EVENTS_PATH",
    "PREDICTIONS_PATH",
    "Check",
    "Plan",
    "Send",
    "Wait",
    "may_proceed",
    "send",
    "wait",
]

EVENTS_PATH = "/v1/events/batch"
PREDICTIONS_PATH = "/v1/predictions/batch"

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """Action: POST `body` (JSON) to `path` under the server URL; the result is a `Reply`."""

    path: str
    body: bytes


@dataclass(frozen=True)
class Wait:
    """Action: wait `seconds`; the result is False when stop or the deadline cut it short."""

    seconds: float


@dataclass(frozen=True)
class Check:
    """Action: may the plan start more work? False once stop was asked or the deadline passed."""


Plan = Generator[Send | Wait | Check, object, T]


def send(path: str, body: bytes) -> Plan[Reply]:
    """Sub-plan: send one request and return its reply."""
    reply = yield Send(path, body)
    if not isinstance(reply, Reply):  # pragma: no cover - an executor bug, not a runtime case
        raise TypeError(f"expected a Reply, got {type(reply).__name__}")
    return reply


def may_proceed() -> Plan[bool]:
    """Sub-plan: whether there is still time (and no stop request) for another request."""
    ok = yield Check()
    return bool(ok)


def wait(seconds: float) -> Plan[bool]:
    """Sub-plan: wait, returning whether the whole wait elapsed."""
    done = yield Wait(seconds)
    return bool(done)
