"""Plans: generators that decide and yield `Send`/`Wait`/`Check`/`Disk` actions for an executor.

A plan never does I/O; `SyncExchange` (a thread) and `AsyncExchange` (an asyncio task) in
`_transport` perform its actions and send the results back in, so both run the same decisions.
The spool's file work is an action too (`Disk`): the asyncio executor runs the heavy part of it
in a worker thread, so that the application's event loop never waits on a disk.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar, cast

from mosaicstack_telemetry._reply import Reply

__all__ = [
    "BUDGETS_STATUS_PATH",
    "EVENTS_PATH",
    "PREDICTIONS_PATH",
    "Check",
    "Disk",
    "Plan",
    "Send",
    "Wait",
    "may_proceed",
    "on_disk",
    "send",
    "wait",
]

EVENTS_PATH = "/v1/events/batch"
PREDICTIONS_PATH = "/v1/predictions/batch"
BUDGETS_STATUS_PATH = "/v1/budgets/status"

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """Action: POST `body` (JSON) to `path` under the server URL; the result is a `Reply`.

    `method` is "GET" for a read (`body` is then empty): the budget status."""

    path: str
    body: bytes
    method: str = "POST"


@dataclass(frozen=True)
class Wait:
    """Action: wait `seconds`; the result is False when stop or the deadline cut it short."""

    seconds: float


@dataclass(frozen=True)
class Check:
    """Action: may the plan start more work? False once stop was asked or the deadline passed."""


@dataclass(frozen=True)
class Disk:
    """Action: run `work` (the spool's file I/O) and send back its result.

    `inline`: cheap enough to run on an event loop (see `_spool.reads_inline`); otherwise an
    asyncio executor runs it in a worker thread.
    """

    work: Callable[[], object]
    inline: bool = False


Plan = Generator[Send | Wait | Check | Disk, object, T]


def send(path: str, body: bytes, method: str = "POST") -> Plan[Reply]:
    """Sub-plan: send one request and return its reply."""
    reply = yield Send(path, body, method)
    if not isinstance(reply, Reply):  # pragma: no cover - an executor bug, not a runtime case
        raise TypeError(f"expected a Reply, got {type(reply).__name__}")
    return reply


def may_proceed() -> Plan[bool]:
    """Sub-plan: whether there is still time (and no stop request) for another request."""
    ok = yield Check()
    return bool(ok)


def on_disk(work: Callable[[], T], *, inline: bool = False) -> Plan[T]:
    """Sub-plan: have the executor run `work`, local file I/O, and return its result."""
    result = yield Disk(work, inline)
    return cast(T, result)


def wait(seconds: float) -> Plan[bool]:
    """Sub-plan: wait, returning whether the whole wait elapsed."""
    done = yield Wait(seconds)
    return bool(done)
