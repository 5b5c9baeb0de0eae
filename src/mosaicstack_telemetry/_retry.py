"""The retry rule: which replies are worth another attempt, and how long to wait before it.

Two waits live here. Within one flush a failed batch is retried `max_retries` times on an
exponential backoff (`retry_delay`), honouring the server's `Retry-After`. Once those run out the
flush ends; the submitter then tries again on a recovery backoff of its own (`recovery_delay`):
short at first so a blip costs seconds, capped so a long outage costs one request per ~30 s, and
never tied to `submit_interval_seconds` (an interval of minutes would turn a blip into a loss).
While the queue is full and evicting, that cap is `RECOVERY_EVICTING_MAX_SECONDS` instead.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from datetime import UTC, datetime

from mosaicstack_telemetry._reply import Reply

__all__ = [
    "BACKOFF_BASE_SECONDS",
    "BACKOFF_MAX_SECONDS",
    "MAX_RETRY_AFTER_SECONDS",
    "RECOVERY_BASE_SECONDS",
    "RECOVERY_EVICTING_MAX_SECONDS",
    "RECOVERY_MAX_SECONDS",
    "Verdict",
    "classify",
    "parse_retry_after",
    "recovery_delay",
    "retry_delay",
]

# A server asking us to wait longer than this is more likely wrong than right.
MAX_RETRY_AFTER_SECONDS = 300.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
# The first recovery attempt comes this soon after a failed flush, then twice as late each time.
RECOVERY_BASE_SECONDS = 1.0
# A server back after a long outage is noticed within this, at one request per this per client.
RECOVERY_MAX_SECONDS = 30.0
# While the queue is full and evicting, each second of waiting loses a second's worth of events:
# a server back after a long outage was found up to 30 s late, and what was tracked meanwhile was
# evicted. So the backoff is capped at this then (jittered alike; a Retry-After still holds).
RECOVERY_EVICTING_MAX_SECONDS = 2.0


class Verdict(enum.Enum):
    """What to do with a batch after a reply."""

    DONE = "done"
    DROP = "drop"
    SPLIT = "split"
    RETRY = "retry"


def classify(reply: Reply) -> Verdict:
    """The contract's response rules: 2xx done, 413 split, 408/429/5xx/network retry, else drop."""
    status = reply.status
    if status is None:
        return Verdict.DROP if reply.permanent else Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DONE
    if status == 413:
        return Verdict.SPLIT
    if status in (408, 429) or status >= 500:
        return Verdict.RETRY
    return Verdict.DROP


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), capped."""
    if value is None:
        return None
    text = value.strip()[:64]
    try:
        seconds = float(text)
    except ValueError:
        # Only here: the email package costs every import of the SDK, and dates are rare.
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def retry_delay(attempt: int, retry_after: float | None, random: Callable[[], float]) -> float:
    """Exponential backoff with full jitter for retry `attempt` (0-based), >= `retry_after`."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** min(attempt, 32))
    delay = min(max(random(), 0.0), 1.0) * ceiling
    return delay if retry_after is None else max(delay, retry_after)


def recovery_delay(
    failures: int, random: Callable[[], float], cap: float = RECOVERY_MAX_SECONDS
) -> float:
    """Wait before the next flush after `failures` (>= 1) failed flushes in a row, <= `cap`.

    "Equal jitter": half the ceiling plus a random half, so clients that lost the same server
    spread their returns, yet none comes back at once (full jitter could mean 0 s, a busy loop).
    """
    ceiling = min(cap, RECOVERY_BASE_SECONDS * 2.0 ** min(max(failures - 1, 0), 32))
    return ceiling / 2 + min(max(random(), 0.0), 1.0) * ceiling / 2
