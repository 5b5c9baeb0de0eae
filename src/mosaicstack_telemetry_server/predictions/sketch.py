"""One metric's summary in one bucket: exact values while few, a DDSketch always.

The contract asks for exact percentiles up to 10,000 events per group and at most 1%
relative error above. So a summary keeps its values (while it has at most `EXACT_LIMIT`)
and, always, the bins of a DDSketch: DataDog's logarithmic mapping (the `ddsketch`
package's `LogarithmicMapping`), where bin k holds the values in (gamma^(k-1), gamma^k] and
stands for 2 gamma^k / (1 + gamma), within `RELATIVE_ACCURACY` of all of them. Bins merge by
adding counts, so merging the sketches of two sets gives exactly the sketch of their union.

The bins are kept as numpy arrays rather than `ddsketch.DDSketch` objects: the library adds
values one at a time in Python (about a microsecond each, 60 s for 10M events and six
metrics), where a vectorized key computation bins a whole batch at once. Quantiles follow
`DDSketch.get_quantile_value`: the bin holding rank q (n - 1), lower rank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from ddsketch.mapping import LogarithmicMapping

from mosaicstack_telemetry_server.predictions.layout import Reader, Writer
from mosaicstack_telemetry_server.predictions.statistics import sorted_percentiles

__all__ = ["EXACT_LIMIT", "RELATIVE_ACCURACY", "MetricSummary"]

# Groups up to this many events are computed exactly (contract).
EXACT_LIMIT: Final = 10_000
# Half the contract's 1%: rounding to whole tokens must still leave the answer within it.
RELATIVE_ACCURACY: Final = 0.005
MAPPING: Final = LogarithmicMapping(RELATIVE_ACCURACY)
_LOG2_GAMMA: Final = math.log2(MAPPING.gamma)

_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.int64]
_NO_VALUES: Final = np.empty(0, dtype=np.float64)
_NO_KEYS: Final = np.empty(0, dtype=np.int64)
# Widest key span merged through a dense array: 64K bins of float64 are 512 KB.
_DENSE_SPAN: Final = 1 << 16


def sketch_keys(values: _Floats) -> _Ints:
    """The DDSketch bin of each value > 0, vectorized (`MAPPING.key` one at a time)."""
    keys: _Ints = np.ceil(np.log2(values) / _LOG2_GAMMA).astype(np.int64)
    return keys


def _add_bins(keys: Sequence[_Ints], counts: Sequence[_Ints]) -> tuple[_Ints, _Ints]:
    """The bins of several sketches added up: sorted unique keys and their summed counts.

    Keys of one metric span a few thousand bins, so the counts are added into a dense array
    over that span (one `bincount`), cheaper than sorting every key; a wider span (values
    over many orders of magnitude) falls back to `numpy.unique`.
    """
    filled = [i for i, k in enumerate(keys) if k.size]
    if len(filled) <= 1:
        # Nothing to add up: the one sketch with bins (arrays are never written to in place).
        return (keys[filled[0]], counts[filled[0]]) if filled else (_NO_KEYS, _NO_KEYS)
    # Keys are sorted: the extremes are the parts' ends, no pass over the bins needed.
    low = min(int(keys[i][0]) for i in filled)
    span = max(int(keys[i][-1]) for i in filled) - low + 1
    all_keys = np.concatenate([keys[i] for i in filled])
    all_counts = np.concatenate([counts[i] for i in filled])
    if span <= _DENSE_SPAN:
        # float64 weights hold counts exactly (far below 2**53).
        all_keys -= low
        dense = np.bincount(all_keys, weights=all_counts, minlength=span)
        present = dense.nonzero()[0]
        summed: _Ints = dense[present].astype(np.int64)
        present += low
        return present, summed
    unique, where = np.unique(all_keys, return_inverse=True)
    added = np.zeros(unique.size, dtype=np.int64)
    np.add.at(added, where, all_counts)
    return unique, added


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """Values of one metric: `exact` (None once over `EXACT_LIMIT`) and sketch bins.

    Values <= 0 count in `zeros` (a 0 is real for tokens and cost). `keys` are sorted and
    unique, `counts` their numbers of values.
    """

    count: int
    exact: _Floats | None
    zeros: int
    keys: _Ints
    counts: _Ints

    @classmethod
    def of(cls, values: _Floats) -> MetricSummary:
        """The summary of these values (NaN for unknown ones must be removed beforehand)."""
        positive = values[values > 0]
        keys, counts = np.unique(sketch_keys(positive), return_counts=True)
        exact = values.copy() if values.size <= EXACT_LIMIT else None
        return cls(int(values.size), exact, int(values.size - positive.size), keys, counts)

    @classmethod
    def merge(cls, parts: Sequence[MetricSummary], *, keep_exact: bool = True) -> MetricSummary:
        """The summary of the union of the parts' values (exact only if all have it)."""
        count = sum(p.count for p in parts)
        exact = None
        if keep_exact and count <= EXACT_LIMIT and all(p.exact is not None for p in parts):
            exact = np.concatenate([p.exact for p in parts if p.exact is not None] or [_NO_VALUES])
        keys, counts = _add_bins([p.keys for p in parts], [p.counts for p in parts])
        return cls(count, exact, sum(p.zeros for p in parts), keys, counts)

    def percentiles(self, quantiles: Sequence[float]) -> list[float]:
        """Exact (numpy.percentile's linear method, bit for bit) when the values are kept,
        else from the sketch."""
        if self.count == 0:
            raise ValueError("no values")
        if self.exact is not None:
            return sorted_percentiles(np.sort(self.exact), [q * 100 for q in quantiles])
        ranks = [q * (self.count - 1) - self.zeros for q in quantiles]
        # One search for every quantile; a rank below 0 falls among the zeros.
        found = np.searchsorted(np.cumsum(self.counts), ranks, side="right").tolist()
        last = self.keys.size - 1
        return [
            float(MAPPING.value(int(self.keys[min(index, last)]))) if rank >= 0 else 0.0
            for rank, index in zip(ranks, found, strict=True)
        ]

    # --- bytes, for the database (`layout`)

    def write(self, writer: Writer) -> None:
        """[count, zeros, bins], then the keys as steps and the counts."""
        writer.numbers(self.count, self.zeros, self.keys.size)
        writer.steps(self.keys)
        writer.array(self.counts, whole=True)

    @classmethod
    def read(cls, reader: Reader, exact: _Floats | None) -> MetricSummary:
        """Read one summary written by `write`."""
        count, zeros, bins = reader.numbers(3)
        keys = reader.steps(bins)
        return cls(count, exact, zeros, keys, reader.ints(bins))

    @classmethod
    def from_sketch(
        cls, data: _Floats, at: int, exact: _Floats | None
    ) -> tuple[MetricSummary, int]:
        """Read one summary of the first layout (all float64) at `at`; returns it and its end."""
        count, zeros, bins = (int(v) for v in data[at : at + 3])
        keys = data[at + 3 : at + 3 + bins].astype(np.int64)
        counts = data[at + 3 + bins : at + 3 + 2 * bins].astype(np.int64)
        return cls(count, exact, zeros, keys, counts), at + 3 + 2 * bins
