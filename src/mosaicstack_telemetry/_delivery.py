"""What one flush does, as plans: batch the queue, deliver each batch, put back what is unsent.

`flush()` and `deliver()` hold every decision (batching, retries, splitting, put-back, what is
dropped and why); they yield `Send`/`Wait`/`Check` actions and never do I/O, so the thread and the
asyncio task run the very same logic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mosaicstack_telemetry._logs import logger, redact
from mosaicstack_telemetry._plans import EVENTS_PATH, Plan, may_proceed, send, wait
from mosaicstack_telemetry._reply import Reply, describe_failure, log_reply_failure
from mosaicstack_telemetry._retry import Verdict, classify, parse_retry_after, retry_delay
from mosaicstack_telemetry._settings import Settings
from mosaicstack_telemetry._spool import Spool
from mosaicstack_telemetry.models.batch import BatchEventRequest, BatchEventResponse
from mosaicstack_telemetry.models.events import TaskCompletionEvent
from mosaicstack_telemetry.queue import EventQueue
from mosaicstack_telemetry.stats import Tally

__all__ = ["Delivery", "Outbox", "deliver", "flush", "report_leftovers", "settle", "unspool"]

# Rejections listed in full in the one log line of a batch; the rest are counted.
_MAX_REJECTIONS_LOGGED = 10
# Server-provided or exception text is cut to this, after redaction, in log lines.
_MAX_REASON_CHARS = 200


@dataclass(frozen=True)
class Delivery:
    """The outcome of delivering one batch: what must go back to the queue, and what was lost."""

    unsent: list[TaskCompletionEvent]
    interrupted: bool = False
    # Events dropped for good (refused by the server, too large, not serialisable).
    dropped: int = 0


@dataclass(frozen=True)
class Outbox:
    """Where a client's events wait and are counted: the queue, the optional spool, the tally."""

    queue: EventQueue
    tally: Tally
    spool: Spool | None = None
    # The batch being delivered from the queue: a stop() that cannot wait for the worker any
    # longer spools it with the queue (the server's idempotency covers a late success).
    in_flight: list[TaskCompletionEvent] = field(default_factory=list)


@dataclass
class _Losses:
    """What one top-level batch lost for good, counted by reason: reported in one WARNING."""

    reasons: dict[str, int] = field(default_factory=dict)
    # Once a single event was refused as too large, halving more only multiplies requests.
    may_split: bool = True

    def add(self, count: int, reason: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + count

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def report(self, size: int) -> None:
        total = self.total
        if not total:
            return
        why = "; ".join(
            reason if len(self.reasons) == 1 else f"{count}: {reason}"
            for reason, count in self.reasons.items()
        )
        if total == size and len(self.reasons) == 1:
            logger.warning("dropped a batch of %d events (%s)", size, why)
        else:
            logger.warning("dropped %d of a batch of %d events (%s)", total, size, why)


@dataclass(frozen=True)
class _Run:
    """What stays the same for every request of one batch's delivery."""

    tally: Tally
    final: bool = False
    idle: Callable[[], None] | None = None


def _encode(events: list[TaskCompletionEvent]) -> bytes:
    # warnings=False: a value of the wrong type set after validation is the server's to judge
    # (per event); pydantic would otherwise print a UserWarning for every batch.
    return BatchEventRequest(events=events).model_dump_json(warnings=False).encode()


def _encode_sendable(
    events: list[TaskCompletionEvent], losses: _Losses, secret: str
) -> tuple[list[TaskCompletionEvent], bytes]:
    """The batch's body, without the events that cannot be serialised at all.

    Models are mutable: an event changed after `track()` (or built with `model_construct`) can
    break serialisation of the whole batch. The whole batch at once is the fast path; only when
    that fails is each event tried on its own, and only the failing ones are dropped.
    """
    with contextlib.suppress(Exception):  # the slow path below finds and reports the culprits
        return events, _encode(events)
    kept: list[TaskCompletionEvent] = []
    parts: list[bytes] = []
    for event in events:
        try:
            parts.append(event.model_dump_json(warnings=False).encode())
        except Exception as exc:
            text = redact(f"{type(exc).__name__}: {exc}", secret)
            losses.add(1, f"could not be serialised ({text[:_MAX_REASON_CHARS]})")
        else:
            kept.append(event)
    return kept, b'{"events":[' + b",".join(parts) + b"]}"


def _report_done(events: list[TaskCompletionEvent], reply: Reply, settings: Settings) -> int:
    """Log the outcome of a delivered batch; return how many of its events the server refused."""
    try:
        answer = BatchEventResponse.model_validate_json(reply.body)
    except ValueError:
        if reply.status == 207:
            logger.warning("batch of %d events partly rejected (response unreadable)", len(events))
        else:
            logger.debug("batch of %d events sent (HTTP %s)", len(events), reply.status)
        return 0
    rejected = [r for r in answer.results if r.status == "rejected"]
    if not rejected:
        logger.debug("batch of %d events accepted", len(events))
        return 0
    # Redacted before cutting: a cut first could split the key and let a part of it through.
    listed = "; ".join(
        redact(f"{r.event_id}: {r.error}", settings.api_key)[:_MAX_REASON_CHARS]
        for r in rejected[:_MAX_REJECTIONS_LOGGED]
    )
    more = len(rejected) - _MAX_REJECTIONS_LOGGED
    logger.warning(
        "server rejected %d of %d events (not resent): %s%s",
        len(rejected),
        len(events),
        listed,
        f"; and {more} more" if more > 0 else "",
    )
    return min(len(rejected), len(events))


def deliver(
    events: list[TaskCompletionEvent],
    settings: Settings,
    tally: Tally | None = None,
    *,
    final: bool = False,
    idle: Callable[[], None] | None = None,
) -> Plan[Delivery]:
    """Plan: send one batch, following the contract's rules for every kind of reply.

    Whatever the batch loses for good (refused, too large, not serialisable) is counted in the
    result and reported in one WARNING, however many requests the batch took. In the `final`
    flush a request that got no answer at all is not retried: a server that is down or hangs
    will not be back within the shutdown budget, and the spool (or the log) takes the rest.
    `idle` runs before each retry wait (the submitter spools evicted events there).
    """
    tally = tally or Tally()
    losses = _Losses()
    sendable, body = _encode_sendable(events, losses, settings.api_key)
    delivery = Delivery([])
    if sendable:
        delivery = yield from _deliver(sendable, body, settings, losses, _Run(tally, final, idle))
    losses.report(len(events))
    tally.add("rejected", losses.total)
    if delivery.unsent and not delivery.interrupted:
        tally.add("failed_batches")
    return Delivery(delivery.unsent, delivery.interrupted, losses.total)


def _deliver(
    events: list[TaskCompletionEvent],
    body: bytes,
    settings: Settings,
    losses: _Losses,
    run: _Run,
) -> Plan[Delivery]:
    tally = run.tally
    attempt = 0
    while True:
        reply = yield from send(EVENTS_PATH, body)
        verdict = classify(reply)
        if verdict is Verdict.DONE:
            refused = _report_done(events, reply, settings)
            tally.add("rejected", refused)
            tally.add("sent", len(events) - refused)
            return Delivery([])
        if verdict is Verdict.DROP:
            losses.add(len(events), describe_failure(reply, settings.api_key))
            return Delivery([])
        if verdict is Verdict.SPLIT:
            return (yield from _split(events, settings, losses, run))
        if attempt >= settings.max_retries or (run.final and reply.status is None):
            log_reply_failure(
                f"could not send a batch of {len(events)} events after {attempt + 1} attempts;"
                " re-queued for the next flush",
                reply,
                settings.api_key,
            )
            return Delivery(events)
        retry_after = parse_retry_after(reply.headers.get("retry-after"), datetime.now(UTC))
        delay = retry_delay(attempt, retry_after, settings.random)
        attempt += 1
        tally.add("retries")
        if run.idle is not None:
            run.idle()
        logger.debug("retry %d of a batch in %.2f s (%s)", attempt, delay, reply.describe())
        if not (yield from wait(delay)):
            return Delivery(events, interrupted=True)


def _split(
    events: list[TaskCompletionEvent],
    settings: Settings,
    losses: _Losses,
    run: _Run,
) -> Plan[Delivery]:
    """413: send each half on its own, unless halving already proved useless."""
    if len(events) == 1:
        losses.add(1, "HTTP 413 even for a single event")
        losses.may_split = False
        return Delivery([])
    if not losses.may_split:
        losses.add(len(events), "HTTP 413, not split further")
        return Delivery([])
    half = len(events) // 2
    for start, part in ((0, events[:half]), (half, events[half:])):
        sendable, body = _encode_sendable(part, losses, settings.api_key)
        if not sendable:
            continue
        done = yield from _deliver(sendable, body, settings, losses, run)
        if done.interrupted or done.unsent:
            rest = events[start + len(part) :]
            return Delivery(done.unsent + rest, done.interrupted)
    return Delivery([])


def unspool(outbox: Outbox, settings: Settings, *, final: bool = False) -> Plan[bool]:
    """Plan: deliver the spool's files, oldest first; False when a batch had to go back.

    Reading and renaming the small local files happens in the plan itself: it is quick, and
    keeping it next to the decisions keeps the claim, delivery and give-back in one place.
    """
    spool = outbox.spool
    if spool is None:
        return True
    spool.recover()
    while (yield from may_proceed()):
        claim = spool.claim()
        if claim is None:
            return True
        events = claim.events
        for start in range(0, len(events), settings.batch_size):
            chunk = events[start : start + settings.batch_size]
            delivery = yield from deliver(chunk, settings, outbox.tally, final=final)
            if delivery.unsent:
                unsent = delivery.unsent + events[start + len(chunk) :]
                spool.give_back(claim, unsent)
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
    spill(outbox)
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
            _dry_run(batch, settings, outbox.tally)
            continue
        outbox.in_flight[:] = batch
        delivery = yield from deliver(
            batch, settings, outbox.tally, final=final, idle=lambda: spill(outbox)
        )
        outbox.in_flight.clear()
        if delivery.unsent:
            queue.put_back(delivery.unsent)
            sent_all = False
            break
    spill(outbox)
    return sent_all


def _dry_run(batch: list[TaskCompletionEvent], settings: Settings, tally: Tally) -> None:
    losses = _Losses()
    sendable, body = _encode_sendable(batch, losses, settings.api_key)
    losses.report(len(batch))
    tally.add("rejected", losses.total)
    # Counted as sent: the application asked for them to go nowhere, and they did.
    tally.add("sent", len(sendable))
    logger.info("dry run: batch of %d events not sent: %s", len(sendable), body.decode())


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
