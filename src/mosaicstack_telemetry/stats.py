"""`TelemetryStats`: what became of every event a client saw, counted since its creation.

Silent loss is the peers' most common complaint; these counters say how many events were sent,
refused, evicted or spooled, next to the one WARNING per failed batch in the log. They add up:
whenever no flush is in progress (after `flush()`, `stop()`),

    tracked + unspooled == sent + rejected + evicted + spooled + queue_size

(`invalid` events never entered the queue; `spool_evicted` counts events that were already
counted as `spooled` and then removed from the spool by its size cap).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["Tally", "TelemetryStats"]


@dataclass(frozen=True)
class TelemetryStats:
    """A snapshot of a client's counters since its creation (see the module for the invariant)."""

    tracked: int = 0
    """Events `track()` accepted into the queue."""
    sent: int = 0
    """Events the server accepted (2xx), from the queue or from the spool."""
    rejected: int = 0
    """Events lost at delivery: refused by the server, or not serialisable."""
    invalid: int = 0
    """Calls to `track()` refused (not a `TaskCompletionEvent`, or an unexpected error)."""
    evicted: int = 0
    """Events dropped because the queue was full (and no spool took them)."""
    spooled: int = 0
    """Events written to the disk spool."""
    unspooled: int = 0
    """Events read back from the spool and delivered (sent or rejected)."""
    retries: int = 0
    """Requests repeated after a transient failure (network, 408, 429, 5xx)."""
    failed_batches: int = 0
    """Batches given up for the current flush after their retries (kept queued or spooled)."""
    queue_size: int = 0
    """Events in the in-memory queue when the snapshot was taken."""
    spool_evicted: int = 0
    """Spooled events deleted to keep the spool under `spool_max_bytes` (oldest first)."""


class Tally:
    """The mutable counters behind `TelemetryStats`, updated by the submitter's plans.

    `tracked` and most of `evicted` are the queue's own counts (kept under its lock, so `track()`
    pays nothing extra); the rest are added here (`evicted` here: evicted events the spool could
    not take).
    """

    _FIELDS = ("sent", "rejected", "invalid", "spooled", "unspooled", "retries")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(
            (*self._FIELDS, "failed_batches", "spool_evicted", "evicted"), 0
        )

    def add(self, name: str, count: int = 1) -> None:
        """Add `count` to the counter `name` (a `TelemetryStats` field)."""
        if count:
            with self._lock:
                self._counts[name] += count

    def snapshot(self, *, tracked: int, evicted: int, queue_size: int) -> TelemetryStats:
        """The counters now, with the queue's own counts."""
        with self._lock:
            counts = dict(self._counts)
        evicted += counts.pop("evicted")
        return TelemetryStats(tracked=tracked, evicted=evicted, queue_size=queue_size, **counts)

    def reset_after_fork(self) -> None:
        """Start from zero in a forked child, with a lock no parent thread can hold."""
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self._counts, 0)
