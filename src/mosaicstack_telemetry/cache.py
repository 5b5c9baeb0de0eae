"""The TTL cache of predictions fetched from the server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mosaicstack_telemetry.models.predictions import PredictionQuery, PredictionResponse

__all__ = ["PredictionCache"]


class PredictionCache:
    """Thread-safe dict-based cache of predictions with TTL expiration."""

    def __init__(
        self, ttl_seconds: float = 21600.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[PredictionQuery, tuple[float, PredictionResponse]] = {}
        self._lock = threading.Lock()

    def get(self, query: PredictionQuery) -> PredictionResponse | None:
        """Return the cached prediction for `query`, or `None` if absent or expired."""
        with self._lock:
            entry = self._entries.get(query)
            if entry is None:
                return None
            expires_at, response = entry
            if self._clock() >= expires_at:
                del self._entries[query]
                return None
            return response

    def put(self, query: PredictionQuery, response: PredictionResponse) -> None:
        """Store a prediction for `query` until the TTL runs out."""
        with self._lock:
            self._entries[query] = (self._clock() + self._ttl, response)

    def clear(self) -> None:
        """Invalidate all entries."""
        with self._lock:
            self._entries.clear()

    def reset_after_fork(self) -> None:
        """Make the cache usable in a forked child; the entries are kept (still good answers)."""
        # The parent's lock may have been held by another thread at fork time; the entries
        # themselves are still good answers, so the child keeps them.
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Number of entries, including possibly expired ones."""
        return len(self._entries)
