"""The closer: a daemon thread in each server process that closes idle OTLP tasks.

Every `interval` seconds it claims the tasks without a call for `idle` seconds (a claim is
atomic: one process per task, however many run), stores their events and forgets them, then
forgets the call identities and session prompts older than `REMEMBER_SECONDS`. It never
raises: a failing pass is logged once per outage, then at DEBUG, and retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from mosaicstack_telemetry_server.background import DaemonLoop
from mosaicstack_telemetry_server.otlp.receive import close_tasks
from mosaicstack_telemetry_server.storage.base import Storage, StorageError

__all__ = ["REMEMBER_SECONDS", "TaskCloser"]

logger = logging.getLogger("mosaicstack_telemetry_server")

# A record resent later than this counts again; exporters give up within minutes.
REMEMBER_SECONDS: Final = 86_400.0
# Tasks claimed per transaction.
_CLAIM_LIMIT: Final = 500
# The longest wait between passes: an idle time of 5 minutes closes within 5 min 15 s.
_MAX_INTERVAL: Final = 15.0


class TaskCloser(DaemonLoop):
    """Closes idle tasks every `interval` seconds (default: a quarter of `idle`, at most 15)."""

    def __init__(
        self,
        storage: Storage,
        idle: float,
        *,
        ready: Callable[[], object] = lambda: None,
        interval: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._idle = idle
        self._ready = ready
        self._interval = interval or min(_MAX_INTERVAL, max(0.05, idle / 4))
        self._clock = clock
        super().__init__("mosaic-telemetry-otlp-closer")
        self._failing = False
        # Called with the number of tasks each pass closed (metrics).
        self.on_closed: Callable[[int], object] = lambda _count: None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()

    def run_once(self) -> int | None:
        """Close what is idle now; how many tasks closed (None when the pass failed)."""
        try:
            self._ready()
        except StorageError as exc:  # the runtime logs the outage already, once
            logger.debug("otlp: storage not ready, idle tasks wait: %s", exc)
            return None
        try:
            now = self._clock()
            closed = 0
            while not self._stop.is_set():
                tasks = self._storage.otlp_claim_idle(now - self._idle, now, _CLAIM_LIMIT)
                closed += close_tasks(self._storage, tasks)
                if len(tasks) < _CLAIM_LIMIT:
                    break
            self._storage.otlp_prune(now - REMEMBER_SECONDS)
        except Exception as exc:  # never die: the next pass may find the database back
            log = logger.debug if self._failing else logger.error
            log("otlp: closing idle tasks failed (will retry): %s", exc)
            self._failing = True
            return None
        if self._failing:
            logger.info("otlp: closing idle tasks works again")
        self._failing = False
        if closed:
            self.on_closed(closed)
        return closed
