"""Ingestion of `POST /v1/events/batch`: per-event verdicts, then one durable insert.

The envelope (an object with a list `events` of 1 to 100 entries) is all-or-nothing (422);
inside it **each entry is judged on its own** against the SDK's `TaskCompletionEvent`, the one
schema, with the reference's defaults: an entry without `event_id` gets a fresh one (returned
in its result; such an entry cannot be deduplicated if resent), without `timestamp` the time it
was received, without `schema_version` "1.0" (as Segment and PostHog servers do for their ids),
or "1.1" when it carries a field of schema 1.1. The schema versions this server knows are
accepted; any other is rejected, as is a "1.0" event carrying a 1.1 field (named).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mosaicstack_telemetry import BatchEventResponse, BatchEventResult, TaskCompletionEvent
from mosaicstack_telemetry.models import MAX_BATCH_SIZE
from mosaicstack_telemetry_server.body import decode_json
from mosaicstack_telemetry_server.errors import ApiError
from mosaicstack_telemetry_server.storage.base import Storage

__all__ = [
    "EARLIEST_TIMESTAMP",
    "MAX_CLOCK_AHEAD",
    "ingest_batch",
    "ingest_body",
    "judge_body",
    "judge_event",
    "parse_envelope",
]

# The event schema versions this server stores in full; a newer minor may carry fields it
# would drop, so it is refused rather than half-stored.
SUPPORTED_SCHEMA_VERSIONS = ("1.0", "1.1")
WRONG_INSTANCE = "instance_id does not match the API key's instance"
_accepted = BatchEventResult.model_construct
# Plausible time (the contract's "Plausible time"): an event from before this product's era, or
# further ahead of the server's clock than any time zone mistake explains, means a clock is wrong
# somewhere; storing it would skew every query by time.
EARLIEST_TIMESTAMP = datetime(2020, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = timedelta(hours=24)

# A verdict names at most this many problems, each shortened: the client needs the field and
# the rule, not an essay (and never its own megabyte of input back).
_MAX_ERRORS_PER_EVENT = 5
_MAX_ERROR_CHARS = 120


def parse_envelope(body: Any, key: str = "events") -> list[Any]:
    """The list under `key` of a batch body, or a 422 `ApiError` for a bad envelope."""
    if not isinstance(body, dict):
        raise ApiError(
            422,
            "the body must be a JSON object",
            code="invalid_request",
            details=[{"field": "(body)", "rule": "object_type", "message": "expected an object"}],
        )
    entries = body.get(key)
    if not isinstance(entries, list):
        rule, message = (
            ("missing", "field required")
            if key not in body
            else (
                "list_type",
                "expected a list",
            )
        )
        raise ApiError(
            422,
            f"`{key}` must be a list",
            code="invalid_request",
            details=[{"field": key, "rule": rule, "message": message}],
        )
    if not 1 <= len(entries) <= MAX_BATCH_SIZE:
        raise ApiError(
            422,
            f"`{key}` must hold 1 to {MAX_BATCH_SIZE} entries, not {len(entries)}",
            code="invalid_request",
            details=[
                {
                    "field": key,
                    "rule": "too_short" if not entries else "too_long",
                    "message": f"expected 1 to {MAX_BATCH_SIZE} entries",
                }
            ],
        )
    return entries


def _readable_event_id(entry: Any) -> UUID | None:
    if not isinstance(entry, dict):
        return None
    raw = entry.get("event_id")
    if not isinstance(raw, str) or len(raw) > 64:
        return None
    try:
        return UUID(raw)
    except ValueError:
        return None


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def _describe(exc: ValidationError) -> str:
    # `include_input=False`: pydantic's messages name the rule; the input stays out.
    problems = []
    errors = exc.errors(include_input=False, include_url=False)
    for error in errors[:_MAX_ERRORS_PER_EVENT]:
        field = ".".join(str(part) for part in error["loc"]) or "(event)"
        # The message is shortened, never the field or the rule: those are what a client needs.
        problems.append(f"{_shorten(field)}: {_shorten(error['msg'])} ({error['type']})")
    if len(errors) > _MAX_ERRORS_PER_EVENT:
        problems.append(f"and {len(errors) - _MAX_ERRORS_PER_EVENT} more")
    return "; ".join(problems)


def _implausible_time(timestamp: datetime, now: datetime) -> str | None:
    if timestamp < EARLIEST_TIMESTAMP:
        return (
            f"timestamp: {timestamp.isoformat()} is before {EARLIEST_TIMESTAMP.date()}; "
            "check the sender's clock (implausible_timestamp)"
        )
    if timestamp > now + MAX_CLOCK_AHEAD:
        return (
            f"timestamp: {timestamp.isoformat()} is more than 24 hours ahead of the server's "
            f"clock ({now.isoformat(timespec='seconds')}); check the sender's clock "
            "(implausible_timestamp)"
        )
    return None


def judge_event(
    entry: Any, instance_id: UUID, now: datetime | None = None
) -> tuple[TaskCompletionEvent | None, str | None]:
    """Validate one entry for a key's instance: `(event, None)` or `(None, reason)`.

    `now` is the server's clock for the plausible-time rule (default: the current UTC time).
    """
    if not isinstance(entry, Mapping):
        return None, "(event): must be a JSON object (object_type)"
    try:
        event = TaskCompletionEvent.model_validate(entry)
    except ValidationError as exc:
        return None, _describe(exc)
    reason = _refusal(event, instance_id, now or datetime.now(UTC))
    return (None, reason) if reason else (event, None)


def _refusal(event: TaskCompletionEvent, instance_id: UUID, now: datetime) -> str | None:
    """Why a valid event is refused for this key's instance (None: it is not)."""
    if event.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        return (
            f"schema_version: must be one of {', '.join(SUPPORTED_SCHEMA_VERSIONS)} "
            "(unsupported_schema_version)"
        )
    if event.instance_id != instance_id:
        return WRONG_INSTANCE
    return _implausible_time(event.timestamp, now)


class _KnownFieldsEvent(TaskCompletionEvent):
    """`TaskCompletionEvent` refusing any field it does not know: the fast path's model."""

    model_config = ConfigDict(extra="forbid")


class _KnownFieldsBatch(BaseModel):
    """A batch body holding only what the schema knows, so nested no deeper than it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    events: Annotated[list[_KnownFieldsEvent], Field(min_length=1, max_length=MAX_BATCH_SIZE)]


# One judged entry: the event to store, or None, the id its rejection names and why.
Judged = tuple[TaskCompletionEvent | None, UUID | None, str | None]


def _judge_entries(entries: Sequence[Any], instance_id: UUID, now: datetime) -> list[Judged]:
    judged: list[Judged] = []
    for entry in entries:
        event, reason = judge_event(entry, instance_id, now)
        judged.append(
            (event, None, None) if event is not None else (None, _readable_event_id(entry), reason)
        )
    return judged


def judge_body(raw: bytes, instance_id: UUID, now: datetime | None = None) -> list[Judged]:
    """Every entry of a batch body judged, as `parse_envelope(decode_json(raw))` and
    `judge_event` judge them, or the `ApiError` they raise for a bad body or envelope.

    A body of only the fields the schema knows, every event valid (nearly every batch), is
    parsed and validated by pydantic-core in one call: no Python dicts, no depth walk (the
    schema bounds its depth). Anything else (an unknown key, an invalid event, bad JSON) is
    judged entry by entry from `json.loads`. The fast path only ever accepts what the general
    one accepts, with the same values (tests/server/test_ingest_fast_path.py).
    """
    now = now or datetime.now(UTC)  # one clock reading for the whole batch
    try:
        events = _KnownFieldsBatch.model_validate_json(raw).events
    except ValidationError:
        return _judge_entries(parse_envelope(decode_json(raw), "events"), instance_id, now)
    judged: list[Judged] = []
    for event in events:
        reason = _refusal(event, instance_id, now)
        if reason is None:
            judged.append((event, None, None))
        else:  # a rejection names the id the sender gave, never one made up here
            given = event.event_id if "event_id" in event.model_fields_set else None
            judged.append((None, given, reason))
    return judged


def ingest_batch(
    storage: Storage, entries: Sequence[Any], instance_id: UUID
) -> tuple[int, BatchEventResponse]:
    """Judge every entry, store the accepted ones in one call, return `(status, response)`.

    Blocking (storage): call it from a worker thread. Duplicates, already stored or repeated
    in this batch, are accepted and stored once. Status 200 if all accepted, else 207.
    """
    now = datetime.now(UTC)  # one clock reading for the whole batch
    return _store(storage, _judge_entries(entries, instance_id, now))


def ingest_body(storage: Storage, raw: bytes, instance_id: UUID) -> tuple[int, BatchEventResponse]:
    """`ingest_batch` of a raw batch body (`judge_body`); raises its `ApiError`s."""
    return _store(storage, judge_body(raw, instance_id))


def _store(storage: Storage, judged: list[Judged]) -> tuple[int, BatchEventResponse]:
    results: list[BatchEventResult] = []
    to_store: dict[UUID, TaskCompletionEvent] = {}
    for event, given, reason in judged:
        if event is None:
            results.append(BatchEventResult(event_id=given, status="rejected", error=reason))
            continue
        to_store.setdefault(event.event_id, event)  # the first copy of a repeated id wins
        # Built unvalidated: the id is a UUID the event's validation made (2 µs an event).
        results.append(_accepted(event_id=event.event_id, status="accepted", error=None))
    if to_store:
        storage.insert_events(list(to_store.values()))
    accepted = sum(1 for result in results if result.status == "accepted")
    rejected = len(results) - accepted
    response = BatchEventResponse.model_construct(
        accepted=accepted, rejected=rejected, results=results
    )
    return (200 if rejected == 0 else 207), response
