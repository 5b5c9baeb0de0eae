"""When the submitter flushes next: I/O-free, shared by the thread and the asyncio task.

Healthy, it flushes every `submit_interval_seconds`, or as soon as a full batch asks for it.
After a failed flush it switches to the recovery backoff of `_retry.recovery_delay` (1 s, 2 s,
4 s ... capped at 30 s, jittered; never shorter than the `Retry-After` of the reply that ended
the flush), whatever the interval, and full batches no longer wake it (a
busy producer must not turn an outage into a request per batch). While the queue is evicting
(events were evicted since that flush), the next try comes within
`RECOVERY_EVICTING_MAX_SECONDS` instead: waiting out the 30 s cap then loses what is tracked after
the server's return. The first flush that succeeds drains the whole backlog back to back and
returns to the interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mosaicstack_telemetry._retry import RECOVERY_EVICTING_MAX_SECONDS, recovery_delay
from mosaicstack_telemetry._settings import Settings

__all__ = ["Schedule"]


class Schedule:
    """The next flush's due time, and whether a request for an early one may be granted."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = settings.submit_interval_seconds
        self._random = settings.random
        self._clock = clock
        self.failures = 0
        self._due = clock() + self._interval
        # When the next try is due if the queue evicts meanwhile (only while backing off).
        self._due_evicting = self._due

    @property
    def backing_off(self) -> bool:
        """Whether the last flush failed (the server is thought to be down)."""
        return self.failures > 0

    def _due_now(self, evicting: bool) -> float:
        return min(self._due, self._due_evicting) if evicting else self._due

    def timeout(self, evicting: bool = False) -> float:
        """Seconds until the next flush is due (0 when it is); sooner while `evicting`."""
        return max(0.0, self._due_now(evicting) - self._clock())

    def may_flush(self, requested: bool, *, evicting: bool = False) -> bool:
        """Whether to flush now: it is due, or a flush was asked for while healthy."""
        return self._clock() >= self._due_now(evicting) or (requested and not self.backing_off)

    def record(self, ok: bool, *, retry_after: float | None = None) -> None:
        """Set the next due time after a flush that succeeded (`ok`) or failed; a failed one
        waits at least `retry_after` seconds, what the server asked for (`Retry-After`)."""
        now = self._clock()
        if ok:
            self.failures = 0
            self._due = self._due_evicting = now + self._interval
            return
        self.failures += 1
        asked = retry_after or 0.0
        self._due = now + max(recovery_delay(self.failures, self._random), asked)
        evicting = recovery_delay(self.failures, self._random, RECOVERY_EVICTING_MAX_SECONDS)
        self._due_evicting = now + max(evicting, asked)
