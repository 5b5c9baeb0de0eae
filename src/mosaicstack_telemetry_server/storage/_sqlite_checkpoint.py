"""The WAL checkpointer of a running server's SQLite storage: a thread of its own, off requests.

In WAL mode every commit appends the pages it changed to the `-wal` file; a checkpoint copies
them back into the database file and syncs it, so that the log can start over. By default the
commit that takes the log past 1,000 pages runs that checkpoint itself, inside the request that
made it, and under a steady load that is a request in every few dozen: it pays the copy and
the sync for everyone, and an event that was hot in several commits is copied once per
checkpoint it appears in. SQLite's documentation suggests the alternative used here for
applications that can: turn the automatic checkpoint off on the connections that serve
requests, and checkpoint from a separate thread (https://sqlite.org/wal.html#ckpt).

A checkpoint here is PASSIVE: it copies what no reader still needs and never waits for a writer
or a reader, so ingestion never waits for it. It runs every `INTERVAL_SECONDS` from a connection
of its own (never one of the pool's), and once more when stopped; a failing one is logged once
per outage and tried again. Several server processes on one file each run one: two checkpoints
take turns (the second finds the work done, or the log busy, and says so without waiting).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Final

from mosaicstack_telemetry_server.background import DaemonLoop

__all__ = ["INTERVAL_SECONDS", "WalCheckpointer"]

logger = logging.getLogger("mosaicstack_telemetry_server")

# How often the log is copied back: at 8,000 events/s, a few thousand pages each time (a few
# MB of log, read by every reader's page lookups in its hash index), and most index pages hot
# in many commits are copied once.
INTERVAL_SECONDS: Final = 0.5
# How soon a failed checkpoint is tried again (the file unreadable, the disk full).
_RETRY_SECONDS: Final = 5.0


class WalCheckpointer(DaemonLoop):
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` every `interval` seconds on a connection from
    `connect`, and once more when stopped. Never raises; `checkpoints` counts those that ran,
    `frames` the log pages they copied back (for observers: tests, operators)."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], interval: float = INTERVAL_SECONDS
    ) -> None:
        if not interval > 0:
            raise ValueError("interval must be > 0")
        super().__init__("mosaic-telemetry-wal-checkpoint")
        self._connect = connect
        self._interval = interval
        self._conn: sqlite3.Connection | None = None
        self._failing = False
        self.checkpoints = 0
        self.frames = 0

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                pause = self._interval if self.checkpoint_once() else _RETRY_SECONDS
                self._stop.wait(pause)
            self.checkpoint_once()  # what the last commits logged, before the process ends
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def checkpoint_once(self) -> bool:
        """One passive checkpoint now; False when it failed (logged, never raised). Called by
        the thread; from elsewhere only while the thread is not running (one connection)."""
        try:
            if self._conn is None:
                self._conn = self._connect()
            _busy, _log, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except (sqlite3.Error, OSError) as exc:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
            (logger.debug if self._failing else logger.error)(
                "WAL checkpoint failed (will retry): %s", exc
            )
            self._failing = True
            return False
        if self._failing:
            logger.info("WAL checkpoints work again")
        self._failing = False
        self.checkpoints += 1
        self.frames += max(copied, 0)  # -1 when the database is not in WAL mode
        return True
