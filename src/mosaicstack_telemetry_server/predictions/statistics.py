"""Statistics of one task type's events, for every group of the fallback chain, in numpy.

The full computation from every event: the server now serves incremental statistics
(`buckets`, `served`), and this stays as their reference, which tests and the benchmark
compare against. Pure: a `PartitionSnapshot` in, `StatsRow`s out; no I/O. Every statistic
of every group is computed with whole-array operations (a stable sort by group, then index
arithmetic), so the cost is a handful of sorts of the partition whatever the number of groups.

Percentiles are numpy's default method (linear interpolation between closest ranks, the
same as PostgreSQL's `percentile_cont`), reproduced to the last bit so a test can compare
with `numpy.percentile`. Token counts, cost and duration are then rounded to the nearest
integer with ties to even (`numpy.rint`): 2.5 -> 2, 3.5 -> 4. Ratios and rates are not
rounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from mosaicstack_telemetry import (
    CorrectionFactors,
    PredictionData,
    QualityPrediction,
    TokenDistribution,
)
from mosaicstack_telemetry_server.predictions.levels import FALLBACK_LEVELS, kept_dimensions
from mosaicstack_telemetry_server.storage.base import (
    WILDCARD,
    PartitionSnapshot,
    StatsKey,
    StatsRow,
)

__all__ = ["PERCENTILES", "compute_partition_stats", "sorted_percentiles"]

# The contract's token percentiles, in the order of `TokenDistribution`'s fields.
PERCENTILES: Final = (10.0, 25.0, 50.0, 75.0, 90.0)
_TOKEN_FIELDS: Final = ("p10", "p25", "median", "p75", "p90")
# np.true_divide(q, 100) exactly as numpy.percentile does it, so virtual indexes match.
_QUANTILES: Final = np.true_divide(np.array(PERCENTILES), 100)
_MEDIAN: Final = np.array([0.5])


# Column positions in `PartitionSnapshot.rows`.
_MODEL, _PROVIDER, _COMPLEXITY = 0, 1, 2
_ACTUAL_IN, _ACTUAL_OUT, _COST, _DURATION, _EST_IN, _EST_OUT, _GATE, _OUTCOME = range(3, 11)
_SUCCESS: Final = "success"
# Metrics whose unknown values are NaN: a group's median is over its known values only, and
# a group without any known value gets 1.0 (ratios: no correction) or 0 (duration).
_UNKNOWN_WHEN_NAN: Final = ("duration_ms", "input_ratio", "output_ratio")

_Ints = npt.NDArray[np.int64]
_Floats = npt.NDArray[np.float64]


def compute_partition_stats(snapshot: PartitionSnapshot, computed_at: datetime) -> list[StatsRow]:
    """The statistics of every group, at every fallback level, of one task type's events."""
    rows = snapshot.rows
    if not rows:
        return []
    columns = list(zip(*rows, strict=True))
    # One id per distinct (model, provider, complexity): the level-0 groups. Coarser levels
    # are unions of level-0 groups, so their ids come from the few distinct triples.
    raw_groups: dict[tuple[Any, ...], int] = {}
    raw_ids = np.fromiter(
        (raw_groups.setdefault(t, len(raw_groups)) for t in zip(*columns[:3], strict=True)),
        dtype=np.int64,
        count=len(rows),
    )
    # Text only once per distinct triple (an enum and its value are the same group).
    exact_groups: dict[tuple[str, str, str], int] = {}
    to_exact = np.empty(len(raw_groups), dtype=np.int64)
    for (model, provider, complexity), raw_id in raw_groups.items():
        triple = (_text(model), _text(provider), _text(complexity))
        to_exact[raw_id] = exact_groups.setdefault(triple, len(exact_groups))
    exact_ids = to_exact[raw_ids]
    metrics = _Metrics.from_columns(columns)

    result: list[StatsRow] = []
    for level in range(len(FALLBACK_LEVELS)):
        kept = kept_dimensions(level)
        keys: dict[tuple[str, str, str], int] = {}
        to_level = np.empty(len(exact_groups), dtype=np.int64)
        for triple, exact_id in exact_groups.items():
            model, provider, complexity = (
                v if keep else WILDCARD for v, keep in zip(triple, kept, strict=True)
            )
            key = (model, provider, complexity)
            to_level[exact_id] = keys.setdefault(key, len(keys))
        group_ids = to_level[exact_ids]
        for key, (size, data) in zip(keys, metrics.by_group(group_ids, len(keys)), strict=True):
            stats_key = StatsKey(level, snapshot.task_type, *key)
            result.append(StatsRow(stats_key, size, data, computed_at))
    return result


def _text(value: Any) -> str:
    """A dimension value as the string stored in keys (an enum stands for its `.value`)."""
    return value.value if isinstance(value, Enum) else str(value)


class _Metrics:
    """The partition's numeric columns, sorted once so each grouping needs one stable sort."""

    def __init__(
        self,
        ordered: dict[str, tuple[_Ints, _Floats]],
        has_value: dict[str, _Floats],
        gate: _Floats,
        success: _Floats,
    ) -> None:
        self._ordered = ordered  # name -> (row order by value, values in that order)
        self._has_value = has_value  # name -> 1.0 per row with a value (ratios only)
        self._gate = gate
        self._success = success

    @classmethod
    def from_columns(cls, columns: Sequence[Sequence[Any]]) -> _Metrics:
        def ints(i: int) -> _Floats:
            return np.asarray(columns[i], dtype=np.int64).astype(np.float64)

        actual_in, actual_out = ints(_ACTUAL_IN), ints(_ACTUAL_OUT)
        values = {
            "input_tokens": actual_in,
            "output_tokens": actual_out,
            "cost_usd_micros": ints(_COST),
            # 0 means "not measured" (contract): left out like a ratio without an estimate.
            "duration_ms": _measured(ints(_DURATION)),
            "input_ratio": _ratios(actual_in, ints(_EST_IN)),
            "output_ratio": _ratios(actual_out, ints(_EST_OUT)),
        }
        # NaN (no estimate) sorts last, so each group's valid ratios lead its segment.
        ordered = {}
        for name, column in values.items():
            order = np.argsort(column, kind="stable")
            ordered[name] = (order, column[order])
        has_value = {
            name: (~np.isnan(values[name])).astype(np.float64) for name in _UNKNOWN_WHEN_NAN
        }
        gate = np.asarray(columns[_GATE], dtype=bool).astype(np.float64)
        outcomes = columns[_OUTCOME]
        is_success = {o: _text(o) == _SUCCESS for o in set(outcomes)}
        success = np.fromiter(
            (is_success[o] for o in outcomes), dtype=np.float64, count=len(outcomes)
        )
        return cls(ordered, has_value, gate, success)

    def by_group(self, group_ids: _Ints, n_groups: int) -> list[tuple[int, dict[str, Any]]]:
        """Size and `PredictionData` (as JSON) of each group; nothing per row in Python."""
        sizes = np.bincount(group_ids, minlength=n_groups)
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        columns: dict[str, _Floats] = {}
        for name, (order, values) in self._ordered.items():
            # A stable sort by group keeps the value order inside each group.
            regroup = np.argsort(group_ids[order], kind="stable")
            grouped = values[regroup]
            if name in self._has_value:
                valid = np.bincount(group_ids, self._has_value[name], minlength=n_groups)
                counts = np.rint(valid).astype(np.int64)
                medians = _percentiles(grouped, starts, np.maximum(counts, 1), _MEDIAN)[:, 0]
                if name == "duration_ms":
                    columns[name] = np.rint(np.where(counts > 0, medians, 0.0))[:, None]
                else:
                    columns[name] = np.where(counts > 0, medians, 1.0)
            else:
                quantiles = _QUANTILES if name.endswith("_tokens") else _MEDIAN
                columns[name] = np.rint(_percentiles(grouped, starts, sizes, quantiles))
        gate_rate = np.bincount(group_ids, weights=self._gate, minlength=n_groups) / sizes
        success_rate = np.bincount(group_ids, weights=self._success, minlength=n_groups) / sizes
        return [
            (
                int(sizes[g]),
                PredictionData(
                    input_tokens=_distribution(columns["input_tokens"][g]),
                    output_tokens=_distribution(columns["output_tokens"][g]),
                    cost_usd_micros={"median": int(columns["cost_usd_micros"][g, 0])},
                    duration_ms={"median": int(columns["duration_ms"][g, 0])},
                    correction_factors=CorrectionFactors(
                        input=float(columns["input_ratio"][g]),
                        output=float(columns["output_ratio"][g]),
                    ),
                    quality=QualityPrediction(
                        gate_pass_rate=float(gate_rate[g]), success_rate=float(success_rate[g])
                    ),
                ).model_dump(mode="json"),
            )
            for g in range(n_groups)
        ]


def _measured(durations: _Floats) -> _Floats:
    """Durations with 0 ("not measured") as NaN, so the median leaves them out."""
    return np.where(durations > 0, durations, np.nan)


def _ratios(actual: _Floats, estimated: _Floats) -> _Floats:
    """actual / estimated where an estimate exists (> 0), NaN elsewhere."""
    out = np.full(actual.shape, np.nan)
    np.divide(actual, estimated, out=out, where=estimated > 0)
    return out


def sorted_percentiles(ordered: _Floats, percentiles: Sequence[float]) -> list[float]:
    """`numpy.percentile(values, percentiles)` to the last bit, from the values sorted.

    Without numpy.percentile's own overhead (about 70 us a call, which a rebuild of
    hundreds of small groups paid thousands of times).
    """
    quantiles = np.true_divide(np.asarray(percentiles, dtype=np.float64), 100)
    found = _percentiles(ordered, _FIRST, np.array([ordered.size]), quantiles)
    return [float(v) for v in found[0]]


_FIRST: Final = np.zeros(1, dtype=np.int64)


def _percentiles(grouped: _Floats, starts: _Ints, counts: _Ints, quantiles: _Floats) -> _Floats:
    """numpy.percentile's linear method on the first `counts` values of each group's segment.

    Returns an array (groups x quantiles). Mirrors numpy's own arithmetic (`_lerp`: from the
    lower neighbour below a weight of 0.5, from the upper one above) so results are identical.
    """
    last = (counts - 1)[:, None]
    virtual = last * quantiles[None, :]
    below = np.floor(virtual).astype(np.int64)
    at_end = virtual >= last
    below = np.where(at_end, last, below)
    above = np.where(at_end, last, below + 1)
    gamma = virtual - below
    a = grouped[starts[:, None] + below]
    b = grouped[starts[:, None] + above]
    diff = b - a
    result: _Floats = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return result


def _distribution(values: _Floats) -> TokenDistribution:
    return TokenDistribution(**{f: int(v) for f, v in zip(_TOKEN_FIELDS, values, strict=True)})
