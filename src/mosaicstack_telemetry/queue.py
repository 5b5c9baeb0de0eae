"""The bounded in-memory event queue between `track()` and the submitter."""

from __future__ import annotations

import threading
from collections import deque

from mosaicstack_telemetry.models.events import TaskCompletionEvent

__all__ = ["EventQueue"]


class EventQueue:
    """Thread-safe bounded FIFO queue; when full, the oldest events are evicted.

    With `keep_evicted` (the client sets it when a disk spool is configured) up to that many
    evicted events are kept aside for `take_evicted()` instead of being lost; only beyond that
    are they dropped. Every drop is counted (`evicted_total`, `take_dropped()`).
    """

    def __init__(self, max_size: int = 1000, *, keep_evicted: int = 0) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._max_size = max_size
        self._keep_evicted = max(keep_evicted, 0)
        self._items: deque[TaskCompletionEvent] = deque()
        self._evicted: deque[TaskCompletionEvent] = deque()
        self._lock = threading.Lock()
        self._dropped = 0
        self._dropped_total = 0
        self._evictions = 0
        self._added = 0

    @property
    def max_size(self) -> int:
        """The capacity of the queue."""
        return self._max_size

    def put(self, event: TaskCompletionEvent) -> None:
        """Add an event at the back, evicting the oldest one if the queue is full."""
        self.offer(event)

    def offer(self, event: TaskCompletionEvent) -> int:
        """`put`, returning the size right after it (read under the lock: each caller its own)."""
        with self._lock:
            items = self._items
            if len(items) >= self._max_size:
                self._evict(items.popleft())
            items.append(event)
            self._added += 1
            return len(items)

    def _evict(self, event: TaskCompletionEvent) -> None:
        # Called with the lock held.
        self._evictions += 1
        if len(self._evicted) < self._keep_evicted:
            self._evicted.append(event)
        else:
            self._dropped += 1
            self._dropped_total += 1

    def drain(self, max_items: int) -> list[TaskCompletionEvent]:
        """Remove and return up to `max_items` events from the front, oldest first."""
        with self._lock:
            count = min(max(max_items, 0), len(self._items))
            return [self._items.popleft() for _ in range(count)]

    def put_back(self, events: list[TaskCompletionEvent]) -> None:
        """Re-queue unsent events at the front, in their order, for the next flush.

        Events tracked meanwhile are newer; if there is not room for all, the oldest of the
        returned events are the ones evicted, as with `put`.
        """
        with self._lock:
            room = self._max_size - len(self._items)
            cut = len(events) - room if room < len(events) else 0
            for event in events[:cut]:
                self._evict(event)
            self._items.extendleft(reversed(events[cut:]))

    def take_evicted(self) -> list[TaskCompletionEvent]:
        """Remove and return the evicted events kept aside (oldest first) for the spool."""
        with self._lock:
            kept = list(self._evicted)
            self._evicted.clear()
            return kept

    def take_dropped(self) -> int:
        """Return how many events were evicted for good since the last call, and reset it."""
        with self._lock:
            dropped, self._dropped = self._dropped, 0
            return dropped

    @property
    def added(self) -> int:
        """How many events were ever `put` (put-backs not counted)."""
        return self._added

    @property
    def evicted_total(self) -> int:
        """How many events were evicted for good (not kept aside) since creation."""
        return self._dropped_total

    @property
    def evictions(self) -> int:
        """How many events were ever evicted, kept aside for the spool or dropped."""
        return self._evictions

    @property
    def evicted_kept(self) -> int:
        """How many evicted events wait for `take_evicted()`."""
        return len(self._evicted)

    def clear(self) -> None:
        """Forget every queued event (used in a forked child)."""
        with self._lock:
            self._items.clear()
            self._evicted.clear()
            self._dropped = 0

    def reset_after_fork(self) -> None:
        """Make the queue usable in a forked child: a fresh lock, and nothing of the parent's.

        The parent's lock may have been held by another thread at fork time, and the parent
        sends its own events.
        """
        self._lock = threading.Lock()
        self._items.clear()
        self._evicted.clear()
        self._dropped = 0
        self._dropped_total = 0
        self._evictions = 0
        self._added = 0

    @property
    def size(self) -> int:
        """Current number of queued events."""
        return len(self._items)

    @property
    def is_empty(self) -> bool:
        """Whether the queue holds no event."""
        return not self._items
