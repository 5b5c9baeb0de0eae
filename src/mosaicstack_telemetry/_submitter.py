"""Background submission: the flush plan of `_delivery`, run by a daemon thread or an asyncio task.

The two submitters only schedule flushes (`_schedule`: every interval, early when woken, on a
recovery backoff after a failure) and run the final, deadline-bounded flush when stopped;
`halt`/`halt_async` stop either from any caller, and `flush_within[_async]` run one bounded flush
on the caller's own thread or loop (`TelemetryClient.flush`, the exit flush of an orphan queue).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time

from mosaicstack_telemetry._flush import Outbox, flush, relieve, settle
from mosaicstack_telemetry._logs import log_unexpected, logger
from mosaicstack_telemetry._plans import Plan
from mosaicstack_telemetry._schedule import Schedule
from mosaicstack_telemetry._settings import Settings
from mosaicstack_telemetry._transport import (
    AsyncExchange,
    SyncExchange,
    Transport,
    async_client,
    sync_client,
)

__all__ = [
    "AsyncSubmitter",
    "ThreadSubmitter",
    "flush_now_sync",
    "flush_within",
    "flush_within_async",
    "halt",
    "halt_async",
]

# stop() waits this much beyond the shutdown budget for the worker to notice and finish: the
# final flush's requests end by the deadline, so this only covers the thread's own bookkeeping.
_JOIN_GRACE_SECONDS = 0.25
# At most this much of the shutdown budget is kept for what follows the final flush's requests.
_FINISH_RESERVE_SECONDS = 0.2


def run_guarded_sync(exchange: SyncExchange, plan: Plan[bool]) -> bool:
    """Run a flush in the worker; a bug must not kill the thread that keeps telemetry flowing."""
    try:
        return exchange.run(plan)
    except Exception:
        log_unexpected("telemetry flush failed unexpectedly", exchange.settings.api_key)
        return False


async def run_guarded_async(exchange: AsyncExchange, plan: Plan[bool]) -> bool:
    """`run_guarded_sync` for the asyncio task."""
    try:
        return await exchange.run(plan)
    except Exception:
        log_unexpected("telemetry flush failed unexpectedly", exchange.settings.api_key)
        return False


def flush_within(
    outbox: Outbox,
    settings: Settings,
    seconds: float,
    transport: Transport = None,
    *,
    final: bool = False,
) -> bool:
    """One flush on the calling thread, ended (what is left kept queued) after `seconds`."""
    with sync_client(transport) as http:
        exchange = SyncExchange(http, settings, deadline=time.monotonic() + seconds)
        return run_guarded_sync(exchange, flush(outbox, settings, final=final))


async def flush_within_async(
    outbox: Outbox, settings: Settings, seconds: float, transport: Transport = None
) -> bool:
    """`flush_within` on the running loop."""
    async with async_client(transport) as http:
        exchange = AsyncExchange(http, settings, deadline=time.monotonic() + seconds)
        return await run_guarded_async(exchange, flush(outbox, settings))


def flush_now_sync(outbox: Outbox, settings: Settings, transport: Transport = None) -> None:
    """The bounded final flush on the calling thread (at exit, when no worker is left)."""
    if not outbox.queue.is_empty or outbox.spool is not None:
        flush_within(outbox, settings, settings.shutdown_timeout_seconds, transport, final=True)
    settle(outbox)


class _Signals:
    """What both submitters share: the wake flags `track()` reads, and the shutdown deadline."""

    def __init__(self, outbox: Outbox, settings: Settings) -> None:
        self._outbox = outbox
        self._settings = settings
        # Set by wake(), cleared when a flush starts, kept set while backing off: track()
        # signals only when it is False, so not every call signals.
        self.wake_pending = False
        # Likewise for evicted events waiting to be spooled.
        self.spill_pending = False
        # Likewise for a full queue (evicting): it shortens a recovery backoff. Cleared after a
        # flush, or at a wake that finds nothing evicted since the last flush after all.
        self.evict_pending = False
        self._evictions_seen = outbox.queue.evictions
        self._deadline = 0.0
        # stop() gave up waiting: it settles what is left, the worker then stays quiet.
        self._abandoned = False

    def _start_deadline(self, exchange: SyncExchange | AsyncExchange | None) -> None:
        budget = self._settings.shutdown_timeout_seconds
        # Requests end a little before the budget: spooling or reporting what is left, and the
        # interpreter's own exit, must fit in it too.
        self._deadline = time.monotonic() + budget - min(_FINISH_RESERVE_SECONDS, budget / 10)
        if exchange is not None:  # a flush in progress must end by the same deadline
            exchange.deadline = self._deadline

    def _evicting(self) -> bool:
        """Whether the queue evicted events since the last flush (it is full, and losing)."""
        return self._outbox.queue.evictions > self._evictions_seen

    def _between_flushes(self, schedule: Schedule, requested: bool) -> bool:
        """After a wake, once the evicted are spooled: say whether to flush now."""
        evicting = self._evicting()
        if not evicting:
            self.evict_pending = False
        if not schedule.may_flush(requested or self.wake_pending, evicting=evicting):
            return False
        self.wake_pending = False
        return True

    def _after_flush(self, schedule: Schedule, ok: bool) -> None:
        schedule.record(ok, retry_after=self._outbox.take_asked_wait())
        self._evictions_seen = self._outbox.queue.evictions
        self.evict_pending = False
        # While backing off, full batches must not wake the submitter. Otherwise the flag stays
        # as it is: set, it records a wake that came during the flush (the event is set too).
        if schedule.backing_off:
            self.wake_pending = True

    def _abandon(self, what: str) -> None:
        self._abandoned = True
        logger.warning(
            "telemetry %s did not finish its final flush in time; %d events still queued",
            what,
            self._outbox.queue.size,
        )
        settle(self._outbox, abandoned=True)


class ThreadSubmitter(_Signals):
    """Flushes the outbox from a daemon thread on its schedule, or earlier when woken."""

    def __init__(self, outbox: Outbox, settings: Settings, transport: Transport = None) -> None:
        super().__init__(outbox, settings)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._exchange: SyncExchange | None = None
        # Built here, in the caller's thread (see `_transport`'s httpcore import).
        self._http = sync_client(transport)
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

    def wake_to_spill(self) -> None:
        """Ask for the evicted events to be spooled now."""
        self.spill_pending = True
        self._wake.set()

    def wake_evicting(self) -> None:
        """Say that the queue is full: a recovery backoff is cut short while it evicts."""
        self.evict_pending = True
        self._wake.set()

    def stop(self) -> bool:
        """Stop the worker after its final flush; return False if it overran its budget."""
        self._start_deadline(self._exchange)
        self._stop.set()
        self._wake.set()
        if self._thread.ident is None or self._thread is threading.current_thread():
            return True
        self._thread.join(self._settings.shutdown_timeout_seconds + _JOIN_GRACE_SECONDS)
        if self._thread.is_alive():
            self._abandon("worker")
            return False
        return True

    def _run(self) -> None:
        try:
            self._work()
        except Exception:  # the thread's last resort: say so, never raise
            log_unexpected("telemetry worker failed unexpectedly", self._settings.api_key)

    def _work(self) -> None:
        settings, outbox = self._settings, self._outbox
        with self._http as http:
            exchange = SyncExchange(http, settings, interrupt=self._stop)
            self._exchange = exchange
            schedule = Schedule(settings)
            # What an earlier run left in the spool goes first, without waiting an interval.
            requested = outbox.spool is not None
            while not self._stop.is_set():
                if not requested:
                    self._wake.wait(schedule.timeout(self._evicting()))
                self._wake.clear()
                if self._stop.is_set():
                    break
                self.spill_pending = False
                run_guarded_sync(exchange, relieve(outbox))
                if self._between_flushes(schedule, requested):
                    ok = run_guarded_sync(exchange, flush(outbox, settings))
                    self._after_flush(schedule, ok)
                requested = False
            final = SyncExchange(http, settings, deadline=self._deadline)
            run_guarded_sync(final, flush(outbox, settings, final=True))
        if not self._abandoned:
            settle(outbox)


class AsyncSubmitter(_Signals):
    """Flushes the outbox from an asyncio task of the running loop, like `ThreadSubmitter`."""

    def __init__(self, outbox: Outbox, settings: Settings, transport: Transport = None) -> None:
        super().__init__(outbox, settings)
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._exchange: AsyncExchange | None = None
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
        self._signal()

    def wake_to_spill(self) -> None:
        """Ask for the evicted events to be spooled now; callable from any thread."""
        self.spill_pending = True
        self._signal()

    def wake_evicting(self) -> None:
        """`ThreadSubmitter.wake_evicting`; callable from any thread."""
        self.evict_pending = True
        self._signal()

    def _signal(self) -> None:
        # A closed loop raises RuntimeError: then there is nothing left to wake.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._wake.set)

    def request_stop(self) -> None:
        """Ask the task to stop and flush, without waiting (for `stop()` called from sync code)."""
        self._start_deadline(self._exchange)
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._stop.set)
            self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> bool:
        """Stop the task after its final flush; return False if it overran its budget."""
        self._start_deadline(self._exchange)
        self._stop.set()
        self._wake.set()
        done, _ = await asyncio.wait(
            {self._task}, timeout=self._settings.shutdown_timeout_seconds + _JOIN_GRACE_SECONDS
        )
        if done:
            return True
        self._task.cancel()
        await asyncio.wait({self._task})
        self._abandon("task")
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
                    self._abandon("task")
                    return False
                except concurrent.futures.CancelledError:
                    pass  # the loop went away while stopping
        # The loop is gone (asyncio.run() returned) or will not run: nobody else can flush.
        self.request_stop()
        self._abandoned = True
        flush_now_sync(self._outbox, self._settings, self._transport)
        return True

    async def stop_anywhere(self) -> bool:
        """`stop()` for any caller's loop: awaited here, or run in a worker thread."""
        if self._loop_state() == "here":
            return await self.stop()
        # Another (or no) loop owns the task: do the blocking part off the caller's loop.
        return await asyncio.to_thread(self.stop_from_thread)

    async def _run(self) -> None:
        settings, outbox = self._settings, self._outbox
        async with async_client(self._transport) as http:
            exchange = AsyncExchange(http, settings, interrupt=self._stop)
            self._exchange = exchange
            schedule = Schedule(settings)
            requested = outbox.spool is not None
            while not self._stop.is_set():
                if not requested:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._wake.wait(), schedule.timeout(self._evicting())
                        )
                self._wake.clear()
                if os.getpid() != self._pid:
                    return
                if self._stop.is_set():
                    break
                self.spill_pending = False
                await run_guarded_async(exchange, relieve(outbox))
                if self._between_flushes(schedule, requested):
                    ok = await run_guarded_async(exchange, flush(outbox, settings))
                    self._after_flush(schedule, ok)
                requested = False
            final = AsyncExchange(http, settings, deadline=self._deadline)
            await run_guarded_async(final, flush(outbox, settings, final=True))
        if self._abandoned:
            return
        if outbox.spool is None:
            settle(outbox)
        else:  # it writes what is left to the spool: off the loop, like every spool write
            await asyncio.to_thread(settle, outbox)


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
