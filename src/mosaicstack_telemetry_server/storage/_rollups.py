"""The daily rollups of usage, computed from a batch of newly stored events, free of I/O.

`insert_events` stores a batch, then adds the events it newly stored (a resend adds nothing)
to the tables of migration 0003, in the same transaction, so the rollups never disagree with
the events: the cube by SQL over the new rows (`_usage_sql.cube_statement`), the daily sums and
token histograms computed here. The migration's backfill goes through the same code, a page at
a time.

Three tables, each keyed by instance and UTC day:
- `usage_daily`: cuboids, the sums by every set of at most two of `CATEGORICAL`, plus the
  sums by nothing (`dims` = ""); for the sums by nothing or by one dimension, rows of instance
  `ALL` also sum every instance, so that an admin's answer reads as few rows as an instance's;
- `usage_cube`: the sums by all of `CATEGORICAL` at once, for questions about three of them;
- `usage_token_sketches`: per model, DDSketch-style histograms of input and output tokens
  (`token_sketch.py`) as dense JSON arrays, merged on write.

A 90-day answer then reads a few thousand rows whatever the number of events.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mosaicstack_telemetry_server.token_sketch import bucket_of

__all__ = [
    "ALL",
    "CATEGORICAL",
    "CUBOIDS",
    "PLANS",
    "cuboid_for",
    "daily_of",
    "decode_counts",
    "merge_sketch",
    "rollup_input",
    "sketches_of",
]

# The instance_id of rows that sum every instance.
ALL = "*"
CATEGORICAL = ("task_type", "complexity", "harness", "model", "provider", "outcome")
# Every set of at most two categorical dimensions, in CATEGORICAL's order.
CUBOIDS: tuple[tuple[str, ...], ...] = (
    (),
    *((name,) for name in CATEGORICAL),
)


def cuboid_for(categorical: Sequence[str]) -> tuple[str, ...] | None:
    """The cuboid holding sums by exactly these categorical dimensions (None: use the cube)."""
    wanted = tuple(name for name in CATEGORICAL if name in categorical)
    return wanted if wanted in CUBOIDS else None


# Per cuboid: its `dims` text, its dimensions, and whether it also has rows of ALL. Only the
# small cuboids do: an admin's question by two dimensions sums the instances' rows, still a few
# thousand for 90 days.
PLANS: tuple[tuple[str, tuple[str, ...], bool], ...] = tuple(
    (",".join(cuboid), cuboid, len(cuboid) < 2) for cuboid in CUBOIDS
)


def rollup_input(event_row: Sequence[Any], day: Any) -> tuple[Any, ...]:
    """What the rollups need of an event, from `_common.event_row`'s values and its UTC day
    (as the backend stores a day: text or a date)."""
    outcome = event_row[22]
    return (
        str(event_row[0]),  # instance_id
        day,
        *event_row[5:10],  # task_type, complexity, harness, model, provider
        outcome,
        event_row[12],  # actual_input_tokens
        event_row[13],  # actual_output_tokens
        event_row[15],  # actual_cost_usd_micros
        event_row[4],  # task_duration_ms
        outcome == "success",
        bool(event_row[16]),  # quality_gate_passed
    )


def daily_of(inputs: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """The `usage_daily` rows of some new events, each given as (instance_id, day, task_type,
    complexity, harness, model, provider, outcome, input tokens, output tokens, cost, duration,
    success, gate passed); sorted by key."""
    daily: dict[tuple[Any, ...], list[int]] = {}
    for row in inputs:
        sums = (1, row[8], row[9], row[10], row[11], int(row[12]), int(row[13]))
        instance_id, day = str(row[0]), row[1]
        for dims, cuboid, shared in _POSITIONS:
            values = tuple(row[position] for position in cuboid) + ("",) * (2 - len(cuboid))
            for owner in (instance_id, ALL) if shared else (instance_id,):
                total = daily.get((dims, day, owner, *values))
                if total is None:
                    daily[(dims, day, owner, *values)] = list(sums)
                else:
                    for index, value in enumerate(sums):
                        total[index] += value
    return sorted((*key, *sums) for key, sums in daily.items())


_POSITIONS = tuple(
    (dims, tuple(2 + CATEGORICAL.index(name) for name in cuboid), shared)
    for dims, cuboid, shared in PLANS
)


def sketches_of(inputs: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """The token histogram rows of some new events (each from `rollup_input`); sorted by key."""
    tokens: dict[tuple[str, Any, str], tuple[Counter[int], Counter[int]]] = {}
    for row in inputs:
        instance_id, day, model, input_tokens, output_tokens = (
            row[0],
            row[1],
            row[5],
            row[8],
            row[9],
        )
        for owner in (str(instance_id), ALL):
            counts = tokens.setdefault((owner, day, model), (Counter(), Counter()))
            counts[0][bucket_of(input_tokens)] += 1
            counts[1][bucket_of(output_tokens)] += 1
    return sorted(
        (*key, sum(inputs.values()), _json(inputs), _json(outputs))
        for key, (inputs, outputs) in tokens.items()
    )


def merge_sketch(new: tuple[Any, ...], stored: Sequence[Any] | None) -> tuple[Any, ...]:
    """A row of `sketches_of` with a stored row's (tasks, input JSON, output JSON) added."""
    if stored is None:
        return new
    merged = [
        _encode(*_add(decode_counts(fresh), decode_counts(old)))
        for fresh, old in ((new[4], stored[1]), (new[5], stored[2]))
    ]
    return (*new[:3], new[3] + int(stored[0]), *merged)


def _json(counts: Counter[int]) -> str:
    """A histogram as stored: `[first bucket, its count, the next one's, ...]` (dense: a day's
    buckets are mostly contiguous, and a list of numbers parses several times faster than an
    object keyed by strings)."""
    if not counts:
        return "[]"
    first = min(counts)
    dense = np.zeros(max(counts) - first + 1, dtype=np.int64)
    for bucket, count in counts.items():
        dense[bucket - first] = count
    return _encode(first, dense)


def _encode(first: int, dense: NDArray[np.int64]) -> str:
    # Vectorised, not a Python loop per bucket: merging runs for every batch stored.
    nonzero = np.flatnonzero(dense)
    if not nonzero.size:
        return "[]"
    low, high = int(nonzero[0]), int(nonzero[-1])
    return json.dumps([first + low, *dense[low : high + 1].tolist()])


def _add(
    one: tuple[int, NDArray[np.int64]], other: tuple[int, NDArray[np.int64]]
) -> tuple[int, NDArray[np.int64]]:
    """The sum of two dense histograms, each (first bucket, counts)."""
    (first_a, a), (first_b, b) = one, other
    if not b.size:
        return one
    if not a.size:
        return other
    low = min(first_a, first_b)
    total = np.zeros(max(first_a + a.size, first_b + b.size) - low, dtype=np.int64)
    total[first_a - low : first_a - low + a.size] += a
    total[first_b - low : first_b - low + b.size] += b
    return low, total


def decode_counts(stored: str | list[int]) -> tuple[int, NDArray[np.int64]]:
    """A stored histogram (JSON text, or a list from a JSON column): (first bucket, counts)."""
    parsed = json.loads(stored) if isinstance(stored, str) else stored
    if not parsed:
        return 0, np.zeros(0, dtype=np.int64)
    return int(parsed[0]), np.asarray(parsed[1:], dtype=np.int64)
