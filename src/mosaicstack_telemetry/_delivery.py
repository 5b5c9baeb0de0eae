"""What one flush does, as plans: batch the queue, deliver each batch, put back what is unsent.

`flush()` and `deliver()` hold every decision (batching, retries, splitting, put-back, what is
dropped and why); they yield `Send`/`Wait`/`Check` actions and never do I/O, so the thread and the
asyncio task run the very same logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mosaicstack_telemetry._logs import logger, redact
from mosaicstack_telemetry._settings import Settings
from mosaicstack_telemetry._transport import (
    EVENTS_PATH,
    Plan,
    Reply,
    Verdict,
    classify,
    log_reply_failure,
    may_proceed,
    parse_retry_after,
    retry_delay,
    send,
    wait,
)
from mosaicstack_telemetry.models.batch import BatchEventRequest, BatchEventResponse
from mosaicstack_telemetry.models.events import TaskCompletionEvent
from mosaicstack_telemetry.queue import EventQueue

__all__ = ["Delivery", "deliver", "flush", "report_leftovers"]

# Rejections listed in full in the one log line of a batch; the rest are counted.
_MAX_REJECTIONS_LOGGED = 10


@dataclass(frozen=True)
class Delivery:
    """The outcome of delivering one batch: what must go back to the queue, and why."""

    unsent: list[TaskCompletionEvent]
    interrupted: bool = False


def _encode(events: list[TaskCompletionEvent]) -> bytes:
    return BatchEventRequest(events=events).model_dump_json().encode()


def _report_done(events: list[TaskCompletionEvent], reply: Reply, settings: Settings) -> None:
    try:
        answer = BatchEventResponse.model_validate_json(reply.body)
    except ValueError:
        if reply.status == 207:
            logger.warning("batch of %d events partly rejected (response unreadable)", len(events))
        else:
            logger.debug("batch of %d events sent (HTTP %s)", len(events), reply.status)
        return
    rejected = [r for r in answer.results if r.status == "rejected"]
    if not rejected:
        logger.debug("batch of %d events accepted", len(events))
        return
    listed = "; ".join(f"{r.event_id}: {r.error}" for r in rejected[:_MAX_REJECTIONS_LOGGED])
    more = len(rejected) - _MAX_REJECTIONS_LOGGED
    logger.warning(
        "server rejected %d of %d events (not resent): %s%s",
        len(rejected),
        len(events),
        redact(listed, settings.api_key),
        f"; and {more} more" if more > 0 else "",
    )


def deliver(events: list[TaskCompletionEvent], settings: Settings) -> Plan[Delivery]:
    """Plan: send one batch, following the contract's rules for every kind of reply."""
    attempt = 0
    while True:
        reply = yield from send(EVENTS_PATH, _encode(events))
        verdict = classify(reply)
        if verdict is Verdict.DONE:
            _report_done(events, reply, settings)
            return Delivery([])
        if verdict is Verdict.DROP:
            log_reply_failure(f"dropped a batch of {len(events)} events", reply, settings.api_key)
            return Delivery([])
        if verdict is Verdict.SPLIT:
            if len(events) == 1:
                log_reply_failure("dropped an event too large to send", reply, settings.api_key)
                return Delivery([])
            half = len(events) // 2
            first = yield from deliver(events[:half], settings)
            if first.interrupted or first.unsent:
                return Delivery(first.unsent + events[half:], first.interrupted)
            return (yield from deliver(events[half:], settings))
        if attempt >= settings.max_retries:
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
        logger.debug("retry %d of a batch in %.2f s (%s)", attempt, delay, reply.describe())
        if not (yield from wait(delay)):
            return Delivery(events, interrupted=True)


def flush(queue: EventQueue, settings: Settings) -> Plan[None]:
    """Plan: send what is queued now, batch by batch; put back what could not be sent.

    Only the events present at the start are taken, so a process tracking faster than the server
    answers cannot keep one flush going forever; after a batch fails for good the flush ends
    rather than hammering a server that is down. It also ends, leaving the rest queued, when the
    executor says to stop (stop requested, or the final flush's deadline passed).
    """
    budget = queue.size
    # Checked before each batch: once stop is asked (or the final deadline passed) the rest is
    # left queued for the final flush, instead of being sent by a worker nobody waits for.
    while budget > 0 and (yield from may_proceed()):
        batch = queue.drain(min(settings.batch_size, budget))
        if not batch:
            break
        budget -= len(batch)
        if settings.dry_run:
            logger.info(
                "dry run: batch of %d events not sent: %s", len(batch), _encode(batch).decode()
            )
            continue
        delivery = yield from deliver(batch, settings)
        if delivery.unsent:
            queue.put_back(delivery.unsent)
            break
    evicted = queue.take_dropped()
    if evicted:
        logger.warning("%d events were evicted because the queue was full", evicted)


def report_leftovers(queue: EventQueue) -> None:
    if not queue.is_empty:
        logger.warning("%d events still queued after the final flush (not sent)", queue.size)
