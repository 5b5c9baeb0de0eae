"""The bounded in-memory event queue between `track()` and the submitter."""

from __future__ import annotations

import threading
from collections import deque

from mosaicstack_telemetry.models.events import TaskCompletionEvent

__all__ = ["EventQueue"]


class EventQueue:
    """Thread-safe bounded FIFO queue; when full, the oldest events are evicted."""

    def __init__(self, max_size: int = 1000) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._max_size = max_size
        self._items: deque[TaskCompletionEvent] = deque()
        self._lock = threading.Lock()
        self._dropped = 0

    @property
    def max_size(self) -> int:
        """The capacity of the queue."""
        return self._max_size

    def put(self, event: TaskCompletionEvent) -> None:
        """Add an event at the back, evicting the oldest one if the queue is full."""
        self._put_and_size(event)

    def _put_and_size(self, event: TaskCompletionEvent) -> int:
        # The size right after this put, read under the lock: concurrent puts each see their own.
        with self._lock:
            items = self._items
            if len(items) >= self._max_size:
                items.popleft()
                self._dropped += 1
            items.append(event)
            return len(items)

    def drain(self, max_items: int) -> list[TaskCompletionEvent]:
        """Remove and return up to `max_items` events from the front, oldest first."""
        with self._lock:
            count = min(max(max_items, 0), len(self._items))
            return [self._items.popleft() for _ in range(count)]

    def put_back(self, events: list[TaskCompletionEvent]) -> None:
        """Re-queue unsent events at the front, in their order, for the next flush.

        Events tracked meanwhile are newer; if there is not room for all, the oldest of the
        returned events are the ones dropped, as with `put`.
        """
        with self._lock:
            room = self._max_size - len(self._items)
            keep = events[len(events) - room :] if room < len(events) else events
            self._dropped += len(events) - len(keep)
            self._items.extendleft(reversed(keep))

    def take_dropped(self) -> int:
        """Return how many events were evicted since the last call, and reset the count."""
        with self._lock:
            dropped, self._dropped = self._dropped, 0
            return dropped

    def clear(self) -> None:
        """Forget every queued event (used in a forked child)."""
        with self._lock:
            self._items.clear()
            self._dropped = 0

    def _reinit_after_fork(self) -> None:
        # The parent's lock may have been held by another thread at fork time.
        self._lock = threading.Lock()
        self._items.clear()
        self._dropped = 0

    @property
    def size(self) -> int:
        """Current number of queued events."""
        return len(self._items)

    @property
    def is_empty(self) -> bool:
        """Whether the queue holds no event."""
        return not self._items
