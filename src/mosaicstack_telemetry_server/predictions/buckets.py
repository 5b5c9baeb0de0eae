"""Per-group, per-day summaries of events: folded from new events, merged for any window.

A bucket is one level-0 group (task type, model, provider, complexity) on one UTC day. Its
summary holds the event count, the quality counts, and for each metric a `MetricSummary`
(exact values while few, a mergeable sketch always). New events are folded into the buckets
they fall in, so a refresh costs what arrived, and any group of any fallback level over any
days is the merge of its buckets.

What counts as unknown, per field (the contract): a duration of 0 is "not measured" and a
ratio needs an estimate > 0; both are left out of their medians. Token counts and costs of
0 are real (an empty answer, a local model) and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from mosaicstack_telemetry_server.predictions.layout import VERSION, Reader, Writer
from mosaicstack_telemetry_server.predictions.sketch import EXACT_LIMIT, MetricSummary, sketch_keys
from mosaicstack_telemetry_server.storage.base import BucketKey, BucketRow

__all__ = ["METRICS", "BucketSummary", "fold_events"]

METRICS: Final = (
    "input_tokens",
    "output_tokens",
    "cost_usd_micros",
    "duration_ms",
    "input_ratio",
    "output_ratio",
)
# Metrics whose values are whole numbers (integer columns): written without a check of
# each value's fraction. The ratios are checked (they are whole only by chance).
_WHOLE: Final = frozenset(METRICS[:4])
_Floats = npt.NDArray[np.float64]
# Rows turned into arrays at a time by `fold_events` (see `_columns`).
_SLICE: Final = 2_000


@dataclass(frozen=True, slots=True)
class BucketSummary:
    """Events, gate passes, successes, and one `MetricSummary` per name of `METRICS`."""

    count: int
    gate_passed: int
    successes: int
    metrics: dict[str, MetricSummary]

    @classmethod
    def merge(cls, parts: Sequence[BucketSummary], *, keep_exact: bool = True) -> BucketSummary:
        """The summary of the union of the parts' events."""
        return cls(
            sum(p.count for p in parts),
            sum(p.gate_passed for p in parts),
            sum(p.successes for p in parts),
            {
                m: MetricSummary.merge([p.metrics[m] for p in parts], keep_exact=keep_exact)
                for m in METRICS
            },
        )

    def to_row(self, key: BucketKey) -> BucketRow:
        """The bucket as stored (`layout`): counts and sketches, exact values while few."""
        sketch = Writer()
        sketch.numbers(self.count, self.gate_passed, self.successes)
        for name in METRICS:
            self.metrics[name].write(sketch)
        exact = None
        if self.count <= EXACT_LIMIT:
            values = [_exact_of(self.metrics[name]) for name in METRICS]
            written = Writer()
            written.numbers(*(v.size for v in values))
            for name, v in zip(METRICS, values, strict=True):
                written.array(v, whole=name in _WHOLE)
            exact = written.blob()
        return BucketRow(key, self.count, sketch.blob(), exact)

    @classmethod
    def from_row(cls, row: BucketRow) -> BucketSummary:
        """Read a stored bucket (with its exact values if the row carries them)."""
        if not row.sketch or row.sketch[0] != VERSION:
            return _from_first_layout(row)
        exacts: list[_Floats | None] = [None] * len(METRICS)
        if row.exact is not None:
            reader = Reader(row.exact)
            exacts = [reader.array(size) for size in reader.numbers(len(METRICS))]
        sketch = Reader(row.sketch)
        count, gate_passed, successes = sketch.numbers(3)
        metrics = {name: MetricSummary.read(sketch, exacts[i]) for i, name in enumerate(METRICS)}
        return cls(count, gate_passed, successes, metrics)


def _from_first_layout(row: BucketRow) -> BucketSummary:
    """A bucket stored by the first layout (every number a float64), as older servers did."""
    data = np.frombuffer(row.sketch, dtype=np.float64)
    exacts = _split_exact(row.exact)
    count, gate_passed, successes = (int(v) for v in data[1:4])
    at, metrics = 4, {}
    for i, name in enumerate(METRICS):
        metrics[name], at = MetricSummary.from_sketch(data, at, exacts[i])
    return BucketSummary(count, gate_passed, successes, metrics)


def _exact_of(summary: MetricSummary) -> _Floats:
    if summary.exact is None:  # pragma: no cover - a count <= EXACT_LIMIT always keeps them
        raise ValueError("exact values missing")
    return summary.exact


def _split_exact(blob: bytes | None) -> list[_Floats | None]:
    if blob is None:
        return [None] * len(METRICS)
    data = np.frombuffer(blob, dtype=np.float64)
    sizes = data[1 : 1 + len(METRICS)].astype(np.int64)
    ends = 1 + len(METRICS) + np.cumsum(sizes)
    return [data[end - size : end] for size, end in zip(sizes, ends, strict=True)]


def fold_events(rows: Sequence[tuple[Any, ...]]) -> dict[BucketKey, BucketSummary]:
    """The summaries of new events (rows as `NewEvents.rows`), one per bucket they fall in.

    Whole-array work: each key column is numbered once, the numbers make one bucket id per
    row, and every metric's sketch bins of every bucket come from one `numpy.unique` of
    (bucket, bin) codes; Python only loops over the buckets, not the rows.
    """
    if not rows:
        return {}
    bucket, keys, numbers, gate_passed, succeeded = _columns(rows)
    order = np.argsort(bucket, kind="stable")
    sorted_bucket = bucket[order]
    bounds = np.searchsorted(sorted_bucket, np.arange(len(keys) + 1))
    actual_in, actual_out, cost, duration, est_in, est_out = numbers[:, order]
    known = {
        "input_tokens": (actual_in, None),
        "output_tokens": (actual_out, None),
        "cost_usd_micros": (cost, None),
        "duration_ms": (duration, duration > 0),
        "input_ratio": _ratio(actual_in, est_in),
        "output_ratio": _ratio(actual_out, est_out),
    }
    per_metric = {
        name: _summaries(values, mask, sorted_bucket, len(keys))
        for name, (values, mask) in known.items()
    }
    gate = np.bincount(bucket, gate_passed, len(keys))
    success = np.bincount(bucket, succeeded, len(keys))
    return {
        key: BucketSummary(
            int(bounds[b + 1] - bounds[b]),
            int(gate[b]),
            int(success[b]),
            {name: per_metric[name][b] for name in METRICS},
        )
        for b, key in enumerate(keys)
    }


def _columns(
    rows: Sequence[tuple[Any, ...]],
) -> tuple[npt.NDArray[np.int64], list[BucketKey], _Floats, _Floats, _Floats]:
    """Per row: its bucket id, its six numbers (one row each), gate passed, succeeded.

    Converted `_SLICE` rows at a time: turning 50,000 rows into columns and arrays in one
    C call each held the GIL for tens of milliseconds, and every request thread of the
    process waited that long for it while a drain ran.
    """
    ids: dict[tuple[Any, ...], int] = {}
    bucket: list[int] = []
    numbers, gate, success = [], [], []
    for start in range(0, len(rows), _SLICE):
        columns = list(zip(*rows[start : start + _SLICE], strict=True))
        # A list comprehension over one dict: the cheapest per-row work Python offers here.
        bucket += [ids.setdefault(key, len(ids)) for key in zip(*columns[:5], strict=True)]
        numbers.append(np.array(columns[5:11], dtype=np.float64))
        gate.append(np.array(columns[11], dtype=np.float64))
        success.append(np.array([o == "success" for o in columns[12]], dtype=np.float64))
    return (
        np.array(bucket, dtype=np.int64),
        [BucketKey(*key) for key in ids],
        np.concatenate(numbers, axis=1),
        np.concatenate(gate),
        np.concatenate(success),
    )


def _ratio(actual: _Floats, estimated: _Floats) -> tuple[_Floats, npt.NDArray[np.bool_]]:
    has = estimated > 0
    ratios = np.divide(actual, estimated, out=np.zeros_like(actual), where=has)
    return ratios, has


def _summaries(
    values: _Floats, mask: npt.NDArray[np.bool_] | None, bucket: npt.NDArray[np.int64], count: int
) -> list[MetricSummary]:
    """One metric's summary for every bucket (rows sorted by bucket; `mask`: known values)."""
    if mask is not None:
        values, bucket = values[mask], bucket[mask]
    bounds = np.searchsorted(bucket, np.arange(count + 1))
    positive = values > 0
    keys = sketch_keys(values[positive])
    low = int(keys.min()) if keys.size else 0
    span = int(keys.max()) - low + 1 if keys.size else 1
    codes, counts = np.unique(bucket[positive] * span + (keys - low), return_counts=True)
    code_bounds = np.searchsorted(codes, np.arange(count + 1) * span)
    zeros = np.bincount(bucket[~positive], minlength=count)
    out = []
    for b in range(count):
        lo, hi = bounds[b], bounds[b + 1]
        c_lo, c_hi = code_bounds[b], code_bounds[b + 1]
        size = int(hi - lo)
        exact = values[lo:hi].copy() if size <= EXACT_LIMIT else None
        bins = codes[c_lo:c_hi] - b * span + low
        out.append(
            MetricSummary(size, exact, int(zeros[b]), bins, counts[c_lo:c_hi].astype(np.int64))
        )
    return out
