"""Delivering one batch, as a plan: send it, retry, split, and count what is lost and why.

`deliver()` holds every decision about one batch (retries, splitting on 413, what is dropped and
why); it yields `Send`/`Wait`/`Check` actions and never does I/O, so the thread and the asyncio
task run the very same logic. What a whole flush does (the spool first, then the queue batch by
batch) is `_flush`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mosaicstack_telemetry._logs import logger, redact
from mosaicstack_telemetry._plans import EVENTS_PATH, Plan, send, wait
from mosaicstack_telemetry._reply import Reply, describe_failure, log_reply_failure
from mosaicstack_telemetry._retry import Verdict, classify, parse_retry_after, retry_delay
from mosaicstack_telemetry._settings import Settings
from mosaicstack_telemetry.models.batch import BatchEventRequest, BatchEventResponse
from mosaicstack_telemetry.models.events import TaskCompletionEvent
from mosaicstack_telemetry.stats import Tally

__all__ = ["Delivery", "deliver", "dry_run"]

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
    # Seconds the server asked to be left alone (`Retry-After`) in the reply that made the
    # batch go back: the submitter's recovery backoff waits at least that long.
    retry_after: float | None = None


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
    idle: Callable[[], Plan[bool]] | None = None


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
    idle: Callable[[], Plan[bool]] | None = None,
) -> Plan[Delivery]:
    """Plan: send one batch, following the contract's rules for every kind of reply.

    Whatever the batch loses for good (refused, too large, not serialisable) is counted in the
    result and reported in one WARNING, however many requests the batch took. In the `final`
    flush a request that got no answer at all is not retried: a server that is down or hangs
    will not be back within the shutdown budget, and the spool (or the log) takes the rest.
    `idle`'s plan runs before each retry wait (the submitter spools evicted events there).
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
    return Delivery(delivery.unsent, delivery.interrupted, losses.total, delivery.retry_after)


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
        retry_after = parse_retry_after(reply.headers.get("retry-after"), datetime.now(UTC))
        if attempt >= settings.max_retries or (run.final and reply.status is None):
            log_reply_failure(
                f"could not send a batch of {len(events)} events after {attempt + 1} attempts;"
                " re-queued for the next flush",
                reply,
                settings.api_key,
            )
            return Delivery(events, retry_after=retry_after)
        delay = retry_delay(attempt, retry_after, settings.random)
        attempt += 1
        tally.add("retries")
        if run.idle is not None:
            yield from run.idle()
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
            return Delivery(done.unsent + rest, done.interrupted, retry_after=done.retry_after)
    return Delivery([])


def dry_run(batch: list[TaskCompletionEvent], settings: Settings, tally: Tally) -> None:
    """Log `batch` as the JSON it would send (dry run); count it as sent."""
    losses = _Losses()
    sendable, body = _encode_sendable(batch, losses, settings.api_key)
    losses.report(len(batch))
    tally.add("rejected", losses.total)
    # Counted as sent: the application asked for them to go nowhere, and they did.
    tally.add("sent", len(sendable))
    logger.info("dry run: batch of %d events not sent: %s", len(sendable), body.decode())
