"""Process life: a bounded flush at interpreter exit, and fresh state in a forked child.

Every client registers itself in a WeakSet (it stays collectable). At exit each started client
gets a final flush bounded like `stop()`. In a child of `os.fork()` the parent's worker thread does
not exist and its locks may have been copied while held, so each client resets its queue and locks
and, if it was running, starts a new worker (as OpenTelemetry's BatchSpanProcessor does).
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import Protocol

from mosaicstack_telemetry._logs import logger

__all__ = ["hold", "register", "release"]


class _Managed(Protocol):
    def _after_fork_in_child(self) -> None: ...

    def _close_at_exit(self) -> None: ...


_clients: weakref.WeakSet[_Managed] = weakref.WeakSet()
# Started clients are held strongly: one started and then dropped by its owner still has a
# worker and a queue, and must still get its exit flush.
_running: set[_Managed] = set()
_lock = threading.Lock()


def register(client: _Managed) -> None:
    """Include `client` in the exit flush and the fork reset."""
    with _lock:
        _clients.add(client)


def hold(client: _Managed) -> None:
    """Keep a started `client` alive until `release`."""
    with _lock:
        _running.add(client)


def release(client: _Managed) -> None:
    """Let a stopped `client` be collected again."""
    with _lock:
        _running.discard(client)


def _snapshot() -> list[_Managed]:
    with _lock:
        return list(_clients)


def _after_fork_in_child() -> None:
    global _lock
    # The child has one thread; a lock held by another parent thread would never be released.
    _lock = threading.Lock()
    for client in list(_clients):
        try:
            client._after_fork_in_child()
        except Exception:  # a hook must not break the user's fork
            logger.exception("telemetry client could not reset after fork")


def _at_exit() -> None:
    for client in _snapshot():
        try:
            client._close_at_exit()
        except Exception:  # a hook must not break the interpreter's exit
            logger.exception("telemetry client could not flush at exit")


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):  # POSIX only
    os.register_at_fork(after_in_child=_after_fork_in_child)
