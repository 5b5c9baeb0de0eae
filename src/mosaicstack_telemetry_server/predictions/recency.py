"""Recency: which days of each group an answer stands on.

A model whose behaviour changed must be followed within days, so statistics use a window:
the newest `window_days` days of the task type (ending at its newest event's day, so a
database of old events still answers). After a step change the median reaches the new level
once the new behaviour holds half the window's events: within `window_days / 2` days at a
steady pace, and always within the window.

A window must not silence a group that is merely quiet: a group with fewer than
`min_events` events in the window also takes its older days, newest first, until it has
that many (or no day is left). `sample_size` is the number of events in the chosen days.
A window of 0 days keeps every day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from mosaicstack_telemetry_server.storage.base import BucketKey

__all__ = [
    "DEFAULT_MIN_EVENTS",
    "DEFAULT_RECENCY",
    "DEFAULT_WINDOW_DAYS",
    "Recency",
    "choose_buckets",
]

# Two weeks: a change shows in the median within a week, and a weekly rhythm (weekend
# tasks) weighs the same in every window.
DEFAULT_WINDOW_DAYS: Final = 14
# Enough events for a stable median and p10-p90 of a quiet group.
DEFAULT_MIN_EVENTS: Final = 100


@dataclass(frozen=True, slots=True)
class Recency:
    """The window (days, 0 for all) and the fewest events a group's days must hold."""

    window_days: int = DEFAULT_WINDOW_DAYS
    min_events: int = DEFAULT_MIN_EVENTS

    def __post_init__(self) -> None:
        if self.window_days < 0:
            raise ValueError("window_days must be >= 0")
        if self.min_events < 0:
            raise ValueError("min_events must be >= 0")


DEFAULT_RECENCY: Final = Recency()


def choose_buckets(
    sizes: Sequence[tuple[BucketKey, int]], recency: Recency
) -> dict[BucketKey, int]:
    """The buckets (and their sizes) the statistics of one task type stand on.

    The reference of `Storage.window_buckets`, which makes the same choice in the database
    (a refresh then reads the window, not every day kept); a test holds the two equal.
    """
    if not sizes:
        return {}
    if recency.window_days == 0:
        return dict(sizes)
    newest = date.fromisoformat(max(key.day for key, _ in sizes))
    first = (newest - timedelta(days=recency.window_days - 1)).isoformat()
    groups: dict[tuple[str, str, str], list[tuple[BucketKey, int]]] = {}
    for key, size in sizes:
        groups.setdefault((key.model, key.provider, key.complexity), []).append((key, size))
    chosen: dict[BucketKey, int] = {}
    for days in groups.values():
        taken = 0
        for key, size in sorted(days, key=lambda item: item[0].day, reverse=True):
            if key.day < first and taken >= recency.min_events:
                break
            chosen[key] = size
            taken += size
    return chosen
