"""A daemon thread that a server process runs beside its requests, started and stopped once.

The background work of a server process (the retention pass, the usage fold, the closing of
idle OTLP tasks) each loops in a daemon thread of its own until the process stops it; this is
their one start and stop: `start` is a no-op while the thread runs, `stop` wakes a waiting loop
at once (through the stop event the loop waits on) and joins it within a deadline.
"""

from __future__ import annotations

import threading

__all__ = ["DaemonLoop"]


class DaemonLoop:
    """Runs `_run` in a daemon thread named `name`; `_run` loops until `_stop` is set, waiting
    on it (`self._stop.wait(seconds)`) so that `stop()` ends a wait at once."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (no-op if it runs)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Stop after the step in progress (at once if waiting); True when the thread ended."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError
