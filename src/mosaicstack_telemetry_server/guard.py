"""Hostile clients: deadlines to send a request, a cap on connections, accept errors told once.

uvicorn's h11 protocol has no deadline for a request's head: a connection that trickles one
header byte every few seconds is held forever, and 1,100 of them under `ulimit -n 1024` use
up every descriptor. Then each failed `accept()` is logged (Python 3.11 schedules a retry per
pending connection, so hundreds of thousands of lines) and no normal client gets in. This
protocol, uvicorn's own with three additions, keeps the server answering (measured in
docs/benchmarks.md, "Slow clients"):

- **Deadlines.** A connection has `header_timeout` seconds to deliver a request's head (from
  its opening, or from the previous response on a kept-alive connection) and `body_timeout`
  seconds for the body. Trickling does not extend them. Past its deadline it is closed.
- **A cap.** At most `max_connections` per worker process, kept below the descriptor limit so
  that `accept()` always has a descriptor for the next client. Over the cap, the connection
  that has waited longest for its client's bytes is closed (a slow client's, not one whose
  request is being answered); the newcomer, being served at once, is the normal client.
- **One line per interval.** Closures and any accept errors left are counted and logged at
  most once per `REPORT_SECONDS`, with their counts.

The settings are `ServerSettings`' `header_timeout`, `body_timeout` and `max_connections`:
`guarded_protocol(settings)` binds them where the app runs in this process; worker processes,
which uvicorn starts from an import string, read them from the variables `serve` sets.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
import weakref
from collections import OrderedDict
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from mosaicstack_telemetry_server.settings import ServerSettings, load_settings

__all__ = [
    "GuardedH11Protocol",
    "descriptor_ceiling",
    "effective_max_connections",
    "guarded_protocol",
]

logger = logging.getLogger("mosaicstack_telemetry_server.guard")

# At most one report of closed connections and accept errors per this many seconds.
REPORT_SECONDS = 60.0
_SWEEP_SECONDS = 0.5
# Descriptors kept back from the cap for the database, log files, the listening sockets and
# the pool's threads: an eighth of the limit, and never fewer than 64.
_RESERVED_MIN = 64
_ACCEPT_ERROR = "socket.accept() out of system resource"


def descriptor_ceiling(soft_limit: int | None = None) -> int:
    """The most connections a process can hold and still accept the next one."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft_limit == resource.RLIM_INFINITY:
            soft_limit = 1 << 20
    return max(1, soft_limit - max(_RESERVED_MIN, soft_limit // 8))


def effective_max_connections(asked: int, soft_limit: int | None = None) -> int:
    """The cap applied: the one asked for (0: none asked), never above `descriptor_ceiling`."""
    ceiling = descriptor_ceiling(soft_limit)
    return min(asked, ceiling) if asked else ceiling


class _Tally:
    """Counts by reason, logged as one WARNING line at most once per `REPORT_SECONDS`."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._reported = time.monotonic() - REPORT_SECONDS

    def add(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.report_if_due()

    def report_if_due(self) -> None:
        now = time.monotonic()
        if not self.counts or now - self._reported < REPORT_SECONDS:
            return
        self._reported = now
        counts, self.counts = self.counts, {}
        told = ", ".join(f"{reason}={count}" for reason, count in sorted(counts.items()))
        logger.warning(
            "slow or excess connections since the last report: %s", told, extra={"fields": counts}
        )


class _Guard:
    """Per event loop: connections waiting for their client's bytes, oldest first."""

    def __init__(self, loop: asyncio.AbstractEventLoop, settings: ServerSettings) -> None:
        self.header_timeout = settings.header_timeout
        self.body_timeout = settings.body_timeout
        self.cap = effective_max_connections(settings.max_connections)
        self.tally = _Tally()
        self._loop = loop
        self._waiting: OrderedDict[GuardedH11Protocol, float] = OrderedDict()
        self._sweeping = False
        self._default_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._exception)

    def expect(self, protocol: GuardedH11Protocol, seconds: float) -> None:
        """`protocol` must deliver what it is sending within `seconds` from now."""
        self._waiting.pop(protocol, None)
        self._waiting[protocol] = self._loop.time() + seconds
        if not self._sweeping:
            self._sweeping = True
            self._loop.call_later(_SWEEP_SECONDS, self._sweep)

    def forget(self, protocol: GuardedH11Protocol) -> None:
        """`protocol` waits for nothing from its client (being answered, or closed)."""
        self._waiting.pop(protocol, None)

    def admit(self, newcomer: GuardedH11Protocol, open_connections: int) -> None:
        """Over the cap, close the connection that has waited longest for its client."""
        if open_connections <= self.cap:
            return
        victim = next(iter(self._waiting), newcomer)
        self.close(victim, "closed_at_cap")

    def close(self, protocol: GuardedH11Protocol, reason: str) -> None:
        self.forget(protocol)
        protocol.transport.close()
        self.tally.add(reason)

    def _sweep(self) -> None:
        now = self._loop.time()
        expired = [protocol for protocol, deadline in self._waiting.items() if deadline <= now]
        for protocol in expired:
            reason = (
                "past the body deadline" if protocol.phase == "body" else "past the header deadline"
            )
            self.close(protocol, reason)
        self.tally.report_if_due()
        self._sweeping = bool(self._waiting)
        if self._sweeping:
            self._loop.call_later(_SWEEP_SECONDS, self._sweep)

    def _exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(_ACCEPT_ERROR):
            self.tally.add("accept_errors")
        elif self._default_handler is not None:
            self._default_handler(loop, context)
        else:
            loop.default_exception_handler(context)


_guards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Guard] = weakref.WeakKeyDictionary()


def _guard_for(loop: asyncio.AbstractEventLoop, settings: ServerSettings | None) -> _Guard:
    guard = _guards.get(loop)
    if guard is None:
        # A worker process's protocol has no settings bound: the parent's are in the variables.
        guard = _guards[loop] = _Guard(loop, settings if settings is not None else load_settings())
    return guard


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with request deadlines and a connection cap (see the module)."""

    phase = "head"  # what the client owes: "head", "body", or nothing ("app")
    settings: ClassVar[ServerSettings | None] = None  # see `guarded_protocol`

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the head deadline; over the cap, make room."""
        super().connection_made(transport)
        guard = _guard_for(self.loop, self.settings)
        guard.expect(self, guard.header_timeout)
        guard.admit(self, len(self.connections))

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop watching this connection."""
        _guard_for(self.loop, self.settings).forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Handle the bytes, then move the deadline if the request moved on."""
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        """A kept-alive connection owes the next request's head: a new head deadline."""
        super().on_response_complete()
        self._follow()

    def _follow(self) -> None:
        guard = _guard_for(self.loop, self.settings)
        state = self.conn.their_state
        phase = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else "app"
        if phase == self.phase:
            return  # trickling does not extend a deadline
        self.phase = phase
        if self.transport.is_closing():
            guard.forget(self)
        elif phase == "head":
            guard.expect(self, guard.header_timeout)
        elif phase == "body":
            guard.expect(self, guard.body_timeout)
        else:
            guard.forget(self)


def guarded_protocol(settings: ServerSettings) -> type[GuardedH11Protocol]:
    """`GuardedH11Protocol` applying `settings`, for a uvicorn serving in this process."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"settings": settings})
