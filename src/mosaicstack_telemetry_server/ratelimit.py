"""Token buckets: per API key for requests, and per client address for failed authentications.

The limit is **per server process**: each process keeps its own buckets in memory, so N worker
processes behind a load balancer let a key through at up to N times the configured rate. That
is the usual trade-off for a stateless server sharing only its database; a global limit belongs
in the load balancer or a shared store.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter", "retry_after_seconds"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key: `rate` tokens per second, holding at most `burst`.

    Thread-safe. Memory is bounded by `max_keys`: the least recently used bucket is evicted
    first (one idle for `burst / rate` seconds is full anyway, so forgetting it changes nothing;
    only more than `max_keys` keys active at once could regain tokens that way).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate must be > 0, burst >= 1 and max_keys >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take one token for `key`: 0.0 if granted, else the seconds until one is available."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(tokens=float(self.burst), updated=now)
                self._buckets[key] = bucket
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                bucket.tokens = self._refilled(bucket, now)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def peek(self, key: str) -> float:
        """Like `acquire` without taking the token: 0.0 if one is available, else the wait."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return 0.0
            tokens = self._refilled(bucket, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _refilled(self, bucket: _Bucket, now: float) -> float:
        # The tokens the bucket holds at `now`: refilled at `rate` since its update, up to `burst`.
        elapsed = max(0.0, now - bucket.updated)
        return min(float(self.burst), bucket.tokens + elapsed * self.rate)

    def __len__(self) -> int:
        """Number of keys currently tracked."""
        with self._lock:
            return len(self._buckets)


def retry_after_seconds(wait: float) -> int:
    """`Retry-After` is whole seconds: round up, never below 1."""
    return max(1, math.ceil(wait))
