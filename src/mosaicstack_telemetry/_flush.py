"""What one flush does, as a plan: the spool first, then the queue, batch by batch.

Where a client's events wait (`Outbox`: the queue, the optional spool, the counters) and the
steps around delivery: `unspool` sends the spool's files, `flush` the spool and then what is
queued now, `spill` moves what the full queue evicted to the spool, `settle` keeps or reports
what the final flush could not send. Like `_delivery`, the plans do no network I/O; the spool's
file reads and writes are yielded as `Disk` actions (under asyncio a write, or the read of a file
of more than a few events, runs in a worker thread), while claiming a file (a listing and a
rename, metadata only) stays in the plan: the claim, the delivery and the give-back of a file
are in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from mosaicstack_telemetry._delivery import deliver, dry_run
from mosaicstack_telemetry._logs import logger
from mosaicstack_telemetry._plans import Plan, may_proceed, on_disk
from mosaicstack_telemetry._settings import Settings
from mosaicstack_telemetry._spool import Spool, reads_inline
from mosaicstack_telemetry.models.events import TaskCompletionEvent
from mosaicstack_telemetry.queue import EventQueue
from mosaicstack_telemetry.stats import Tally

__all__ = ["Outbox", "flush", "relieve", "report_leftovers", "settle", "spill", "unspool"]


@dataclass(frozen=True)
class Outbox:
    """Where a client's events wait and are counted: the queue, the optional spool, the tally."""

    queue: EventQueue
    tally: Tally
    spool: Spool | None = None
    # The batch being delivered from the queue: a stop() that cannot wait for the worker any
    # longer spools it with the queue (the server's idempotency covers a late success).
    in_flight: list[TaskCompletionEvent] = field(default_factory=list)
    # The `Retry-After` (seconds) of the reply that ended the last flush, if it said one: a
    # server that asked for a minute must not be asked again by the recovery backoff in 1 s.
    asked_wait: list[float] = field(default_factory=list)

    def take_asked_wait(self) -> float | None:
        """The wait the server asked for when the last flush failed (once), if any."""
        waits, self.asked_wait[:] = list(self.asked_wait), []
        return waits[-1] if waits else None


def unspool(outbox: Outbox, settings: Settings, *, final: bool = False) -> Plan[bool]:
    """Plan: deliver the spool's files, oldest first; False when a batch had to go back."""
    spool = outbox.spool
    if spool is None:
        return True
    # Renames and a directory listing: metadata only, done where the plan runs.
    spool.recover()
    while (yield from may_proceed()):
        taken = spool.take()
        if taken is None:
            return True
        claim = yield from on_disk(partial(spool.read_claim, *taken), inline=reads_inline(taken[1]))
        if claim is None:
            continue
        events = claim.events
        for start in range(0, len(events), settings.batch_size):
            chunk = events[start : start + settings.batch_size]
            delivery = yield from deliver(chunk, settings, outbox.tally, final=final)
            if delivery.unsent:
                _note_asked_wait(outbox, delivery.retry_after)
                unsent = delivery.unsent + events[start + len(chunk) :]
                # All of it goes back by a rename; a part is written to a file of its own.
                whole = len(unsent) == len(events)
                yield from on_disk(partial(spool.give_back, claim, unsent), inline=whole)
                outbox.tally.add("unspooled", len(events) - len(unsent))
                return False
        spool.finish(claim)
        outbox.tally.add("unspooled", len(events))
    return True


def flush(outbox: Outbox, settings: Settings, *, final: bool = False) -> Plan[bool]:
    """Plan: send the spool, then what is queued now, batch by batch; put back what is unsent.

    Only the events present at the start are taken, so a process tracking faster than the server
    answers cannot keep one flush going forever; after a batch fails for good the flush ends
    rather than hammering a server that is down. It also ends, leaving the rest queued, when the
    executor says to stop (stop requested, or the final flush's deadline passed). Returns False
    when events had to be put back (the server failed), True otherwise.
    """
    queue = outbox.queue
    yield from relieve(outbox)
    sent_all = yield from unspool(outbox, settings, final=final)
    budget = queue.size if sent_all else 0
    # Checked before each batch: once stop is asked (or the final deadline passed) the rest is
    # left queued for the final flush, instead of being sent by a worker nobody waits for.
    while budget > 0 and (yield from may_proceed()):
        batch = queue.drain(min(settings.batch_size, budget))
        if not batch:
            break
        budget -= len(batch)
        if settings.dry_run:
            dry_run(batch, settings, outbox.tally)
            continue
        outbox.in_flight[:] = batch
        delivery = yield from deliver(
            batch, settings, outbox.tally, final=final, idle=partial(relieve, outbox)
        )
        outbox.in_flight.clear()
        if delivery.unsent:
            _note_asked_wait(outbox, delivery.retry_after)
            queue.put_back(delivery.unsent)
            sent_all = False
            break
    yield from relieve(outbox)
    return sent_all


def _note_asked_wait(outbox: Outbox, seconds: float | None) -> None:
    outbox.asked_wait[:] = [] if seconds is None else [seconds]


def relieve(outbox: Outbox) -> Plan[bool]:
    """Plan: `spill`, as a `Disk` action that runs in a thread when there is a file to write."""
    nothing_to_write = outbox.spool is None or outbox.queue.evicted_kept == 0
    yield from on_disk(partial(spill, outbox), inline=nothing_to_write)
    return True


def spill(outbox: Outbox) -> None:
    """Write the events the full queue evicted to the spool; log what was evicted for good."""
    queue = outbox.queue
    if outbox.spool is not None:
        evicted = queue.take_evicted()
        if evicted:
            written = outbox.spool.write(evicted)
            if written < len(evicted):
                # The disk refused them: they are lost, like any other eviction.
                outbox.tally.add("evicted", len(evicted) - written)
    dropped = queue.take_dropped()
    if dropped:
        logger.warning("%d events were evicted because the queue was full", dropped)


def settle(outbox: Outbox, *, abandoned: bool = False) -> None:
    """After the final flush: spool what is left, or say how many events were not sent.

    `abandoned`: the worker overran its budget and still holds a batch; it is spooled too.
    """
    queue = outbox.queue
    if outbox.spool is not None:
        spill(outbox)
        leftovers = (list(outbox.in_flight) if abandoned else []) + queue.drain(queue.size)
        if leftovers:
            written = outbox.spool.write(leftovers)
            logger.info("%d unsent events spooled to %s", written, outbox.spool.directory)
            if written < len(leftovers):
                queue.put_back(leftovers[written:])
    report_leftovers(queue)


def report_leftovers(queue: EventQueue) -> None:
    """The one WARNING for events still queued after the final flush."""
    if not queue.is_empty:
        logger.warning("%d events still queued after the final flush (not sent)", queue.size)
