"""Process life: a bounded flush at interpreter exit, and fresh state in a forked child.

Every client registers two callbacks of its own, held weakly (it stays collectable). At exit
each started client gets a final flush bounded like `stop()`. In a child of `os.fork()` the
parent's worker thread does not exist and its locks may have been copied while held, so each
client resets its queue and locks and, if it was running, starts a new worker (as
OpenTelemetry's BatchSpanProcessor does).

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
from collections.abc import Callable
from dataclasses import dataclass

from mosaicstack_telemetry._logs import logger

__all__ = ["Hooks", "hold", "register", "release"]


@dataclass(frozen=True)
class Hooks:
    """What a client asks to be called for: in a forked child, and at interpreter exit."""

    after_fork_in_child: Callable[[], None]
    close_at_exit: Callable[[], None]


class _Entry:
    """A client's hooks, held through weak references to its bound methods."""

    def __init__(self, hooks: Hooks) -> None:
        self._fork = weakref.WeakMethod(hooks.after_fork_in_child)
        self._exit = weakref.WeakMethod(hooks.close_at_exit)

    def after_fork_in_child(self) -> None:
        method = self._fork()
        if method is not None:
            method()

    def close_at_exit(self) -> None:
        method = self._exit()
        if method is not None:
            method()


_clients: weakref.WeakKeyDictionary[object, _Entry] = weakref.WeakKeyDictionary()
# Started clients are held strongly: one started and then dropped by its owner still has a
# worker and a queue, and must still get its exit flush.
_running: set[object] = set()
_lock = threading.Lock()


def register(client: object, hooks: Hooks) -> None:
    """Include `client` in the exit flush and the fork reset, through its `hooks`."""
    with _lock:
        _clients[client] = _Entry(hooks)


def hold(client: object) -> None:
    """Keep a started `client` alive until `release`."""
    with _lock:
        _running.add(client)


def release(client: object) -> None:
    """Let a stopped `client` be collected again."""
    with _lock:
        _running.discard(client)


def _snapshot() -> list[_Entry]:
    with _lock:
        return list(_clients.values())


def _after_fork_in_child() -> None:
    global _lock
    # The child has one thread; a lock held by another parent thread would never be released.
    _lock = threading.Lock()
    for entry in list(_clients.values()):
        try:
            entry.after_fork_in_child()
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
    for entry in _snapshot():
        try:
            entry.close_at_exit()
        except Exception:  # a hook must not break the interpreter's exit
            logger.exception("telemetry client could not flush at exit")


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):  # POSIX only
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
