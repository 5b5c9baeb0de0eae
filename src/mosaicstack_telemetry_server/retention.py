"""Retention: deleting events older than a cut, and the summaries of the days they fell on.

Every cut is at a UTC midnight, because the usage rollups and the prediction buckets are per
UTC day of the event's timestamp: a prune deletes the events stamped before day `before`,
then the rollup rows and buckets of the days before it, so what remains answers exactly as a
database that only ever held the remaining events. It works in chunks of at most
`CHUNK_ROWS` rows, one transaction each, pausing between them as long as the chunk took, so
ingestion waits for one chunk at most and gets at least half the time.

Every server process may prune at once: the deletes are idempotent and skip each other's
rows, and deleting buckets bumps the event cursor's generation and the data versions, so a
concurrent catch-up reads again and the served statistics go stale (recomputed as after an
insert, within `stats_max_age_seconds`). An event arriving with a timestamp before the cut
while a prune runs may leave its rollups or buckets behind; the next pass deletes them.

`RetentionTask` runs a pass at start and every `INTERVAL_SECONDS` (`serve --retention-days`);
`mosaic-telemetry prune --before DATE` runs one pass by hand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final

from mosaicstack_telemetry_server.background import DaemonLoop
from mosaicstack_telemetry_server.storage.base import Storage, StorageError

__all__ = [
    "CHUNK_ROWS",
    "INTERVAL_SECONDS",
    "PruneReport",
    "RetentionTask",
    "cutoff_day",
    "prune",
]

logger = logging.getLogger("mosaicstack_telemetry_server")

# Rows per transaction: a chunk takes tens of milliseconds, so a write waits that long at most.
CHUNK_ROWS: Final = 5_000
# Retention is by whole days: once an hour is soon enough, and cheap when nothing is due.
INTERVAL_SECONDS: Final = 3600.0
# How soon a failed pass is tried again (at most the interval).
_RETRY_SECONDS: Final = 60.0
# Least pause between chunks, so that waiting writers (SQLite's busy handler polls) get in.
_MIN_PAUSE_SECONDS: Final = 0.01

# Deletes up to `limit` rows of days before `before` in one transaction; returns how many.
_Step = Callable[[date, int], int]
# Waits about that many seconds between chunks; True: stop now.
Pause = Callable[[float], bool]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def cutoff_day(now: datetime, retention_days: int) -> date:
    """The first UTC day kept: events of the `retention_days` days before today, and
    today's, are kept, so every deleted event is more than `retention_days` days old."""
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    return now.astimezone(UTC).date() - timedelta(days=retention_days)


@dataclass(slots=True)
class PruneReport:
    """What one prune deleted, and in how many transactions (`chunks`: rows of each)."""

    before: date
    events: int = 0
    rollup_rows: int = 0
    buckets: int = 0
    chunks: list[int] = field(default_factory=list)
    stopped: bool = False  # asked to stop before it was done

    @property
    def transactions(self) -> int:
        """How many transactions deleted rows or found none left."""
        return len(self.chunks)


def prune(
    storage: Storage,
    before: date,
    *,
    chunk: int = CHUNK_ROWS,
    pause: Pause | None = None,
) -> PruneReport:
    """Delete the events stamped before `before` (UTC midnight), then the usage rollups and
    prediction buckets of the days before it, `chunk` rows per transaction at most.

    Events go first: a catch-up can then no longer fold one of them into a bucket that the
    buckets' deletion would miss. `pause` is called between transactions (default: a plain
    sleep); when it returns True the prune stops there, unfinished: until a later prune
    finishes it, the rollups and buckets of the days whose events went may still count them.
    """
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    wait = pause or _sleep
    report = PruneReport(before)
    for step, total in (
        (storage.prune_events, "events"),
        (storage.prune_rollups, "rollup_rows"),
        (storage.prune_buckets, "buckets"),
    ):
        if not _drain(step, before, chunk, wait, report, total):
            report.stopped = True
            break
    return report


def _drain(
    step: _Step, before: date, chunk: int, wait: Pause, report: PruneReport, total: str
) -> bool:
    """Run `step` until a transaction deletes less than a chunk; False if asked to stop."""
    while True:
        started = time.monotonic()
        deleted = step(before, chunk)
        report.chunks.append(deleted)
        setattr(report, total, getattr(report, total) + deleted)
        if deleted < chunk:
            return True
        # As long as the chunk took: ingestion gets at least half of the time.
        if wait(max(_MIN_PAUSE_SECONDS, time.monotonic() - started)):
            return False


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class RetentionTask(DaemonLoop):
    """A daemon thread deleting, at start and every `interval` seconds, the events older than
    `retention_days` days (see `cutoff_day`). It never raises: a failing pass is logged
    (once per outage, then at DEBUG) and tried again the next period.

    `ready` is called before each pass and may raise (the schema is not migrated yet).
    """

    def __init__(
        self,
        storage: Storage,
        retention_days: int,
        *,
        ready: Callable[[], object] = lambda: None,
        interval: float = INTERVAL_SECONDS,
        chunk: int = CHUNK_ROWS,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        cutoff_day(clock(), retention_days)  # refuses a retention of less than a day
        if not interval > 0:
            raise ValueError("interval must be > 0")
        self._storage = storage
        self._days = retention_days
        self._ready = ready
        self._interval = interval
        self._chunk = chunk
        self._clock = clock
        super().__init__("mosaic-telemetry-retention")
        self._failing = False
        self.passes = 0  # completed passes, for observers (tests, operators)
        self.last: PruneReport | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            done = self.run_once() is not None
            # A failed pass (database down, schema not migrated yet) is retried sooner.
            self._stop.wait(self._interval if done else min(self._interval, _RETRY_SECONDS))

    def run_once(self) -> PruneReport | None:
        """One pass now (None when it failed: logged, never raised)."""
        try:
            self._ready()
            report = prune(
                self._storage,
                cutoff_day(self._clock(), self._days),
                chunk=self._chunk,
                pause=self._stop.wait,
            )
        except Exception as exc:  # never die: the next period may find the database back
            if self._failing:
                logger.debug("retention: deleting old events still fails", exc_info=True)
            else:
                # A database that is down says enough in one line; anything else is a bug.
                logger.error(
                    "retention: deleting old events failed (will retry): %s",
                    exc,
                    exc_info=not isinstance(exc, StorageError),
                )
            self._failing = True
            return None
        if self._failing:
            logger.info("retention: deleting old events works again")
        self._failing = False
        self.last, self.passes = report, self.passes + 1
        if report.events or report.rollup_rows or report.buckets:
            logger.info(
                "retention: deleted %d events, %d rollup rows and %d buckets before %s "
                "in %d transactions",
                report.events,
                report.rollup_rows,
                report.buckets,
                report.before.isoformat(),
                report.transactions,
            )
        return report
