"""A small pool of SQLite connections, each lent to one thread at a time."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator

from mosaicstack_telemetry_server.storage.base import StorageError

__all__ = ["ConnectionPool"]


class ConnectionPool:
    """At most `size` connections, each lent to one thread at a time."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], size: int, timeout: float
    ) -> None:
        self._connect = connect
        self._timeout = timeout
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        self._size = size
        self._lent = 0

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Borrow a connection (opened on demand) for the duration of the block."""
        if self._closed:
            raise StorageError("the storage is closed")
        if not self._slots.acquire(timeout=self._timeout):
            raise StorageError("every SQLite connection stayed busy past the timeout")
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
                self._lent += 1
            try:
                if conn is None:
                    conn = self._connect()
                yield conn
            finally:
                with self._lock:
                    self._lent -= 1
                if conn is not None:
                    self._give_back(conn)
        finally:
            self._slots.release()

    def _give_back(self, conn: sqlite3.Connection) -> None:
        # A connection still in a transaction had a failed rollback: its state is unknown.
        if not conn.in_transaction:
            with self._lock:
                if not self._closed:
                    self._idle.append(conn)
                    return
        conn.close()

    def discard_idle(self) -> None:
        """Close the idle connections: the next borrowers get new ones (new settings)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def close(self) -> None:
        """Close idle connections now and busy ones when they come back."""
        with self._lock:
            self._closed = True
        self.discard_idle()

    def stats(self) -> dict[str, int]:
        """`max`, `open` (idle or lent) and `in_use` connections right now (for /metrics)."""
        with self._lock:
            return {
                "max": self._size,
                "open": len(self._idle) + self._lent,
                "in_use": self._lent,
                "waiting": 0,  # not tracked: a semaphore does not say who waits
            }
