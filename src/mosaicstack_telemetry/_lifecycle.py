"""Process life: a bounded flush at interpreter exit, and fresh state in a forked child.

Every client registers itself in a WeakSet (it stays collectable). At exit each started client
gets a final flush bounded like `stop()`. In a child of `os.fork()` the parent's worker thread does
not exist and its locks may have been copied while held, so each client resets its queue and locks
and, if it was running, starts a new worker (as OpenTelemetry's BatchSpanProcessor does).

A `multiprocessing` child started by fork ends with `os._exit()`, which skips `atexit`; what it
runs instead are multiprocessing's own exit finalizers. So when a fork happens with
multiprocessing loaded, the exit flush is also registered as such a finalizer in the child
(through `register_after_fork`, because multiprocessing clears its finalizers after the fork).
"""

from __future__ import annotations

import atexit
import os
import sys
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


class _MultiprocessingHook:
    """The object multiprocessing's after-fork registry holds (it keys weakly by object)."""

    registered = False

    @staticmethod
    def in_child(_hook: object) -> None:
        import multiprocessing.util

        # Priority >= 0: run by multiprocessing's exit before it calls os._exit().
        multiprocessing.util.Finalize(None, _at_exit, exitpriority=10)


_mp_hook = _MultiprocessingHook()


def _before_fork() -> None:
    # Only where multiprocessing is already loaded: importing it here would cost every fork.
    if _MultiprocessingHook.registered or "multiprocessing" not in sys.modules:
        return
    try:
        import multiprocessing.util

        multiprocessing.util.register_after_fork(_mp_hook, _MultiprocessingHook.in_child)
        _MultiprocessingHook.registered = True
    except Exception:  # a hook must not break the user's fork
        logger.exception("telemetry could not hook multiprocessing's exit")


def _at_exit() -> None:
    for client in _snapshot():
        try:
            client._close_at_exit()
        except Exception:  # a hook must not break the interpreter's exit
            logger.exception("telemetry client could not flush at exit")


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):  # POSIX only
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
