"""Leases: a lock one holder at a time, freed when released or when its process ends.

SQLite: an exclusive `flock` on a file beside the database (`<database>-drain-lock`); the
kernel frees it when the file is closed, so a crashed holder never leaves it taken.
PostgreSQL: a session advisory lock on a connection of its own; the server frees it when the
connection closes, a holder's crash included.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

import psycopg

__all__ = ["ConnectionLease", "FileLease", "NoLease", "try_file_lease"]


class FileLease:
    """An exclusive `flock` held on an open file."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        """Close the file, which frees the lock (idempotent)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def try_file_lease(path: str) -> FileLease | None:
    """An exclusive lock on the file `path` (created if missing), unless another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return FileLease(fd)


class ConnectionLease:
    """A PostgreSQL session lock, held by the connection it was taken on."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def release(self) -> None:
        """Close the connection, which frees its session locks (idempotent)."""
        self._conn.close()


class NoLease:
    """For a database no other process can open (SQLite `:memory:`): nothing to hold."""

    def release(self) -> None:
        """Nothing to give back."""
