"""Leases: a lock one holder at a time, freed when released or when its holder ends.

SQLite: an exclusive `flock` on a file beside the database (`<database>-drain-lock`); the
kernel frees it when the file is closed, so a crashed holder never leaves it taken.
PostgreSQL: a session advisory lock on a connection of its own; the server frees it when the
connection ends. A holder's process ending closes it at once; a holder's host vanishing is
noticed by TCP keepalives set on that connection (about a minute), not the server's
defaults (two hours).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from typing import Any

import psycopg

from mosaicstack_telemetry_server.storage.base import StorageError

__all__ = ["AdvisoryLease", "FileLease", "NoLease"]

# Keepalives of a lease's connection, on the server's side of it: seconds idle before the
# first probe, between probes, and probes lost before the connection (and the lock) is dropped.
_KEEPALIVES = (
    "SET tcp_keepalives_idle = 30",
    "SET tcp_keepalives_interval = 10",
    "SET tcp_keepalives_count = 3",
)


class FileLease:
    """An exclusive `flock` on a file, which is created if missing."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd = -1

    def try_acquire(self) -> bool:
        """Take the lock unless another holder has it; True once held."""
        if self._fd < 0:
            try:
                # No symlink followed: the file sits beside the database, in its directory.
                self._fd = os.open(
                    self._path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
                )
            except OSError as exc:
                raise StorageError(f"cannot open the lock file {self._path}: {exc}") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        """Close the file, which frees the lock if held (idempotent)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class AdvisoryLease:
    """A PostgreSQL session advisory lock, on a connection of its own kept between tries."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        statement: str,
        params: tuple[Any, ...],
        scrub: Callable[[str], str],
    ) -> None:
        self._connect = connect
        self._statement = statement
        self._params = params
        self._scrub = scrub
        self._conn: psycopg.Connection[Any] | None = None

    def try_acquire(self) -> bool:
        """Take the lock unless another session holds it; True once held."""
        try:
            if self._conn is None:
                self._conn = self._connect()
                _keep_alive(self._conn)
            row = self._conn.execute(self._statement, self._params).fetchone()
        except psycopg.Error as exc:  # an unmigrated schema, a lost connection
            self.release()
            raise StorageError(self._scrub(f"PostgreSQL error: {exc}")) from exc
        return bool(row and row[0])

    def release(self) -> None:
        """Close the connection, which frees the lock if held (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _keep_alive(conn: psycopg.Connection[Any]) -> None:
    """Shorter keepalives for a long-held lock; best effort (a pooler may refuse them)."""
    try:
        for statement in _KEEPALIVES:
            conn.execute(statement)
    except psycopg.Error:
        pass  # autocommit: the connection is still usable; the server's defaults apply


class NoLease:
    """For a database no other process can open (SQLite `:memory:`): always held."""

    def try_acquire(self) -> bool:
        """Nothing to take."""
        return True

    def release(self) -> None:
        """Nothing to give back."""
