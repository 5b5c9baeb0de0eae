"""This process's copy of served statistics rows, valid while their data version holds.

A request used to fetch and parse the 400 rows of its 100 queries' fallback chains every
time. Rows only change when their task type's statistics are replaced (a new data version);
a re-stamp moves only their time, which `stats_versions` (read by every request anyway)
also holds. So rows are kept per key with the version they were read at, and served with
the time of the current stamp; a key of another version is fetched again.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Final

from mosaicstack_telemetry_server.storage.base import StatsKey, StatsRow, Storage

__all__ = ["RowCache"]

# Most keys kept: queries may name any model, and keys without statistics are kept too.
MAX_KEYS: Final = 100_000


class RowCache:
    """Statistics rows by key, each with the data version of its task type when read."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._max_keys = max_keys
        self._rows: dict[StatsKey, tuple[int, StatsRow | None]] = {}
        self._lock = threading.Lock()

    def get(
        self,
        storage: Storage,
        keys: Sequence[StatsKey],
        stamps: Mapping[str, tuple[int, datetime]],
    ) -> dict[StatsKey, StatsRow]:
        """The rows of `keys`, given each task type's stored (version, time) in `stamps`."""
        found: dict[StatsKey, StatsRow] = {}
        missing = []
        with self._lock:
            for key in keys:
                stamp = stamps.get(key.task_type)
                if stamp is None:
                    continue  # no statistics for this task type at all
                entry = self._rows.get(key)
                if entry is None or entry[0] != stamp[0]:
                    missing.append(key)
                elif entry[1] is not None:
                    found[key] = replace(entry[1], computed_at=stamp[1])
        if missing:
            fetched = storage.get_stats(missing)
            with self._lock:
                if len(self._rows) + len(missing) > self._max_keys:
                    self._rows.clear()
                for key in missing:
                    row = fetched.get(key)
                    # Read after the stamps: a row may be newer than its stamp's version, never
                    # older; a later request with the newer stamp then reads it again.
                    self._rows[key] = (stamps[key.task_type][0], row)
                    if row is not None:
                        found[key] = row
        return found
