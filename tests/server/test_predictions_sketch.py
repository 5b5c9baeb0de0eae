"""Sketches: merging equals sketching the union, and quantiles stay within the bound."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import PredictionData
from mosaicstack_telemetry_server.predictions.buckets import METRICS, BucketSummary, fold_events
from mosaicstack_telemetry_server.predictions.layout import Reader, Writer
from mosaicstack_telemetry_server.predictions.served import stats_of
from mosaicstack_telemetry_server.predictions.sketch import (
    EXACT_LIMIT,
    MAPPING,
    RELATIVE_ACCURACY,
    MetricSummary,
    sketch_keys,
)
from mosaicstack_telemetry_server.storage.base import BucketKey, BucketRow

values_strategy = st.lists(
    st.one_of(st.just(0.0), st.integers(1, 50_000_000).map(float), st.floats(0.001, 1e4)),
    min_size=1,
    max_size=300,
)


def sketch_only(values: list[float]) -> MetricSummary:
    return MetricSummary.merge([MetricSummary.of(np.array(values))], keep_exact=False)


def same(a: MetricSummary, b: MetricSummary) -> None:
    assert (a.count, a.zeros) == (b.count, b.zeros)
    assert a.keys.tolist() == b.keys.tolist()
    assert a.counts.tolist() == b.counts.tolist()


@settings(max_examples=200, deadline=None)
@given(st.lists(values_strategy, min_size=1, max_size=5))
def test_merging_sketches_equals_sketching_the_union(parts: list[list[float]]) -> None:
    merged = MetricSummary.merge([MetricSummary.of(np.array(p)) for p in parts])
    union = MetricSummary.of(np.array([v for p in parts for v in p]))
    same(merged, union)
    assert merged.exact is not None
    assert union.exact is not None
    assert sorted(merged.exact.tolist()) == sorted(union.exact.tolist())


@settings(max_examples=200, deadline=None)
@given(values_strategy, st.sampled_from([0.1, 0.25, 0.5, 0.75, 0.9]))
def test_sketch_quantiles_are_within_the_relative_accuracy(values: list[float], q: float) -> None:
    ordered = sorted(values)
    rank = q * (len(values) - 1)
    low, high = ordered[math.floor(rank)], ordered[math.ceil(rank)]
    [estimate] = sketch_only(values).percentiles([q])
    # DDSketch answers the value at the lower rank, within its relative accuracy.
    assert low * (1 - RELATIVE_ACCURACY) - 1e-9 <= estimate <= low * (1 + RELATIVE_ACCURACY) + 1e-9
    assert estimate <= high * (1 + RELATIVE_ACCURACY) + 1e-9


@given(st.floats(1e-6, 1e12))
def test_vectorized_keys_follow_the_ddsketch_mapping(value: float) -> None:
    [key] = sketch_keys(np.array([value])).tolist()
    # The same bin as the library's, or its neighbour when the value sits on a boundary.
    assert abs(key - MAPPING.key(value)) <= 1
    assert abs(MAPPING.value(key) - value) <= value * RELATIVE_ACCURACY * (1 + 1e-9)


def test_large_sample_percentiles_are_within_one_percent_of_numpy() -> None:
    rng = np.random.default_rng(5)
    values = np.rint(np.exp(rng.normal(9, 1.2, 50_000)))
    summary = MetricSummary.of(values)
    assert summary.exact is None  # over EXACT_LIMIT: the sketch answers
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        [estimate] = summary.percentiles([q])
        exact = float(np.percentile(values, q * 100))
        assert abs(estimate - exact) <= 0.01 * exact


def test_exact_values_are_kept_up_to_the_limit_and_dropped_beyond() -> None:
    ones = MetricSummary.of(np.ones(EXACT_LIMIT))
    assert ones.exact is not None
    assert MetricSummary.merge([ones, MetricSummary.of(np.ones(1))]).exact is None
    assert ones.percentiles([0.5]) == [1.0]
    assert MetricSummary.of(np.zeros(3)).percentiles([0.9]) == [0.0]


def test_a_bucket_survives_its_stored_form() -> None:
    rows = [
        (
            "implementation",
            "m",
            "p",
            "low",
            "2026-11-30",
            10 * i,
            5,
            7,
            i % 3,
            i % 2,
            4,
            True,
            "success",
        )
        for i in range(50)
    ]
    [(key, summary)] = fold_events(rows).items()
    again = BucketSummary.from_row(summary.to_row(key))
    assert (again.count, again.gate_passed, again.successes) == (50, 50, 50)
    for name, metric in summary.metrics.items():
        same(again.metrics[name], metric)
        assert again.metrics[name].exact is not None
        assert metric.exact is not None
        assert again.metrics[name].exact.tolist() == metric.exact.tolist()
    # Unknown durations (0) and ratios without an estimate (0) are left out.
    assert again.metrics["duration_ms"].count == 33
    assert again.metrics["input_ratio"].count == 25


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 2**40).map(float),
            st.sampled_from([0.0, -0.0, 255.0, 256.0, 65_535.0, 65_536.0, 2.0**32 - 1, 2.0**32]),
            st.floats(-1e6, 1e12, allow_nan=False),
        ),
        max_size=50,
    ),
    st.lists(st.integers(-(2**40), 2**40), max_size=50, unique=True),
)
def test_the_compact_layout_reads_back_every_number_bit_for_bit(
    values: list[float], keys: list[int]
) -> None:
    writer = Writer()
    writer.numbers(len(values), len(keys))
    writer.array(np.array(values, dtype=np.float64))
    writer.steps(np.array(sorted(keys), dtype=np.int64))
    reader = Reader(writer.blob())
    assert reader.numbers(2) == [len(values), len(keys)]
    assert reader.array(len(values)).tobytes() == np.array(values, dtype=np.float64).tobytes()
    assert reader.steps(len(keys)).tolist() == sorted(keys)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 2**40),
            st.sampled_from([0, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32]),
            st.integers(-(2**40), -1),
        ),
        max_size=50,
    ),
    st.booleans(),
)
def test_whole_numbers_read_back_the_same_whatever_their_type_and_sign(
    values: list[int], as_floats: bool
) -> None:
    # `whole` skips the check of each value's fraction: integers of either dtype, a
    # negative one included, still read back exactly, in the width the full check picks.
    array = np.array(values, dtype=np.float64 if as_floats else np.int64)
    whole, checked = Writer(), Writer()
    whole.array(array, whole=True)
    checked.array(array.astype(np.float64))
    assert whole.blob() == checked.blob()
    assert Reader(whole.blob()).array(len(values)).tolist() == [float(v) for v in values]
    assert Reader(whole.blob()).ints(len(values)).tolist() == values


def test_small_whole_numbers_take_a_byte_each_and_fractions_eight() -> None:
    def size(values: list[float]) -> int:
        writer = Writer()
        writer.array(np.array(values))
        return len(writer.blob())

    assert size([0, 1, 255] * 100) == 2 + 300  # version byte, width code, one byte each
    assert size([256, 65_535]) == 2 + 4
    assert size([70_000.0]) == 2 + 4
    assert size([2.0**32]) == 2 + 8
    assert size([0.5]) == 2 + 8
    with pytest.raises(ValueError, match="layout"):
        Reader(b"\x00\x00")


def test_buckets_stored_by_the_first_layout_still_read() -> None:
    """Every number a float64: [1, count, gate, successes], then per metric [count, zeros,
    bins, keys..., counts...]; the exact blob [1, six sizes, values...]."""
    key = BucketKey("implementation", "m", "anthropic", "medium", "2026-09-01")
    sketch = [1.0, 3, 2, 1]
    exact = [1.0, 3, 3, 3, 3, 3, 3]
    for _ in METRICS:
        sketch += [3, 1, 2, 100, 200, 1, 1]  # one zero, bins 100 and 200
        exact += [0.0, 5.0, 7.0]
    row = BucketRow(key, 3, np.array(sketch).tobytes(), np.array(exact, dtype=np.float64).tobytes())
    summary = BucketSummary.from_row(row)
    assert (summary.count, summary.gate_passed, summary.successes) == (3, 2, 1)
    metric = summary.metrics["input_tokens"]
    assert (metric.count, metric.zeros, metric.keys.tolist(), metric.counts.tolist()) == (
        3,
        1,
        [100, 200],
        [1, 1],
    )
    assert metric.exact is not None
    assert metric.exact.tolist() == [0.0, 5.0, 7.0]
    # Written again, it takes the compact layout and reads back the same.
    again = BucketSummary.from_row(summary.to_row(key))
    same(again.metrics["input_tokens"], metric)


def test_merging_bins_over_a_very_wide_span_adds_the_counts_too() -> None:
    # Values over 300 orders of magnitude: too wide a span for the dense addition.
    wide = [1e-150, 1e150, 1e150]
    merged = MetricSummary.merge([MetricSummary.of(np.array(w)) for w in ([v] for v in wide)])
    same(merged, MetricSummary.of(np.array(wide)))
    assert merged.counts.tolist() == [1, 2]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.integers(0, 10**9).map(float), st.floats(0, 1e6)), min_size=1),
    st.lists(st.sampled_from([0.1, 0.25, 0.5, 0.75, 0.9]), min_size=1, max_size=5),
)
def test_exact_percentiles_are_numpys_to_the_last_bit(values: list[float], qs: list[float]) -> None:
    summary = MetricSummary.of(np.array(values))
    expected = np.percentile(np.array(values), [q * 100 for q in qs])
    assert np.array(summary.percentiles(qs)).tobytes() == expected.tobytes()


event_rows = st.lists(
    st.tuples(
        st.integers(0, 5_000_000),  # input tokens
        st.integers(0, 500_000),  # output tokens
        st.integers(0, 10**9),  # cost
        st.sampled_from([0, 1, 999, 86_400_000]),  # duration (0: not measured)
        st.integers(0, 5_000_000),  # estimated input (0: no estimate)
        st.integers(0, 500_000),  # estimated output
        st.booleans(),
        st.sampled_from(["success", "failure"]),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(event_rows, st.booleans())
def test_served_statistics_are_what_the_contracts_model_dumps(
    events: list[tuple[Any, ...]], sketched: bool
) -> None:
    # stats_of builds the dict itself, without validating a model per group: it must be the
    # very JSON PredictionData gives, types included (int tokens, float factors and rates).
    rows = [("implementation", "m", "p", "low", "2026-11-30", *e) for e in events]
    [summary] = fold_events(rows).values()
    if sketched:
        summary = BucketSummary.merge([summary], keep_exact=False)
    stats = stats_of(summary)
    dumped = PredictionData.model_validate(stats).model_dump(mode="json")
    assert json.dumps(stats, sort_keys=True) == json.dumps(dumped, sort_keys=True)
