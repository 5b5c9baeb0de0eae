"""`TelemetryClient`: the SDK's entry point, tying queue, submitter and prediction cache."""

from __future__ import annotations

import math
import random as _random
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from mosaicstack_telemetry import _lifecycle
from mosaicstack_telemetry._budgets import BUDGET_STATUS_TTL_SECONDS, BudgetCache, refresh_budgets
from mosaicstack_telemetry._flush import Outbox
from mosaicstack_telemetry._logs import RateLimitedLog, log_unexpected, logger, redact
from mosaicstack_telemetry._predictions import refresh
from mosaicstack_telemetry._settings import Settings
from mosaicstack_telemetry._spool import Spool
from mosaicstack_telemetry.budget_check import BudgetCheck, check_budgets, estimated_cost_p90
from mosaicstack_telemetry.cache import PredictionCache
from mosaicstack_telemetry.config import TelemetryConfig
from mosaicstack_telemetry.models.budgets import BudgetStatus
from mosaicstack_telemetry.models.events import TaskCompletionEvent
from mosaicstack_telemetry.models.predictions import PredictionQuery, PredictionResponse
from mosaicstack_telemetry.queue import EventQueue
from mosaicstack_telemetry.stats import Tally, TelemetryStats

if TYPE_CHECKING:
    # Imported when first needed (start, flush, refresh): httpx is most of the SDK's import
    # time, and a hook that runs a Python process per agent task pays it every time.
    from mosaicstack_telemetry._submitter import AsyncSubmitter, ThreadSubmitter

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
    flush bounded by `shutdown_timeout_seconds`, and with a `spool_dir` what it could not send
    is kept on disk for the next client. `clock` (the prediction cache's time source) and
    `random` (the retry jitter) are there for tests; `transport` (an httpx transport, e.g.
    `mosaicstack_telemetry.testing.InMemoryTransport`) replaces the network.
    """

    def __init__(
        self,
        config: TelemetryConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        transport: Any = None,
    ) -> None:
        self._config = config
        self._settings = settings = Settings.from_config(config, random=random)
        if settings.enabled:
            for problem in _config_problems(config):
                logger.warning("invalid telemetry config: %s", problem)
            for note in settings.notes:
                logger.warning("telemetry config: %s", note)
        self._transport = transport
        self._tally = Tally()
        spool = None
        if settings.spool_dir is not None:
            spool = Spool(settings.spool_dir, settings.spool_max_bytes, self._tally)
        # With a spool, what a full queue evicts is kept aside (as much again) for the disk.
        keep = settings.max_queue_size if spool is not None else 0
        self._queue = EventQueue(settings.max_queue_size, keep_evicted=keep)
        self._outbox = Outbox(self._queue, self._tally, spool)
        self._cache = PredictionCache(self._settings.prediction_cache_ttl_seconds, clock=clock)
        self._budgets = BudgetCache(BUDGET_STATUS_TTL_SECONDS, clock=clock)
        self._lock = threading.Lock()
        self._submitter: ThreadSubmitter | AsyncSubmitter | None = None
        # Started and not stopped since: such a client gets a final flush at interpreter exit.
        self._started = False
        self._rejections = RateLimitedLog()
        _lifecycle.register(self, _lifecycle.Hooks(self._after_fork_in_child, self._close_at_exit))

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
                self._tally.add("invalid")
                self._rejections.warning(
                    "track() dropped a %s: expected a TaskCompletionEvent", type(event).__name__
                )
                return
            size = self._queue.offer(event)
            # A full batch is waiting: wake the submitter, unless a wake is already pending (the
            # submitter clears the flag when it starts flushing), so not every call signals.
            if size >= self._settings.batch_size:
                submitter = self._submitter
                if submitter is not None:
                    if not submitter.wake_pending:
                        submitter.wake()
                    if size >= self._queue.max_size:
                        self._evicting(submitter)
        except Exception as exc:  # the promise of track() is that it never raises
            self._tally.add("invalid")
            self._rejections.warning(
                "track() dropped an event after an error (%s)",
                redact(f"{type(exc).__name__}: {exc}", self._settings.api_key)[:200],
            )

    def _evicting(self, submitter: ThreadSubmitter | AsyncSubmitter) -> None:
        # The queue is full and evicting: say so once (a recovery backoff is cut short), and
        # once a batch's worth of evicted events waits, have it spooled.
        if not submitter.evict_pending:
            submitter.wake_evicting()
        if not submitter.spill_pending and self._queue.evicted_kept >= self._settings.batch_size:
            submitter.wake_to_spill()

    def stats(self) -> TelemetryStats:
        """A snapshot of what became of the events this client saw since its creation."""
        queue = self._queue
        return self._tally.snapshot(
            tracked=queue.added, evicted=queue.evicted_total, queue_size=queue.size
        )

    def _flush_budget(self, timeout: float | None) -> float:
        if timeout is None:
            return self._settings.shutdown_timeout_seconds
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
        return timeout if math.isfinite(timeout) else self._settings.shutdown_timeout_seconds

    def flush(self, timeout: float | None = None) -> int:
        """Send what is queued now (and what waits in the spool); return how many are still queued.

        Runs on the calling thread, bounded by `timeout` seconds (default: the shutdown budget,
        `shutdown_timeout_seconds`); works whether or not the client was started. Failures are
        logged and counted in `stats()`, never raised.
        """
        budget = self._flush_budget(timeout)
        if self._settings.enabled and budget > 0:
            from mosaicstack_telemetry._submitter import flush_within

            flush_within(self._outbox, self._settings, budget, self._transport)
        return self._queue.size

    async def flush_async(self, timeout: float | None = None) -> int:
        """`flush()` on the running loop, without blocking it; return how many are still queued."""
        budget = self._flush_budget(timeout)
        if self._settings.enabled and budget > 0:
            from mosaicstack_telemetry._submitter import flush_within_async

            await flush_within_async(self._outbox, self._settings, budget, self._transport)
        return self._queue.size

    # --- sync lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start submitting from a daemon thread; no-op when disabled or already running.

        With a spool, what it holds is sent first, by the worker (start() does not wait for it).
        """
        if not self._settings.enabled:
            return
        from mosaicstack_telemetry._submitter import ThreadSubmitter

        with self._lock:
            if self.is_running:
                return
            submitter = ThreadSubmitter(self._outbox, self._settings, self._transport)
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
        from mosaicstack_telemetry._submitter import halt

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
        from mosaicstack_telemetry._submitter import AsyncSubmitter

        with self._lock:
            if self.is_running:
                return
            self._submitter = AsyncSubmitter(self._outbox, self._settings, self._transport)
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
        from mosaicstack_telemetry._submitter import halt_async

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
                from mosaicstack_telemetry._transport import SyncExchange, sync_client

                with sync_client(self._transport) as http:
                    plan = refresh(wanted, self._cache, self._settings)
                    SyncExchange(http, self._settings).run(plan)
        except Exception as exc:
            logger.warning("could not refresh predictions (%s)", type(exc).__name__)

    async def refresh_predictions(self, queries: list[PredictionQuery]) -> None:
        """Fetch predictions for `queries` into the cache; failures are logged, never raised."""
        try:
            wanted = self._wanted(queries)
            if wanted:
                from mosaicstack_telemetry._transport import AsyncExchange, async_client

                async with async_client(self._transport) as http:
                    plan = refresh(wanted, self._cache, self._settings)
                    await AsyncExchange(http, self._settings).run(plan)
        except Exception as exc:
            logger.warning("could not refresh predictions (%s)", type(exc).__name__)

    # --- budgets -------------------------------------------------------------------------------

    def get_budget_status(self) -> list[BudgetStatus] | None:
        """The cached status of the budgets covering this instance; None if unknown or old."""
        return self._budgets.get()

    def refresh_budgets_sync(self) -> None:
        """Fetch the budget status into the cache; failures are logged, never raised."""
        try:
            if self._settings.enabled and not self._settings.dry_run:
                from mosaicstack_telemetry._transport import SyncExchange, sync_client

                with sync_client(self._transport) as http:
                    SyncExchange(http, self._settings).run(
                        refresh_budgets(self._budgets, self._settings)
                    )
        except Exception as exc:
            logger.warning("could not refresh budgets (%s)", type(exc).__name__)

    async def refresh_budgets(self) -> None:
        """Fetch the budget status into the cache; failures are logged, never raised."""
        try:
            if self._settings.enabled and not self._settings.dry_run:
                from mosaicstack_telemetry._transport import AsyncExchange, async_client

                async with async_client(self._transport) as http:
                    await AsyncExchange(http, self._settings).run(
                        refresh_budgets(self._budgets, self._settings)
                    )
        except Exception as exc:
            logger.warning("could not refresh budgets (%s)", type(exc).__name__)

    def check_budget(
        self,
        prediction: PredictionResponse | None,
        *,
        block: bool = False,
        project: str | None = None,
    ) -> BudgetCheck | None:
        """A task's estimate against the cached budgets (`budget_check.py`); None when the
        status is unknown or too old: never a reason to block."""
        budgets = self._budgets.get()
        if budgets is None:
            return None
        median, p90 = estimated_cost_p90(prediction)
        return check_budgets(budgets, median, p90, block=block, project=project)

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
        self._queue.reset_after_fork()
        self._cache.reset_after_fork()
        self._tally.reset_after_fork()
        self._outbox.in_flight.clear()  # the parent's batch, not the child's
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
        from mosaicstack_telemetry._submitter import flush_now_sync, halt

        submitter = self._take_submitter()
        try:
            if submitter is not None:
                halt(submitter)
            elif not self._queue.is_empty:
                # A stop() that could not wait left these (e.g. it ran on the task's own loop).
                flush_now_sync(self._outbox, self._settings, self._transport)
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
