"""Background submission: the flush plan of `_delivery`, run by a daemon thread or an asyncio task.

The two submitters only schedule flushes (every interval, or early when woken) and run the
final, deadline-bounded flush when stopped; `halt`/`halt_async` stop either from any caller.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time

import httpx

from mosaicstack_telemetry._delivery import flush, report_leftovers
from mosaicstack_telemetry._logs import log_unexpected, logger
from mosaicstack_telemetry._settings import Settings
from mosaicstack_telemetry._transport import AsyncExchange, Plan, SyncExchange
from mosaicstack_telemetry.queue import EventQueue

__all__ = ["AsyncSubmitter", "ThreadSubmitter", "flush_now_sync", "halt", "halt_async"]

# stop() waits this much beyond the flush budget for the worker to notice and finish.
_JOIN_GRACE_SECONDS = 1.0


def run_guarded_sync(exchange: SyncExchange, plan: Plan[bool]) -> bool:
    """Run a flush in the worker; a bug must not kill the thread that keeps telemetry flowing."""
    try:
        return exchange.run(plan)
    except Exception:
        log_unexpected("telemetry flush failed unexpectedly", exchange.settings.api_key)
        return False


def flush_now_sync(queue: EventQueue, settings: Settings) -> None:
    """A bounded final flush on the calling thread (used at exit when no worker is left)."""
    if queue.is_empty:
        return
    deadline = time.monotonic() + settings.shutdown_timeout_seconds
    try:
        with httpx.Client() as http:
            exchange = SyncExchange(http, settings, deadline=deadline)
            run_guarded_sync(exchange, flush(queue, settings))
    except Exception:
        log_unexpected("telemetry flush failed unexpectedly", settings.api_key)
    report_leftovers(queue)


class ThreadSubmitter:
    """Flushes `queue` from a daemon thread every interval, or earlier when woken."""

    def __init__(self, queue: EventQueue, settings: Settings) -> None:
        self._queue = queue
        self._settings = settings
        self._stop = threading.Event()
        self._wake = threading.Event()
        # Set by wake(), cleared when a flush starts: track() signals only when it is False.
        self.wake_pending = False
        self._deadline = 0.0
        # The exchange of the interval flushes: stop() hands it the final deadline.
        self._exchange: SyncExchange | None = None
        # stop() gave up waiting: it reports what is left, the worker then stays quiet.
        self._abandoned = False
        # Built here, in the caller's thread: httpx imports parts of itself lazily on first use,
        # and a fork during an import in the worker would leave the child a half-imported module.
        self._http = httpx.Client()
        self._thread = threading.Thread(target=self._run, name="mosaicstack-telemetry", daemon=True)

    @property
    def is_running(self) -> bool:
        """Whether the worker is alive and not asked to stop."""
        return self._thread.is_alive() and not self._stop.is_set()

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def wake(self) -> None:
        """Ask for a flush now rather than at the end of the interval."""
        self.wake_pending = True
        self._wake.set()

    def stop(self) -> bool:
        """Stop the worker after its final flush; return False if it overran its budget."""
        self._deadline = time.monotonic() + self._settings.shutdown_timeout_seconds
        exchange = self._exchange
        if exchange is not None:  # a flush in progress must end by the same deadline
            exchange.deadline = self._deadline
        self._stop.set()
        self._wake.set()
        if self._thread.ident is None or self._thread is threading.current_thread():
            return True
        self._thread.join(self._settings.shutdown_timeout_seconds + _JOIN_GRACE_SECONDS)
        if self._thread.is_alive():
            self._abandoned = True
            logger.warning(
                "telemetry worker did not finish its final flush in time; %d events still queued",
                self._queue.size,
            )
            return False
        return True

    def _back_off(self) -> None:
        # The server failed and the events are back in the queue: a busy process tracking on must
        # not turn that into an immediate retry; the next attempt waits for the interval.
        self.wake_pending = True
        self._wake.clear()

    def _run(self) -> None:
        try:
            self._work()
        except Exception:  # the thread's last resort: say so, never raise
            log_unexpected("telemetry worker failed unexpectedly", self._settings.api_key)

    def _work(self) -> None:
        settings = self._settings
        with self._http as http:
            exchange = SyncExchange(http, settings, interrupt=self._stop)
            self._exchange = exchange
            while not self._stop.is_set():
                self._wake.wait(settings.submit_interval_seconds)
                # Cleared before the flush: a wake during the flush then triggers another one.
                self._wake.clear()
                self.wake_pending = False
                if self._stop.is_set():
                    break
                if not run_guarded_sync(exchange, flush(self._queue, settings)):
                    self._back_off()
            final = SyncExchange(http, settings, deadline=self._deadline)
            run_guarded_sync(final, flush(self._queue, settings))
        if not self._abandoned:
            report_leftovers(self._queue)


class AsyncSubmitter:
    """Flushes `queue` from an asyncio task of the running loop, like `ThreadSubmitter`."""

    def __init__(self, queue: EventQueue, settings: Settings) -> None:
        self._queue = queue
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        # Set by wake(), cleared when a flush starts: track() signals only when it is False.
        self.wake_pending = False
        self._deadline = 0.0
        self._exchange: AsyncExchange | None = None
        self._abandoned = False
        # After os.fork() the child holds a copy of this task; it must not run there.
        self._pid = os.getpid()
        self._task = self._loop.create_task(self._run(), name="mosaicstack-telemetry")

    @property
    def is_running(self) -> bool:
        """Whether the task is alive and not asked to stop."""
        return not self._task.done() and not self._stop.is_set()

    def wake(self) -> None:
        """Ask for a flush now; callable from any thread."""
        self.wake_pending = True
        # A closed loop raises RuntimeError: then there is nothing left to wake.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._wake.set)

    def _set_deadline(self) -> None:
        self._deadline = time.monotonic() + self._settings.shutdown_timeout_seconds
        exchange = self._exchange
        if exchange is not None:  # a flush in progress must end by the same deadline
            exchange.deadline = self._deadline

    def request_stop(self) -> None:
        """Ask the task to stop and flush, without waiting (for `stop()` called from sync code)."""
        self._set_deadline()
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._stop.set)
            self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> bool:
        """Stop the task after its final flush; return False if it overran its budget."""
        self._set_deadline()
        self._stop.set()
        self._wake.set()
        done, _ = await asyncio.wait(
            {self._task}, timeout=self._settings.shutdown_timeout_seconds + _JOIN_GRACE_SECONDS
        )
        if done:
            return True
        self._abandoned = True
        self._task.cancel()
        await asyncio.wait({self._task})
        logger.warning(
            "telemetry task did not finish its final flush in time; %d events still queued",
            self._queue.size,
        )
        return False

    def _loop_state(self) -> str:
        """ "here" (the caller runs the loop), "elsewhere" (another thread runs it), or "gone"."""
        loop = self._loop
        if loop.is_closed() or self._task.done():
            return "gone"
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            return "here"
        # A loop that is stopped but not closed may never run again: its task cannot be relied on.
        return "elsewhere" if loop.is_running() else "gone"

    def stop_from_thread(self) -> bool:
        """Stop from synchronous code; return True once the final flush is over.

        False means the flush could not be waited for (called on the loop's own thread, or the
        loop did not answer in time): the caller keeps the client in the exit flush.
        """
        state = self._loop_state()
        if state == "here":
            # Blocking here would block the very loop that has to run the flush.
            self.request_stop()
            return False
        if state == "elsewhere":
            budget = self._settings.shutdown_timeout_seconds + _JOIN_GRACE_SECONDS
            try:
                future = asyncio.run_coroutine_threadsafe(self.stop(), self._loop)
            except RuntimeError:  # the loop closed meanwhile: flush from here instead
                pass
            else:
                try:
                    return future.result(budget + _JOIN_GRACE_SECONDS)
                except concurrent.futures.TimeoutError:
                    future.cancel()
                    logger.warning(
                        "telemetry task did not finish its final flush in time; "
                        "%d events still queued",
                        self._queue.size,
                    )
                    return False
                except concurrent.futures.CancelledError:
                    pass  # the loop went away while stopping
        # The loop is gone (asyncio.run() returned) or will not run: nobody else can flush.
        self.request_stop()
        flush_now_sync(self._queue, self._settings)
        return True

    async def stop_anywhere(self) -> bool:
        """`stop()` for any caller's loop: awaited here, or run in a worker thread."""
        if self._loop_state() == "here":
            return await self.stop()
        # Another (or no) loop owns the task: do the blocking part off the caller's loop.
        return await asyncio.to_thread(self.stop_from_thread)

    def _back_off(self) -> None:
        # As ThreadSubmitter._back_off: after a failed flush, wait for the interval.
        self.wake_pending = True
        self._wake.clear()

    async def _run(self) -> None:
        settings = self._settings
        async with httpx.AsyncClient() as http:
            exchange = AsyncExchange(http, settings, interrupt=self._stop)
            self._exchange = exchange
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), settings.submit_interval_seconds)
                self._wake.clear()
                self.wake_pending = False
                if os.getpid() != self._pid:
                    return
                if self._stop.is_set():
                    break
                if not await self._guarded(exchange, flush(self._queue, settings)):
                    self._back_off()
            final = AsyncExchange(http, settings, deadline=self._deadline)
            await self._guarded(final, flush(self._queue, settings))
        if not self._abandoned:
            report_leftovers(self._queue)

    @staticmethod
    async def _guarded(exchange: AsyncExchange, plan: Plan[bool]) -> bool:
        try:
            return await exchange.run(plan)
        except Exception:
            log_unexpected("telemetry flush failed unexpectedly", exchange.settings.api_key)
            return False


def halt(submitter: ThreadSubmitter | AsyncSubmitter) -> bool:
    """Stop `submitter` from synchronous code; True once its final flush is over."""
    if isinstance(submitter, ThreadSubmitter):
        return submitter.stop()
    return submitter.stop_from_thread()


async def halt_async(submitter: ThreadSubmitter | AsyncSubmitter) -> bool:
    """Stop `submitter` without blocking the running loop; True once its final flush is over."""
    if isinstance(submitter, ThreadSubmitter):
        return await asyncio.to_thread(submitter.stop)
    return await submitter.stop_anywhere()
