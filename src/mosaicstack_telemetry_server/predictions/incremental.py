"""Folding new events into the stored buckets: the cost of a refresh is what arrived.

`catch_up` reads the events the cursor has not seen (chunk by chunk, each from one
snapshot), folds them into the buckets they fall in, and stores the merged buckets together
with the advanced cursor in one compare-and-set transaction. Several server processes may
run it at once: the one that loses the compare-and-set re-reads and retries, so every event
is folded exactly once. Memory is one chunk plus the buckets it touches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from mosaicstack_telemetry_server.predictions.buckets import BucketSummary, fold_events
from mosaicstack_telemetry_server.storage.base import BucketKey, EventCursor, NewEvents, Storage

__all__ = ["CHUNK_EVENTS", "CatchUp", "catch_up"]

# Events per chunk of a backlog's drain (one snapshot, one transaction each).
CHUNK_EVENTS: Final = 50_000


@dataclass(slots=True)
class CatchUp:
    """What a catch-up did: events folded, task types touched, and where it stopped.

    `versions` are the data versions of the last snapshot read, which the buckets now
    reflect in full when `complete`; `read_at` is the time taken just before that read.
    `buckets` are the summaries stored for the buckets it touched, as stored (a rebuild
    right after need not read them back).
    """

    read_at: datetime
    events: int = 0
    touched: set[str] = field(default_factory=set)
    versions: dict[str, int] = field(default_factory=dict)
    complete: bool = False
    buckets: dict[BucketKey, BucketSummary] = field(default_factory=dict)


def catch_up(
    storage: Storage, clock: Callable[[], datetime], *, chunk: int, max_events: int
) -> CatchUp:
    """Fold new events into the buckets until none is left or `max_events` were read."""
    done = CatchUp(read_at=clock())
    while True:
        cursor = storage.event_cursor()
        read_at = clock()
        batch = storage.read_new_events(cursor, max(1, min(chunk, max_events - done.events)))
        merged = _merged(storage, batch) if batch.rows else {}
        if not _store(storage, cursor, batch, merged):
            continue  # another process advanced the cursor meanwhile: read again from it
        done.buckets.update(merged)
        done.events += len(batch.rows)
        done.touched.update(row[0] for row in batch.rows)
        done.versions, done.read_at, done.complete = batch.versions, read_at, batch.complete
        if batch.complete or done.events >= max_events:
            return done


def _store(
    storage: Storage, cursor: EventCursor, batch: NewEvents, merged: dict[BucketKey, BucketSummary]
) -> bool:
    new = batch.cursor
    if not batch.rows and (new.last_id, new.horizon, new.in_flight) == (
        cursor.last_id,
        cursor.horizon,
        cursor.in_flight,
    ):
        return True  # nothing new: spare the write
    rows = [summary.to_row(key) for key, summary in merged.items()]
    return storage.advance_events(cursor, new, rows)


def _merged(storage: Storage, batch: NewEvents) -> dict[BucketKey, BucketSummary]:
    """The touched buckets: their stored summary merged with the new events' one."""
    new = fold_events(batch.rows)
    stored = storage.get_buckets(list(new), exact=True)
    return {
        key: BucketSummary.merge([BucketSummary.from_row(stored[key]), summary])
        if key in stored
        else summary
        for key, summary in new.items()
    }
