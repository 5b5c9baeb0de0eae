"""`TelemetryClient`: the SDK's entry point, tying queue, submitter and prediction cache."""

from __future__ import annotations

import random as _random
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Self

import httpx

from mosaicstack_telemetry import _lifecycle
from mosaicstack_telemetry._logs import RateLimitedLog, log_unexpected, logger, redact
from mosaicstack_telemetry._predictions import refresh
from mosaicstack_telemetry._settings import Settings
from mosaicstack_telemetry._submitter import (
    AsyncSubmitter,
    ThreadSubmitter,
    flush_now_sync,
    halt,
    halt_async,
)
from mosaicstack_telemetry._transport import AsyncExchange, SyncExchange
from mosaicstack_telemetry.cache import PredictionCache
from mosaicstack_telemetry.config import TelemetryConfig
from mosaicstack_telemetry.models.events import TaskCompletionEvent
from mosaicstack_telemetry.models.predictions import PredictionQuery, PredictionResponse
from mosaicstack_telemetry.queue import EventQueue

__all__ = ["TelemetryClient"]


def _config_problems(config: TelemetryConfig) -> list[str]:
    try:
        return config.validate()
    except Exception as exc:  # e.g. a str where a number belongs
        return [f"config could not be validated ({type(exc).__name__})"]


class TelemetryClient:
    """Queue task events, submit them in the background, and serve cached predictions.

    `track()` never blocks and never raises. Submission runs in a daemon thread (`start`/`stop`,
    `with`) or an asyncio task (`start_async`/`stop_async`, `async with`); stopping does a final
    flush bounded by `request_timeout_seconds`. `clock` (the prediction cache's time source) and
    `random` (the retry jitter) are there for tests.
    """

    def __init__(
        self,
        config: TelemetryConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._config = config
        self._settings = Settings.from_config(config, random=random)
        if self._settings.enabled:
            for problem in _config_problems(config):
                logger.warning("invalid telemetry config: %s", problem)
            for note in self._settings.notes:
                logger.warning("telemetry config: %s", note)
        self._queue = EventQueue(self._settings.max_queue_size)
        self._cache = PredictionCache(self._settings.prediction_cache_ttl_seconds, clock=clock)
        self._lock = threading.Lock()
        self._submitter: ThreadSubmitter | AsyncSubmitter | None = None
        # Started and not stopped since: such a client gets a final flush at interpreter exit.
        self._started = False
        self._rejections = RateLimitedLog()
        _lifecycle.register(self)

    @property
    def config(self) -> TelemetryConfig:
        """The configuration this client was created with."""
        return self._config

    @property
    def queue_size(self) -> int:
        """Number of events currently in the in-memory queue."""
        return self._queue.size

    @property
    def is_running(self) -> bool:
        """Whether the background submitter (sync or async) is currently active."""
        submitter = self._submitter
        return submitter is not None and submitter.is_running

    def track(self, event: TaskCompletionEvent) -> None:
        """Queue an event for submission: O(1), thread-safe, never blocks, never raises."""
        try:
            if not self._settings.enabled:
                return
            if not isinstance(event, TaskCompletionEvent):
                self._rejections.warning(
                    "track() dropped a %s: expected a TaskCompletionEvent", type(event).__name__
                )
                return
            size = self._queue._put_and_size(event)
            # A full batch is waiting: wake the submitter, unless a wake is already pending (the
            # submitter clears the flag when it starts flushing), so not every call signals.
            if size >= self._settings.batch_size:
                submitter = self._submitter
                if submitter is not None and not submitter.wake_pending:
                    submitter.wake()
        except Exception as exc:  # the promise of track() is that it never raises
            self._rejections.warning(
                "track() dropped an event after an error (%s)",
                redact(f"{type(exc).__name__}: {exc}", self._settings.api_key)[:200],
            )

    # --- sync lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start submitting from a daemon thread; no-op when disabled or already running."""
        if not self._settings.enabled:
            return
        with self._lock:
            if self.is_running:
                return
            submitter = ThreadSubmitter(self._queue, self._settings)
            submitter.start()
            self._submitter = submitter
            self._started = True
        _lifecycle.hold(self)

    def stop(self) -> None:
        """Stop the submitter after a final, time-bounded flush; safe to call if not started.

        Never raises. When the flush cannot be waited for (called from inside the loop that runs
        a `start_async()` task, or the worker overran its budget), the client stays in the
        interpreter-exit flush so what is left is not silently lost.
        """
        submitter = self._take_submitter()
        if submitter is None:
            return
        try:
            finished = halt(submitter)
        except Exception:  # stop() must not break the caller's shutdown
            log_unexpected(
                "telemetry submitter could not be stopped cleanly", self._settings.api_key
            )
            finished = False
        if finished:
            self._mark_stopped()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- async lifecycle -----------------------------------------------------------------------

    async def start_async(self) -> None:
        """Start submitting from an asyncio task; no-op when disabled or already running."""
        if not self._settings.enabled:
            return
        with self._lock:
            if self.is_running:
                return
            self._submitter = AsyncSubmitter(self._queue, self._settings)
            self._started = True
        _lifecycle.hold(self)

    async def stop_async(self) -> None:
        """Stop the submitter after a final, time-bounded flush; safe to call if not started.

        Never raises, whichever loop or thread started the client; the current loop is never
        blocked (a flush that cannot run on it runs in a worker thread).
        """
        submitter = self._take_submitter()
        if submitter is None:
            return
        try:
            finished = await halt_async(submitter)
        except Exception:  # stop_async() must not break the caller's shutdown
            log_unexpected(
                "telemetry submitter could not be stopped cleanly", self._settings.api_key
            )
            finished = False
        if finished:
            self._mark_stopped()

    async def __aenter__(self) -> Self:
        await self.start_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop_async()

    def _take_submitter(self) -> ThreadSubmitter | AsyncSubmitter | None:
        with self._lock:
            submitter, self._submitter = self._submitter, None
        return submitter

    def _mark_stopped(self) -> None:
        # Only once the final flush is over: until then the exit hook must still flush.
        with self._lock:
            if self._submitter is not None:  # started again meanwhile
                return
            self._started = False
        _lifecycle.release(self)

    # --- predictions ---------------------------------------------------------------------------

    def get_prediction(self, query: PredictionQuery) -> PredictionResponse | None:
        """Return the cached prediction for `query`, or None if not cached or expired."""
        return self._cache.get(query)

    def refresh_predictions_sync(self, queries: list[PredictionQuery]) -> None:
        """Fetch predictions for `queries` into the cache; failures are logged, never raised."""
        try:
            wanted = self._wanted(queries)
            if wanted:
                with httpx.Client() as http:
                    plan = refresh(wanted, self._cache, self._settings)
                    SyncExchange(http, self._settings).run(plan)
        except Exception as exc:
            logger.warning("could not refresh predictions (%s)", type(exc).__name__)

    async def refresh_predictions(self, queries: list[PredictionQuery]) -> None:
        """Fetch predictions for `queries` into the cache; failures are logged, never raised."""
        try:
            wanted = self._wanted(queries)
            if wanted:
                async with httpx.AsyncClient() as http:
                    plan = refresh(wanted, self._cache, self._settings)
                    await AsyncExchange(http, self._settings).run(plan)
        except Exception as exc:
            logger.warning("could not refresh predictions (%s)", type(exc).__name__)

    def _wanted(self, queries: Iterable[PredictionQuery]) -> list[PredictionQuery]:
        if not self._settings.enabled:
            return []
        wanted = [PredictionQuery.model_validate(query) for query in queries]
        if wanted and self._settings.dry_run:
            logger.info("dry run: %d prediction queries not sent", len(wanted))
            return []
        return wanted

    # --- process life (called by _lifecycle) ---------------------------------------------------

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._queue._reinit_after_fork()
        self._cache._reinit_after_fork()
        self._rejections.reinit_after_fork()
        # The parent's thread does not exist here and its task must not run here (it shares the
        # parent's connections): a client that was running gets a worker thread of its own.
        was_running, self._submitter = self._submitter is not None, None
        self._started = False
        if was_running:
            self.start()

    def _close_at_exit(self) -> None:
        if not self._started:
            return
        submitter = self._take_submitter()
        try:
            if submitter is not None:
                halt(submitter)
            elif not self._queue.is_empty:
                # A stop() that could not wait left these (e.g. it ran on the task's own loop).
                flush_now_sync(self._queue, self._settings)
        except Exception:  # the interpreter's exit must go on
            log_unexpected("telemetry client could not flush at exit", self._settings.api_key)
        self._mark_stopped()

    def __repr__(self) -> str:
        # Never the config's api_key: only what helps to debug.
        return (
            f"TelemetryClient(server_url={self._settings.server_url!r}, "
            f"enabled={self._settings.enabled}, running={self.is_running}, "
            f"queued={self.queue_size})"
        )
