"""A large backlog summarized in a process of its own, so that requests never queue behind it.

Folding a backlog (a bulk load, a first start on a large table: about 80 s at 10M events) is
Python work. Done in a thread of the server, it holds the interpreter in stretches and every
request thread queues for it: the first prediction request after a 10M-event load took
127 ms on PostgreSQL, and dashboard pages were slow until it ended. A child process opens its
own connection to the same database and folds the backlog there. That is as safe as another
server process doing it: every chunk is stored with the cursor's compare-and-set, so each event
is folded exactly once, and a process stopped mid-chunk leaves only an uncommitted transaction.

The child is a fresh interpreter running this module (`python -m`), not a `multiprocessing`
child: a fork of a server running threads and a connection pool would copy their locks, and
`spawn` would run the embedding program's main module again. It reads the database URL on its
standard input (never on a command line, where `ps` would show a password), folds until
nothing is left, and exits 0; on failure its traceback, on standard error, goes back to the
server, which logs it. It stops by itself between two chunks if the server that started it has
gone. The server then rebuilds the statistics from the folded buckets itself: that takes
seconds, not minutes, and fills its own per-group merges for the refreshes that follow.
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404 - runs this module in the same interpreter, no shell
import sys
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from mosaicstack_telemetry_server.predictions.incremental import CHUNK_EVENTS, catch_up
from mosaicstack_telemetry_server.storage import open_storage

__all__ = ["DrainProcess", "drain", "main"]

_MODULE: Final = "mosaicstack_telemetry_server.predictions.drain_process"
# The most of a failed child's standard error carried into the server's log.
_REPORT_CHARS: Final = 4_000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def drain(url: str, *, parent_pid: int | None = None) -> int:
    """Fold every event the summaries have not read yet; returns how many were folded.

    Opens (and closes) its own storage for `url`, whose schema must be migrated. Returns early,
    between two chunks, once the process `parent_pid` is no longer this one's parent.
    """
    storage = open_storage(url)
    try:
        folded = 0
        while True:
            done = catch_up(storage, _utc_now, chunk=CHUNK_EVENTS, max_events=CHUNK_EVENTS)
            folded += done.events
            if done.complete or (parent_pid is not None and os.getppid() != parent_pid):
                return folded
    finally:
        storage.close()


def main() -> int:
    """The child: `{"url": ..., "parent_pid": ...}` on standard input; exit status 0 once
    drained, else 1 with the traceback on standard error."""
    try:
        order = json.loads(sys.stdin.read())
        folded = drain(str(order["url"]), parent_pid=int(order["parent_pid"]))
    except Exception:
        traceback.print_exc()
        return 1
    print(f"folded {folded} events")
    return 0


class DrainProcess:
    """One drain child at a time for a database URL, and a thread waiting for its end.

    `on_end` is called in that thread with None when the child drained everything, else with
    what went wrong (its standard error, or how it ended). It is not called for a child ended
    by `stop`.
    """

    def __init__(self, url: str, on_end: Callable[[str | None], None]) -> None:
        self._url = url
        self._on_end = on_end
        self._guard = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._stopped: set[subprocess.Popen[bytes]] = set()

    @property
    def running(self) -> bool:
        """Whether a drain child is alive."""
        process = self._process
        return process is not None and process.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id of the current (or last) drain child."""
        process = self._process
        return None if process is None else process.pid

    def start(self) -> bool:
        """Start a drain child unless one is running; returns whether this call started one."""
        with self._guard:
            if self.running:
                return False
            process = subprocess.Popen(  # noqa: S603  # nosec B603 - fixed arguments, no shell
                [sys.executable, "-m", _MODULE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            self._process = process
        order = json.dumps({"url": self._url, "parent_pid": os.getpid()}).encode()
        threading.Thread(
            target=self._wait,
            args=(process, order),
            name="mosaic-telemetry-stats-drain-watch",
            daemon=True,
        ).start()
        return True

    def stop(self, timeout: float | None) -> bool:
        """End the child now (its open chunk is rolled back); True once it has ended."""
        with self._guard:
            process = self._process
            if process is None or process.poll() is not None:
                return True
            self._stopped.add(process)
            process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _wait(self, process: subprocess.Popen[bytes], order: bytes) -> None:
        try:
            _, errors = process.communicate(order)
        except OSError:  # ended before it read its order (stopped at once)
            process.wait()
            errors = b""
        with self._guard:
            if process in self._stopped:
                self._stopped.discard(process)
                return
        if process.returncode == 0:
            self._on_end(None)
            return
        text = errors.decode("utf-8", "replace").strip()[-_REPORT_CHARS:]
        self._on_end(text or f"the drain process ended with status {process.returncode}")


if __name__ == "__main__":
    sys.exit(main())
