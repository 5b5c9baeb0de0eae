"""Sketches: merging equals sketching the union, and quantiles stay within the bound."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry_server.predictions.buckets import BucketSummary, fold_events
from mosaicstack_telemetry_server.predictions.sketch import (
    EXACT_LIMIT,
    MAPPING,
    RELATIVE_ACCURACY,
    MetricSummary,
    sketch_keys,
)

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
