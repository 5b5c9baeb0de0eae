"""The background fold of the usage rollups: a daemon thread per server process.

Ingestion only stores events; this thread folds them into the usage rollups (`storage/
_rollups.py`) a chunk at a time, from the cursor the storage keeps, so no request pays for a
fold nor waits behind one it started. Answers are exact whether or not the fold has caught up
(they read the events after the cursor); the fold only keeps that tail short, so that they stay
fast. Every process of a server runs one: folds take turns on the database (SQLite's write
lock, PostgreSQL's lock on the cursor's row) and each event is folded once, whichever process
folds it; a crash mid-fold rolls its transaction back and the next fold takes the same events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from mosaicstack_telemetry_server.storage._rollups import FOLD_LIMIT
from mosaicstack_telemetry_server.storage.base import Storage, StorageError

__all__ = ["INTERVAL_SECONDS", "MAX_WAIT_SECONDS", "MIN_EVENTS", "UsageFolder"]

logger = logging.getLogger("mosaicstack_telemetry_server")

# How often the fold looks for new events (an idle look is one cheap read).
INTERVAL_SECONDS: Final = 0.5
# A look folds once this many events wait, else only when `MAX_WAIT_SECONDS` have passed since
# the last fold: big folds write far fewer rollup rows per event (`FOLD_LIMIT`), and answers
# count the waiting events anyway, reading at most about this many beside the rollups.
MIN_EVENTS: Final = 20_000
MAX_WAIT_SECONDS: Final = 5.0
# How soon a failed fold is tried again (the database down, the schema not migrated yet).
_RETRY_SECONDS: Final = 5.0
# Least pause between two full chunks, so that waiting writers (SQLite's busy handler polls)
# get in between.
_MIN_PAUSE_SECONDS: Final = 0.01


class UsageFolder:
    """A daemon thread folding the events after the usage cursor once `MIN_EVENTS` wait (it
    looks every `interval` seconds) or `MAX_WAIT_SECONDS` after the last fold, chunk after
    chunk while a backlog lasts. It never raises: a failing fold is logged (once
    per outage, then at DEBUG) and tried again.

    `ready` is called before each fold and may raise (the schema is not migrated yet).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        ready: Callable[[], object] = lambda: None,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        if not interval > 0:
            raise ValueError("interval must be > 0")
        self._storage = storage
        self._ready = ready
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.folded = 0  # events folded by this thread, for observers (tests, operators)

    def start(self) -> None:
        """Start the thread (no-op if it runs)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="mosaic-telemetry-usage-fold", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Stop after the chunk in progress (at once if waiting); True when the thread ended."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        last_fold = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            due = started - last_fold >= MAX_WAIT_SECONDS
            folded = self.run_once(1 if due else MIN_EVENTS)
            if due or folded:
                last_fold = started
            if folded is None:
                pause = _RETRY_SECONDS
            elif folded >= FOLD_LIMIT:
                # A backlog: the next chunk soon, after a pause as long as this one took, so
                # that ingestion gets at least half of the database meanwhile.
                pause = max(_MIN_PAUSE_SECONDS, time.monotonic() - started)
            else:
                pause = self._interval
            self._stop.wait(pause)

    def run_once(self, min_events: int = 1) -> int | None:
        """One fold now, if at least `min_events` wait: how many events it folded (None when it
        failed: logged, never raised)."""
        try:
            self._ready()
            folded = self._storage.fold_pending_usage(min_events)
        except Exception as exc:  # never die: the next try may find the database back
            if self._failing:
                logger.debug("usage fold still fails", exc_info=True)
            else:
                # A database that is down says enough in one line; anything else is a bug.
                logger.error(
                    "usage fold failed (will retry): %s",
                    exc,
                    exc_info=not isinstance(exc, StorageError),
                )
            self._failing = True
            return None
        if self._failing:
            logger.info("usage fold works again")
        self._failing = False
        self.folded += folded
        return folded
