"""Statistics published while a backlog is drained, for task types that have none yet.

A task type whose statistics were never computed (a bulk load into a new database, a first
start on a large table) had nothing to answer from until its whole backlog was folded: two
minutes at 10M events. The contract asks for an answer from whatever exists, saying so. So
the drain, between two chunks and at most every `PUBLISH_SECONDS`, publishes the statistics
of those task types built from the buckets folded so far (`served`), under a version of its
own: the summaries' cursor generation (one more per chunk stored) less 2**62. Such a
publication

- only moves forward: the generation grows with every chunk, whoever folds it, and the
  storage's compare-and-set refuses one older than what is stored;
- never replaces complete statistics, whose versions are data versions (1 and up), and is
  replaced by them once the drain ends;
- is never fresh to the service (its version is below every data version), so an answer from
  it says that a backlog is being summarized, and a server started meanwhile does not take it
  for finished statistics.

A task type with complete statistics keeps serving them while the drain runs (a bulk load into
a database in use): they are older, but whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Final

from mosaicstack_telemetry_server.predictions.group_bases import GroupBases
from mosaicstack_telemetry_server.predictions.recency import Recency
from mosaicstack_telemetry_server.predictions.served import served_stats
from mosaicstack_telemetry_server.predictions.widening import widen_task_types
from mosaicstack_telemetry_server.storage.base import Storage

__all__ = ["PARTIAL_OFFSET", "PUBLISH_SECONDS", "PartialPublisher", "publish_partial"]

logger = logging.getLogger(__name__)

# Between two publications of a drain: each costs up to about a second at 10M events (every
# group of every task type without statistics is merged), a tenth of the drain at most.
PUBLISH_SECONDS: Final = 10.0
# Subtracted from the cursor generation: a partial version is below every data version (>= 1)
# for as many chunks as a 64-bit integer can count.
PARTIAL_OFFSET: Final = 1 << 62


def publish_partial(
    storage: Storage, recency: Recency, computed_at: datetime, *, bases: GroupBases
) -> list[str]:
    """Publish statistics from the buckets folded so far for every task type without
    complete ones; returns the task types published."""
    stored = storage.stats_versions()
    version = storage.event_cursor().generation - PARTIAL_OFFSET
    merged = {}
    for task_type in sorted(storage.partition_versions()):
        current = stored.get(task_type)
        if current is not None and current[0] >= version:
            continue  # complete statistics, or a publication at least as far along
        merged[task_type] = served_stats(storage, task_type, computed_at, recency, bases=bases)
    if not merged:
        return []
    widened = widen_task_types(merged, storage.stats_at_level(0))
    return [
        task_type
        for task_type, rows in widened.items()
        if rows and storage.replace_stats(task_type, version, computed_at, rows)
    ]


class PartialPublisher:
    """`publish_partial` at most once every `every` seconds of a drain (the first at once).

    The next one is due `every` seconds after a publication ends.
    """

    def __init__(
        self,
        storage: Storage,
        recency: Recency,
        clock: Callable[[], datetime],
        *,
        every: float = PUBLISH_SECONDS,
        bases: GroupBases | None = None,
    ) -> None:
        self._storage = storage
        self._recency = recency
        self._clock = clock
        self._every = every
        self._bases = GroupBases() if bases is None else bases
        self._due = time.monotonic()
        self._failed = False

    def between_chunks(self) -> list[str]:
        """Publish if due; returns the task types published."""
        if time.monotonic() < self._due:
            return []
        try:
            return publish_partial(self._storage, self._recency, self._clock(), bases=self._bases)
        except Exception:
            # Publishing is a courtesy: the drain goes on folding (one traceback a drain).
            if not self._failed:
                logger.warning("publishing partial prediction statistics failed", exc_info=True)
            self._failed = True
            return []
        finally:
            self._due = time.monotonic() + self._every
