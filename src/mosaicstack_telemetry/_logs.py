"""The SDK's logger, secret redaction, and a rate limit for log lines from hot paths."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable

__all__ = ["RateLimitedLog", "log_unexpected", "logger", "redact"]

logger = logging.getLogger("mosaicstack_telemetry")

# Fewer characters than this cannot be told apart from ordinary text worth keeping.
_MIN_SECRET_LENGTH = 4


def redact(text: str, secret: str) -> str:
    """Replace every occurrence of `secret` in `text` (also in repr form) by `***`."""
    if len(secret) < _MIN_SECRET_LENGTH:
        return text
    for form in {secret, repr(secret)[1:-1]}:
        text = text.replace(form, "***")
    return text


def log_unexpected(what: str, secret: str) -> None:
    """Log the exception being handled at ERROR, traceback included, with `secret` redacted.

    For bugs caught in the background: `logger.exception` would print the exception's message
    and traceback as they are, and a message may quote a request (a header with the key in it).
    """
    logger.error("%s\n%s", what, redact(traceback.format_exc(), secret).rstrip())


class RateLimitedLog:
    """At most one WARNING per `interval` seconds; the next one says how many were suppressed.

    `track()` may be called in a hot loop with bad input; one line per call would flood logs.
    """

    def __init__(self, interval: float = 10.0, *, clock: Callable[[], float] = time.monotonic):
        self._interval = interval
        self._clock = clock
        self._next_at = float("-inf")
        self._suppressed = 0
        self._lock = threading.Lock()

    def warning(self, message: str, *args: object, exc_info: bool = False) -> None:
        """Log `message` unless another one was logged less than `interval` seconds ago."""
        with self._lock:
            now = self._clock()
            if now < self._next_at:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
            self._next_at = now + self._interval
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        logger.warning(message, *args, exc_info=exc_info)

    def reinit_after_fork(self) -> None:
        """Replace the lock, which another thread of the parent may have held at fork time."""
        self._lock = threading.Lock()
