"""Per level-0 group, merges of its days, kept between refreshes of this process.

New events land on the newest day, so a refresh changes one bucket of each group it
touches while the group's other days (13 of a 14-day window) stay as they were. Reading and
merging those again was most of a refresh at 10M events (hundreds of buckets a task type).
So the merge of a group's older days (and of all its days, for a group no new event touched)
is kept with the exact (bucket, size) pairs it stands on, and used again only while the
group's chosen days are exactly those: a bucket only grows, so an unchanged size is
unchanged content, and any change (a late event on an older day, the window moving at
midnight, a prune) misses and merges afresh.

Memory is bounded by `max_bytes` of sketch bins and exact values: past it the whole cache is
dropped and refilled by the next refreshes (as `row_cache` does).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from typing import Final

from mosaicstack_telemetry_server.predictions.buckets import METRICS, BucketSummary
from mosaicstack_telemetry_server.storage.base import BucketKey

__all__ = ["MAX_BYTES", "GroupBases", "summary_bytes"]

# 64 MB: a 10M-event database's 216 groups need about a tenth of it.
MAX_BYTES: Final = 64 << 20


def summary_bytes(summary: BucketSummary) -> int:
    """Bytes of the arrays a summary holds (bins and exact values)."""
    total = 0
    for name in METRICS:
        metric = summary.metrics[name]
        total += metric.keys.nbytes + metric.counts.nbytes
        total += 0 if metric.exact is None else metric.exact.nbytes
    return total


class GroupBases:
    """Merged days of level-0 groups (by any key), each with the buckets and sizes it covers."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._entries: dict[Hashable, tuple[frozenset[tuple[BucketKey, int]], BucketSummary]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(
        self, group: Hashable, covers: Mapping[BucketKey, int], *, exact: bool
    ) -> BucketSummary | None:
        """The merge of exactly these buckets at these sizes, if kept (with exact values
        when `exact`)."""
        with self._lock:
            entry = self._entries.get(group)
        if entry is None or entry[0] != frozenset(covers.items()):
            return None
        summary = entry[1]
        if exact and any(summary.metrics[m].exact is None for m in METRICS):
            return None
        return summary

    def put(self, group: Hashable, covers: Mapping[BucketKey, int], summary: BucketSummary) -> None:
        """Keep the merge of the buckets `covers` for the group (replacing what it had)."""
        size = summary_bytes(summary)
        if size > self._max_bytes:
            return
        with self._lock:
            previous = self._entries.pop(group, None)
            if previous is not None:
                self._bytes -= summary_bytes(previous[1])
            if self._bytes + size > self._max_bytes:
                self._entries.clear()
                self._bytes = 0
            self._entries[group] = (frozenset(covers.items()), summary)
            self._bytes += size
