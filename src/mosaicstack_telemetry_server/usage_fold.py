"""The background fold of the usage rollups: a daemon thread per server process.

Ingestion only stores events; this thread folds them into the usage rollups (`storage/
_rollups.py`) a chunk at a time, from the cursor the storage keeps, so no request pays for a
fold nor waits behind one it started. Answers are exact whether or not the fold has caught up
(they read the events after the cursor); the fold only keeps that tail short, so that they stay
fast. Every process of a server runs one: folds take turns on the database (SQLite's write
lock, PostgreSQL's lock on the cursor's row) and each event is folded once, whichever process
folds it; a crash mid-fold rolls its transaction back and the next fold takes the same events.

When to fold (`FoldSchedule`): a fold competes with ingestion for the database (on SQLite for
its one write lock) and for the cores, so it waits for a lull, as an LSM tree's compaction
does. It folds once the events waiting stop growing between two looks (ingestion paused: a
fleet reporting task by task leaves such gaps all the time), or once `MAX_TAIL` wait (a bulk
load or a backfill: answers then read at most about that many events beside the rollups), or
`MAX_WAIT_SECONDS` after it first saw events waiting (a sustained stream never pauses). A
bulk load of less than `MAX_TAIL` events is thus stored at the speed of the events table
alone, and folded in one go right after it, in big chunks that write few rollup rows per event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mosaicstack_telemetry_server.background import DaemonLoop
from mosaicstack_telemetry_server.storage._rollups import FOLD_LIMIT
from mosaicstack_telemetry_server.storage.base import Storage, StorageError

__all__ = ["INTERVAL_SECONDS", "MAX_TAIL", "MAX_WAIT_SECONDS", "FoldSchedule", "UsageFolder"]

logger = logging.getLogger("mosaicstack_telemetry_server")

# How often the fold looks for new events (a look is one read that counts at most MAX_TAIL ids).
INTERVAL_SECONDS: Final = 0.5
# Fold at once when this many events wait, lull or not: an answer reads the waiting events
# beside the rollups, so this bounds what it reads (a 100,000-event tail sums in about 0.1 s).
MAX_TAIL: Final = 100_000
# ...and at the latest this long after events were first seen waiting, for a stream that never
# pauses (the chunks are then big, which is what makes a fold cheap per event).
MAX_WAIT_SECONDS: Final = 60.0
# How soon a failed fold is tried again (the database down, the schema not migrated yet).
_RETRY_SECONDS: Final = 5.0
# Least pause between two full chunks, so that waiting writers (SQLite's busy handler polls)
# get in between.
_MIN_PAUSE_SECONDS: Final = 0.01


@dataclass
class FoldSchedule:
    """Whether to fold now, from what each look saw waiting (I/O-free; `UsageFolder` asks)."""

    max_tail: int = MAX_TAIL
    max_wait: float = MAX_WAIT_SECONDS
    _last_seen: int = 0
    _waiting_since: float | None = None

    def due(self, waiting: int, now: float) -> bool:
        """Fold now? `waiting`: the events after the cursor, counted up to `max_tail`."""
        grew, self._last_seen = waiting > self._last_seen, waiting
        if waiting == 0:
            self._waiting_since = None
            return False
        if self._waiting_since is None:
            self._waiting_since = now
        return waiting >= self.max_tail or not grew or now - self._waiting_since >= self.max_wait

    def folded(self) -> None:
        """A fold ran: what waits next is counted afresh."""
        self._last_seen, self._waiting_since = 0, None


class UsageFolder(DaemonLoop):
    """A daemon thread that looks every `interval` seconds at the events after the usage
    cursor and folds them when `FoldSchedule` says so, chunk after chunk while a backlog lasts.
    It never raises: a failing fold is logged (once per outage, then at DEBUG) and tried again.

    `ready` is called before each fold and may raise (the schema is not migrated yet).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        ready: Callable[[], object] = lambda: None,
        interval: float = INTERVAL_SECONDS,
        schedule: FoldSchedule | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError("interval must be > 0")
        self._storage = storage
        self._ready = ready
        self._interval = interval
        self._schedule = schedule or FoldSchedule()
        super().__init__("mosaic-telemetry-usage-fold")
        self._failing = False
        self.folded = 0  # events folded by this thread, for observers (tests, operators)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            folded = self.look_once(started)
            if folded is None:
                pause = _RETRY_SECONDS
            elif folded >= FOLD_LIMIT:
                # A backlog: the next chunk soon, after a pause as long as this one took, so
                # that ingestion gets at least half of the database meanwhile.
                pause = max(_MIN_PAUSE_SECONDS, time.monotonic() - started)
            else:
                pause = self._interval
            self._stop.wait(pause)

    def look_once(self, now: float) -> int | None:
        """Count what waits, and fold a chunk if the schedule says so at `now` (monotonic seconds);
        how many it folded (None: the fold failed)."""
        try:
            self._ready()
            waiting = self._storage.usage_waiting(self._schedule.max_tail)
        except Exception:  # the fold that follows logs what is wrong; never die
            return self.run_once()
        if not self._schedule.due(waiting, now):
            return 0
        folded = self.run_once()
        if folded is not None and folded < FOLD_LIMIT:
            self._schedule.folded()
        return folded

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
