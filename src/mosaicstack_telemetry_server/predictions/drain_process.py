"""A large backlog summarized in a process of its own, so that requests never queue behind it.

Folding a backlog (a bulk load, a first start on a large table: about 80 s at 10M events) is
Python work. Done in a thread of the server, it holds the interpreter in stretches and every
request thread queues for it: the first prediction request after a 10M-event load took
127 ms on PostgreSQL, and dashboard pages were slow until it ended. A child process opens its
own connection to the same database and folds the backlog there. That is as safe as another
server process doing it: every chunk is stored with the cursor's compare-and-set, so each event
is folded exactly once, and a process stopped mid-chunk leaves only an uncommitted transaction.

The child is a fresh interpreter running `main` (`python -m ...drain_child`), not a
`multiprocessing` child: a fork of a server running threads and a connection pool would copy
their locks, and `spawn` would run the embedding program's main module again. It reads the
database URL on its standard input (never on a command line, where `ps` would show a
password), folds until nothing is left, and exits 0; on failure its traceback (the URL's
password blanked), on standard error, goes back to the server, which logs it. It runs in a
session of its own, so a Ctrl-C meant for the server does not reach it (the server ends it on
shutdown), and it stops by itself between two chunks if the server that started it has gone.
Between chunks it publishes statistics of the task types that have none yet (`partial`),
so they answer with numbers long before the end. The server then rebuilds the statistics from
the folded buckets itself: that takes seconds, not minutes, and fills its own per-group merges
for the refreshes that follow. Where no child can run (no process can be started, or it
cannot import the server), the service drains in a thread instead.
"""

from __future__ import annotations

import enum
import json
import os
import subprocess  # nosec B404
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import unquote, urlsplit

from mosaicstack_telemetry_server.predictions.incremental import CHUNK_EVENTS, catch_up
from mosaicstack_telemetry_server.predictions.partial import PUBLISH_SECONDS, PartialPublisher
from mosaicstack_telemetry_server.predictions.recency import Recency
from mosaicstack_telemetry_server.storage import open_storage
from mosaicstack_telemetry_server.storage._common import scrub
from mosaicstack_telemetry_server.storage.base import Lease, Storage

__all__ = ["DRAIN_FAILED", "DrainEnd", "DrainProcess", "Ended", "drain", "main"]

# The child's entry point: a module of its own, so that `-m` does not run this module a second
# time (the package imports it, through the service).
_MODULE: Final = "mosaicstack_telemetry_server.predictions.drain_child"
# The child's exit status when draining failed (its traceback is on standard error). Any other
# non-zero status is the interpreter's own: the child could not even run this module.
DRAIN_FAILED: Final = 3
# How often a drain waiting for the lease (another server process drains) tries again.
LEASE_POLL_SECONDS: Final = 0.5
# How long a waiting drain lets the lease's holder fold nothing before it drains all the same
# (a chunk takes about a second).
LEASE_STALL_SECONDS: Final = 60.0
# The most of a failed child's standard error carried into the server's log.
_REPORT_CHARS: Final = 4_000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def drain(
    url: str,
    *,
    parent_pid: int | None = None,
    chunk: int = CHUNK_EVENTS,
    recency: Recency | None = None,
    publish_every: float = PUBLISH_SECONDS,
    lease_stall: float = LEASE_STALL_SECONDS,
) -> int:
    """Fold every event the summaries have not read yet, `chunk` events per transaction;
    returns how many were folded.

    Opens (and closes) its own storage for `url`, whose schema must be migrated. Drains under
    the database's drain lease, waiting for it while another process holds it and folds
    (several server processes on one database then fold each chunk once, not once each), at
    most `lease_stall` seconds without the holder folding anything. Returns early, between
    two chunks or while waiting, once the process `parent_pid` is no longer this one's
    parent. With a `recency`, publishes statistics from what is folded so far for the task
    types that have none yet, every `publish_every` seconds (`partial`).
    """
    storage = open_storage(url)
    try:
        lease = _lease(storage, parent_pid, lease_stall)
        if lease is None:
            return 0
        try:
            publisher = (
                None
                if recency is None
                else PartialPublisher(storage, recency, _utc_now, every=publish_every)
            )
            folded = 0
            while True:
                done = catch_up(storage, _utc_now, chunk=chunk, max_events=chunk)
                folded += done.events
                if done.complete or _orphaned(parent_pid):
                    return folded
                if publisher is not None:
                    publisher.between_chunks()
        finally:
            lease.release()
    finally:
        storage.close()


def _orphaned(parent_pid: int | None) -> bool:
    return parent_pid is not None and os.getppid() != parent_pid


def _lease(storage: Storage, parent_pid: int | None, stall: float) -> Lease | None:
    """The database's drain lease, once whoever holds it (another server process's drain) is
    done; None if the server that started this drain went away meanwhile.

    Waiting rather than leaving: the server takes a drain's end as "the backlog is folded" and
    rebuilds; the holder's chunks are then all stored, and this drain finds little left. But
    a holder that folds nothing for `stall` seconds (a lock left on a connection nobody uses,
    behind a pooler in transaction mode, say) is not waited for: this drain goes ahead
    without the lease, exact all the same thanks to each chunk's compare-and-set.
    """
    lease = storage.drain_lease()
    seen, moved_at = storage.event_cursor().generation, time.monotonic()
    try:
        while not lease.try_acquire():
            if _orphaned(parent_pid):
                lease.release()
                return None
            generation, now = storage.event_cursor().generation, time.monotonic()
            if generation != seen:
                seen, moved_at = generation, now
            elif now - moved_at >= stall:
                break
            time.sleep(LEASE_POLL_SECONDS)
    except BaseException:
        lease.release()
        raise
    return lease


def _blank_password(text: str, url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    for secret in {password, unquote(password or "")}:
        text = scrub(text, secret)
    return text


def main() -> int:
    """The child: `{"url": ..., "parent_pid": ..., "chunk": ..., "recency": [window days,
    fewest events] or null}` on standard input; exit
    status 0 once drained, else `DRAIN_FAILED` with the traceback on standard error."""
    url = ""
    try:
        order = json.loads(sys.stdin.read())
        url = str(order["url"])
        window = order.get("recency")
        folded = drain(
            url,
            parent_pid=int(order["parent_pid"]),
            chunk=int(order["chunk"]),
            recency=None if window is None else Recency(int(window[0]), int(window[1])),
        )
    except Exception:
        sys.stderr.write(_blank_password(traceback.format_exc(), url))
        return DRAIN_FAILED
    print(f"folded {folded} events")
    return 0


class Ended(enum.Enum):
    """How a drain child ended (other than by `DrainProcess.stop`)."""

    DRAINED = "drained"  # folded everything
    FAILED = "failed"  # draining failed: the database, most likely; worth another try later
    SIGNALLED = "signalled"  # ended by a signal it was not sent by `stop`
    CANNOT_RUN = "cannot run"  # no child could be started or run this module here


@dataclass(frozen=True, slots=True)
class DrainEnd:
    """How a drain child ended, and what it said (its standard error, or a description)."""

    how: Ended
    detail: str = ""


class DrainProcess:
    """One drain child at a time for a database URL, and a thread waiting for its end.

    `on_end` is called in that thread when a child ends (not when `stop` ended it); it returns
    whether to start another one. A child counts as running until `on_end` has returned, so
    no other is started while its work is being taken over. `executable` is the Python to run
    (this one by default). With a `recency`, the child publishes statistics of task types that
    have none yet as it goes (`partial`).
    """

    def __init__(
        self,
        url: str,
        on_end: Callable[[DrainEnd], bool],
        *,
        chunk: int = CHUNK_EVENTS,
        executable: str = sys.executable,
        recency: Recency | None = None,
    ) -> None:
        self._url = url
        self._recency = recency
        self._on_end = on_end
        self._chunk = chunk
        self._executable = executable
        self._guard = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._watcher: threading.Thread | None = None
        self._busy = False  # a child runs, or its end is being taken over
        self._closed = False
        self._stopped: set[subprocess.Popen[bytes]] = set()

    @property
    def running(self) -> bool:
        """Whether a drain child runs (or its end is still being taken over)."""
        return self._busy

    @property
    def pid(self) -> int | None:
        """The process id of the current (or last) drain child."""
        process = self._process
        return None if process is None else process.pid

    def open(self) -> None:
        """Allow children again after `stop`."""
        with self._guard:
            self._closed = False

    def start(self) -> bool:
        """Start a drain child unless one is running or this was stopped; returns whether this
        call started one. Raises OSError if no process can be started."""
        with self._guard:
            if self._closed or self._busy:
                return False
            # Fixed arguments, no shell (S603, B603).
            process = subprocess.Popen(  # noqa: S603  # nosec B603
                # -P: the working directory is not put on the path, so nothing there can shadow
                # the package.
                [self._executable, "-P", "-m", _MODULE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            window = self._recency
            order = {
                "url": self._url,
                "parent_pid": os.getpid(),
                "chunk": self._chunk,
                "recency": None if window is None else [window.window_days, window.min_events],
            }
            watcher = threading.Thread(
                target=self._wait,
                args=(process, json.dumps(order).encode()),
                name="mosaic-telemetry-stats-drain-watch",
                daemon=True,
            )
            self._process, self._watcher, self._busy = process, watcher, True
            watcher.start()
            return True

    def stop(self, timeout: float | None) -> bool:
        """End the child now (its open chunk is rolled back) and start none until `open`;
        True once it has ended and its end has been taken over."""
        with self._guard:
            self._closed = True
            process, watcher = self._process, self._watcher
            if process is not None and process.poll() is None:
                self._stopped.add(process)
                process.terminate()
        if watcher is None:
            return True
        watcher.join(timeout)
        return not watcher.is_alive()

    def _wait(self, process: subprocess.Popen[bytes], order: bytes) -> None:
        again = False
        try:
            try:
                _, errors = process.communicate(order)
            except OSError:  # ended before it read its order (stopped at once)
                process.wait()
                errors = b""
            with self._guard:
                stopped = process in self._stopped
                self._stopped.discard(process)
            if not stopped:
                again = self._on_end(_ending(process.returncode, errors))
        finally:
            with self._guard:
                self._busy = False
        if again:
            try:
                self.start()
            except OSError as exc:
                self._on_end(DrainEnd(Ended.CANNOT_RUN, str(exc)))


def _ending(status: int, errors: bytes) -> DrainEnd:
    text = errors.decode("utf-8", "replace").strip()[-_REPORT_CHARS:]
    if status == 0:
        return DrainEnd(Ended.DRAINED)
    if status < 0:
        return DrainEnd(Ended.SIGNALLED, f"the drain process was ended by signal {-status}")
    if status == DRAIN_FAILED:
        return DrainEnd(Ended.FAILED, text)
    return DrainEnd(Ended.CANNOT_RUN, text or f"the drain process exited with status {status}")
