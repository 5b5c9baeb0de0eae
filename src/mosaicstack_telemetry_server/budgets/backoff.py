"""When a failed alert is tried again: exponential backoff with jitter, and when to give up.

5 s, 10 s, 20 s, 40 s... (the first three retries within a minute), capped at 10 minutes, each
wait drawn within +-20% so that the processes of a fleet do not retry in step. An alert is
retried for 48 hours after it was claimed (the contract asks for at least 24), so a receiver
down for an hour gets its alerts within ten minutes of its return.
"""

from __future__ import annotations

import random as _random
from datetime import datetime, timedelta
from typing import Final

__all__ = ["GIVE_UP_AFTER", "retry_delay", "should_give_up"]

_FIRST_SECONDS: Final = 5.0
_CAP_SECONDS: Final = 600.0
_JITTER: Final = 0.2
GIVE_UP_AFTER: Final = timedelta(hours=48)


def retry_delay(attempts: int, rng: _random.Random | None = None) -> timedelta:
    """The wait after the `attempts`-th failed attempt (1 for the first)."""
    base = min(_FIRST_SECONDS * 2 ** min(max(attempts - 1, 0), 20), _CAP_SECONDS)
    draw = (rng or _random).uniform(1 - _JITTER, 1 + _JITTER)  # nosec B311
    return timedelta(seconds=base * draw)


def should_give_up(created_at: datetime, now: datetime) -> bool:
    """Whether an alert claimed at `created_at` has been retried long enough."""
    return now - created_at >= GIVE_UP_AFTER
