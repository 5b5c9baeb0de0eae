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

from mosaicstack_telemetry_server.predictions.sketch import EXACT_LIMIT, MetricSummary
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
_Floats = npt.NDArray[np.float64]
_ENCODING: Final = 1.0  # first number of every blob: the layout's version


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
        """The bucket as stored: float64 numbers as bytes (exact values while few)."""
        parts = [np.array([_ENCODING, self.count, self.gate_passed, self.successes])]
        for name in METRICS:
            parts.extend(self.metrics[name].sketch_parts())
        exact = None
        if self.count <= EXACT_LIMIT:
            values = [_exact_of(self.metrics[name]) for name in METRICS]
            sizes = np.array([_ENCODING, *(v.size for v in values)], dtype=np.float64)
            exact = np.concatenate([sizes, *values]).tobytes()
        return BucketRow(key, self.count, np.concatenate(parts).tobytes(), exact)

    @classmethod
    def from_row(cls, row: BucketRow) -> BucketSummary:
        """Read a stored bucket (with its exact values if the row carries them)."""
        data = np.frombuffer(row.sketch, dtype=np.float64)
        exacts = _split_exact(row.exact)
        count, gate_passed, successes = (int(v) for v in data[1:4])
        at, metrics = 4, {}
        for i, name in enumerate(METRICS):
            metrics[name], at = MetricSummary.from_sketch(data, at, exacts[i])
        return cls(count, gate_passed, successes, metrics)


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
    """The summaries of new events (rows as `NewEvents.rows`), one per bucket they fall in."""
    if not rows:
        return {}
    columns = list(zip(*rows, strict=True))
    ids: dict[tuple[Any, ...], int] = {}
    group = np.fromiter(
        (ids.setdefault(k, len(ids)) for k in zip(*columns[:5], strict=True)),
        dtype=np.int64,
        count=len(rows),
    )
    numbers = np.array(columns[5:11], dtype=np.float64)
    gate = np.array(columns[11], dtype=bool)
    success = np.array([o == "success" for o in columns[12]], dtype=bool)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(ids) + 1))
    out = {}
    for key, g in ids.items():
        members = order[bounds[g] : bounds[g + 1]]
        out[BucketKey(*key)] = _summary(numbers[:, members], gate[members], success[members])
    return out


def _summary(
    numbers: _Floats, gate: npt.NDArray[np.bool_], success: npt.NDArray[np.bool_]
) -> BucketSummary:
    actual_in, actual_out, cost, duration, est_in, est_out = numbers
    has_in, has_out = est_in > 0, est_out > 0
    metrics = {
        "input_tokens": MetricSummary.of(actual_in),
        "output_tokens": MetricSummary.of(actual_out),
        "cost_usd_micros": MetricSummary.of(cost),
        "duration_ms": MetricSummary.of(duration[duration > 0]),
        "input_ratio": MetricSummary.of(actual_in[has_in] / est_in[has_in]),
        "output_ratio": MetricSummary.of(actual_out[has_out] / est_out[has_out]),
    }
    return BucketSummary(int(numbers.shape[1]), int(gate.sum()), int(success.sum()), metrics)
