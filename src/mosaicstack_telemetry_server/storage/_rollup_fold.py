"""The fold's arithmetic: a chunk of events summed into the rows it adds to each rollup table.

Summing in SQL grouped the chunk once per cuboid and owner (84 `GROUP BY`s, each a sort of
the chunk's rows in SQLite): about 450 µs per event on SQLite and more on PostgreSQL, more
than storing the event costs. Here each column's values are numbered once (a dict), and a
cuboid's groups are its parent's groups combined with one more column (`np.unique` of
integer keys): a few µs per event for all of them, whatever the number of cuboids, whose
count (130 since issue 18's attribution; 42 before) multiplies only these vector steps. The
backends then upsert the rows with `count = count + excluded.count` (`_rollups.py`).

Sums stay exact: each column is summed as float64 only while no sum can reach 2**53 (token
and cost counts are far below that in a chunk), else as int64 with `np.add.at`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from mosaicstack_telemetry_server.storage._rollups import (
    ALL,
    CATEGORICAL,
    CUBOIDS,
    MAX_CATEGORICAL,
    block_start,
)
from mosaicstack_telemetry_server.token_sketch import bucket_of

__all__ = ["FOLD_COLUMNS", "FoldRows", "fold_rows"]

# What `fold_rows` takes of each event, in this order (the day as "YYYY-MM-DD" text, the
# instance as text, "" for a missing attribution and 0 for a missing count, as the rollups
# keep them): the backends select these columns.
FOLD_COLUMNS = (
    "day",
    "instance_id",
    *CATEGORICAL,
    "actual_input_tokens",
    "actual_output_tokens",
    "actual_cost_usd_micros",
    "task_duration_ms",
    "quality_gate_passed",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_FIRST_NUMBER = 2 + len(CATEGORICAL)
_EXACT_FLOAT = 2**53

Codes = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class FoldRows:
    """The rows a chunk adds: `daily` as (dims, day, instance_id, v1, v2, v3, *SUM_NAMES);
    `buckets` and `blocks` as (instance_id, day or block start, model, kind, bucket, count)."""

    daily: list[tuple[Any, ...]]
    buckets: list[tuple[Any, ...]]
    blocks: list[tuple[Any, ...]]


def _numbered(values: Sequence[Hashable]) -> tuple[Codes, npt.NDArray[Any]]:
    """Each value's number (in order of first appearance) and the values by number."""
    index: dict[Hashable, int] = {}
    codes = np.fromiter(
        (index.setdefault(value, len(index)) for value in values), np.int64, len(values)
    )
    names = np.empty(len(index), dtype=object)
    names[:] = list(index)
    return codes, names


@dataclass(frozen=True, slots=True)
class _Groups:
    """Each event's group number, how many groups, and one event of each group."""

    codes: Codes
    size: int
    first: Codes

    def by(self, column: Codes, column_size: int) -> _Groups:
        """These groups split by one more column."""
        keys = self.codes * column_size + column
        _, first, codes = np.unique(keys, return_index=True, return_inverse=True)
        return _Groups(codes.astype(np.int64).reshape(-1), len(first), first.astype(np.int64))


def _whole(codes: Codes, size: int) -> _Groups:
    """The events grouped by one column."""
    return _Groups(np.zeros(len(codes), np.int64), 1, np.zeros(1, np.int64)).by(codes, size)


def _sums(groups: _Groups, numbers: npt.NDArray[np.int64], exact: bool) -> list[list[int]]:
    """Per group, the sum of each column of `numbers` (one row per event)."""
    if exact:
        columns = [
            np.rint(np.bincount(groups.codes, weights=column, minlength=groups.size))
            for column in numbers.T.astype(np.float64)
        ]
        return np.stack(columns, axis=1).astype(np.int64).tolist()  # type: ignore[no-any-return]
    totals = np.zeros((groups.size, numbers.shape[1]), np.int64)
    np.add.at(totals, groups.codes, numbers)
    return totals.tolist()


def fold_rows(events: Sequence[Sequence[Any]]) -> FoldRows:
    """The rollup rows of these events (each a row of `FOLD_COLUMNS`)."""
    if not events:
        return FoldRows([], [], [])
    columns = list(zip(*events, strict=True))
    numbered = [_numbered(column) for column in columns[:_FIRST_NUMBER]]
    outcome = numbered[2 + CATEGORICAL.index("outcome")]
    success = (outcome[1] == "success")[outcome[0]]
    raw = [np.asarray(column, dtype=np.int64) for column in columns[_FIRST_NUMBER:]]
    numbers = np.stack(
        [np.ones(len(events), np.int64), *raw[:4], success.astype(np.int64), *raw[4:]], axis=1
    )
    exact = bool(np.abs(numbers).sum(axis=0).max() < _EXACT_FLOAT)
    (day, days), (instance, instances) = numbered[0], numbered[1]
    dims = dict(zip(CATEGORICAL, numbered[2:], strict=True))
    daily: list[tuple[Any, ...]] = []
    owners = (("instance", _whole(day, len(days)).by(instance, len(instances))), (ALL, None))
    for owner, base in owners:
        groups: dict[tuple[str, ...], _Groups] = {(): base or _whole(day, len(days))}
        for cuboid in CUBOIDS:  # smallest first: each one's prefix is already grouped
            if cuboid:
                codes, names = dims[cuboid[-1]]
                groups[cuboid] = groups[cuboid[:-1]].by(codes, len(names))
            daily += _cuboid_rows(cuboid, groups[cuboid], owner, numbered, dims, numbers, exact)
    buckets, blocks = _token_rows(numbered, dims["model"], raw[0], raw[1])
    return FoldRows(daily, buckets, blocks)


def _cuboid_rows(
    cuboid: tuple[str, ...],
    groups: _Groups,
    owner: str,
    numbered: list[tuple[Codes, npt.NDArray[Any]]],
    dims: dict[str, tuple[Codes, npt.NDArray[Any]]],
    numbers: npt.NDArray[np.int64],
    exact: bool,
) -> list[tuple[Any, ...]]:
    first = groups.first
    day_codes, days = numbered[0]
    keys: list[Any] = [[",".join(cuboid)] * groups.size, days[day_codes[first]].tolist()]
    if owner == ALL:
        keys.append([ALL] * groups.size)
    else:
        instance_codes, instances = numbered[1]
        keys.append(instances[instance_codes[first]].tolist())
    for name in cuboid:
        codes, names = dims[name]
        keys.append(names[codes[first]].tolist())
    keys += [[""] * groups.size] * (MAX_CATEGORICAL - len(cuboid))
    return [(*key, *sums) for *key, sums in zip(*keys, _sums(groups, numbers, exact), strict=True)]


def _token_rows(
    numbered: list[tuple[Codes, npt.NDArray[Any]]],
    model: tuple[Codes, npt.NDArray[Any]],
    input_tokens: npt.NDArray[np.int64],
    output_tokens: npt.NDArray[np.int64],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The token bucket rows per day and per block, of each instance and of ALL."""
    (day_codes, days), (instance_codes, instances) = numbered[0], numbered[1]
    starts = np.empty(len(days), dtype=object)
    starts[:] = [block_start(date.fromisoformat(day)).isoformat() for day in days]
    block_codes, block_names = _numbered(starts[day_codes].tolist())
    result: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] = ([], [])
    for kind, tokens in (("input", input_tokens), ("output", output_tokens)):
        bucket_codes, bucket_names = _numbered([bucket_of(int(count)) for count in tokens])
        for rows, (period_codes, periods) in zip(
            result, ((day_codes, days), (block_codes, block_names)), strict=True
        ):
            for owner in ("instance", ALL):
                groups = _whole(period_codes, len(periods))
                if owner != ALL:
                    groups = groups.by(instance_codes, len(instances))
                groups = groups.by(model[0], len(model[1])).by(bucket_codes, len(bucket_names))
                first = groups.first
                owners = (
                    [ALL] * groups.size
                    if owner == ALL
                    else instances[instance_codes[first]].tolist()
                )
                counts = np.bincount(groups.codes, minlength=groups.size).tolist()
                rows += zip(
                    owners,
                    periods[period_codes[first]].tolist(),
                    model[1][model[0][first]].tolist(),
                    [kind] * groups.size,
                    bucket_names[bucket_codes[first]].tolist(),
                    counts,
                    strict=True,
                )
    return result
