"""compute_partition_stats: every group of every fallback level, checked against numpy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import Complexity, Outcome, PredictionData, Provider
from mosaicstack_telemetry_server.predictions import compute_partition_stats
from mosaicstack_telemetry_server.storage.base import WILDCARD, PartitionSnapshot, StatsKey

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TASK = "implementation"
LEVEL_DIMS = {0: (0, 1, 2), 1: (0, 2), 2: (0,), 3: ()}


def make_row(
    model: str = "m",
    provider: str = "anthropic",
    complexity: str = "low",
    *,
    actual_in: int = 100,
    actual_out: int = 50,
    cost: int = 1000,
    duration: int = 2000,
    est_in: int = 100,
    est_out: int = 50,
    gate: bool = True,
    outcome: str = "success",
) -> tuple[Any, ...]:
    """A row in PartitionSnapshot's column order."""
    return (
        model,
        provider,
        complexity,
        actual_in,
        actual_out,
        cost,
        duration,
        est_in,
        est_out,
        gate,
        outcome,
    )


def by_key(rows: list[tuple[Any, ...]]) -> dict[StatsKey, Any]:
    return {r.key: r for r in compute_partition_stats(PartitionSnapshot(TASK, 1, rows), NOW)}


def in_group(key: StatsKey, row: tuple[Any, ...]) -> bool:
    wanted = (key.model, key.provider, key.complexity)
    return all(w in (WILDCARD, v) for w, v in zip(wanted, row[:3], strict=True))


def expected_stats(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """The contract's statistics of one group, straight from numpy.percentile/median/mean."""
    col = {
        name: np.array([r[i] for r in rows])
        for i, name in enumerate(
            ["m", "p", "c", "ain", "aout", "cost", "dur", "ein", "eout", "gate", "outcome"]
        )
    }

    def dist(values: np.ndarray) -> dict[str, int]:
        p = np.rint(np.percentile(values, [10, 25, 50, 75, 90]))
        return dict(zip(["p10", "p25", "median", "p75", "p90"], map(int, p), strict=True))

    def factor(actual: np.ndarray, estimated: np.ndarray) -> float:
        has = estimated > 0
        return float(np.percentile(actual[has] / estimated[has], 50)) if has.any() else 1.0

    return {
        "input_tokens": dist(col["ain"]),
        "output_tokens": dist(col["aout"]),
        "cost_usd_micros": {"median": int(np.rint(np.percentile(col["cost"], 50)))},
        # 0 is "not measured": left out; 0 when no event has a duration.
        "duration_ms": {"median": measured_median(col["dur"])},
        "correction_factors": {
            "input": factor(col["ain"], col["ein"]),
            "output": factor(col["aout"], col["eout"]),
        },
        "quality": {
            "gate_pass_rate": float(np.mean(col["gate"].astype(bool))),
            "success_rate": float(np.mean(col["outcome"] == "success")),
        },
    }


def measured_median(durations: np.ndarray) -> int:
    measured = durations[durations > 0]
    return int(np.rint(np.percentile(measured, 50))) if measured.size else 0


tokens = st.integers(0, 10_000_000)
row_strategy = st.builds(
    make_row,
    st.sampled_from(["claude-x", "gpt-y"]),
    st.sampled_from(["anthropic", "openrouter"]),
    st.sampled_from(["low", "high"]),
    actual_in=tokens,
    actual_out=tokens,
    cost=st.integers(0, 100_000_000),
    duration=st.one_of(st.just(0), st.integers(0, 86_400_000)),
    est_in=st.one_of(st.just(0), tokens),
    est_out=st.one_of(st.just(0), tokens),
    gate=st.booleans(),
    outcome=st.sampled_from([o.value for o in Outcome]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row_strategy, min_size=1, max_size=40))
def test_every_group_at_every_level_matches_numpy(rows: list[tuple[Any, ...]]) -> None:
    stats = by_key(rows)
    for level, dims in LEVEL_DIMS.items():
        groups = {tuple(r[i] if i in dims else WILDCARD for i in range(3)) for r in rows}
        assert {k[1:] for k in map(astuple, stats) if k[0] == level} == groups
    for key, row in stats.items():
        members = [r for r in rows if in_group(key, r)]
        assert row.key.task_type == TASK
        assert row.sample_size == len(members)
        assert row.computed_at == NOW
        assert row.stats == expected_stats(members)
        PredictionData.model_validate(row.stats)


def astuple(key: StatsKey) -> tuple[Any, ...]:
    return (key.level, key.model, key.provider, key.complexity)


def test_level_keys_wildcard_the_dropped_dimensions() -> None:
    stats = by_key([make_row("m1", "openai", "high"), make_row("m2", "anthropic", "low")])
    assert set(map(astuple, stats)) == {
        (0, "m1", "openai", "high"),
        (0, "m2", "anthropic", "low"),
        (1, "m1", WILDCARD, "high"),
        (1, "m2", WILDCARD, "low"),
        (2, "m1", WILDCARD, WILDCARD),
        (2, "m2", WILDCARD, WILDCARD),
        (3, WILDCARD, WILDCARD, WILDCARD),
    }
    assert stats[StatsKey(3, TASK, WILDCARD, WILDCARD, WILDCARD)].sample_size == 2


@pytest.mark.parametrize(
    ("values", "median"),
    [
        ([1, 2], 2),  # 1.5 -> 2 (even)
        ([2, 3], 2),  # 2.5 -> 2 (even)
        ([3, 4], 4),  # 3.5 -> 4 (even)
        ([0, 1, 2, 100], 2),  # 1.5 -> 2
        ([10, 11, 12], 11),
    ],
)
def test_medians_round_half_to_even(values: list[int], median: int) -> None:
    rows = [make_row(actual_in=v, cost=v, duration=v) for v in values]
    stats = by_key(rows)[StatsKey(0, TASK, "m", "anthropic", "low")].stats
    assert stats["input_tokens"]["median"] == median
    assert stats["cost_usd_micros"] == {"median": median}
    assert stats["duration_ms"] == {"median": median}


def test_percentiles_interpolate_linearly_between_ranks() -> None:
    # n = 11: p10 falls exactly on rank 1, p25 halfway between ranks 2 and 3.
    rows = [make_row(actual_out=v * 10) for v in range(11)]
    dist = by_key(rows)[StatsKey(3, TASK, WILDCARD, WILDCARD, WILDCARD)].stats["output_tokens"]
    assert dist == {"p10": 10, "p25": 25, "median": 50, "p75": 75, "p90": 90}
    rows = [make_row(actual_out=v) for v in (0, 1000)]
    dist = by_key(rows)[StatsKey(3, TASK, WILDCARD, WILDCARD, WILDCARD)].stats["output_tokens"]
    assert dist == {"p10": 100, "p25": 250, "median": 500, "p75": 750, "p90": 900}


def test_correction_factors_ignore_events_without_estimate() -> None:
    rows = [
        make_row(actual_in=300, est_in=100, actual_out=10, est_out=0),
        make_row(actual_in=100, est_in=100, actual_out=20, est_out=0),
        make_row(actual_in=999, est_in=0, actual_out=30, est_out=10),
    ]
    factors = by_key(rows)[StatsKey(0, TASK, "m", "anthropic", "low")].stats["correction_factors"]
    assert factors == {"input": 2.0, "output": 3.0}


def test_correction_factors_default_to_one_when_no_event_has_an_estimate() -> None:
    rows = [make_row(model="a", actual_in=500, est_in=0, actual_out=7, est_out=0)] * 3 + [
        make_row(model="b", actual_in=50, est_in=100, actual_out=7, est_out=0)
    ]
    stats = by_key(rows)
    no_estimate = StatsKey(0, TASK, "a", "anthropic", "low")
    assert stats[no_estimate].stats["correction_factors"] == {"input": 1.0, "output": 1.0}
    everyone = StatsKey(3, TASK, WILDCARD, WILDCARD, WILDCARD)
    assert stats[everyone].stats["correction_factors"] == {"input": 0.5, "output": 1.0}


def test_quality_rates_are_shares_of_the_group() -> None:
    rows = [
        make_row(gate=True, outcome="success"),
        make_row(gate=False, outcome="success"),
        make_row(gate=True, outcome="failure"),
        make_row(gate=True, outcome="timeout"),
    ]
    quality = by_key(rows)[StatsKey(0, TASK, "m", "anthropic", "low")].stats["quality"]
    assert quality == {"gate_pass_rate": 0.75, "success_rate": 0.5}


def test_enum_members_group_with_their_string_values() -> None:
    rows = [
        make_row("m", Provider.OPENAI, Complexity.HIGH, outcome=Outcome.SUCCESS),  # type: ignore[arg-type]
        make_row("m", "openai", "high", outcome="failure"),
    ]
    stats = by_key(rows)
    exact = stats[StatsKey(0, TASK, "m", "openai", "high")]
    assert exact.sample_size == 2
    assert exact.stats["quality"]["success_rate"] == 0.5
    assert sum(1 for k in stats if k.level == 0) == 1


def test_an_empty_partition_has_no_statistics() -> None:
    assert compute_partition_stats(PartitionSnapshot(TASK, 3, []), NOW) == []


def test_durations_of_zero_are_unmeasured_and_costs_of_zero_are_real() -> None:
    # Three unmeasured runs would drag a median of measured ones down to 0.
    rows = [
        make_row("m", "p", "low", duration=d, cost=c)
        for d, c in [(0, 0), (0, 0), (0, 0), (100, 10), (300, 30)]
    ]
    stats = by_key(rows)[StatsKey(0, TASK, "m", "p", "low")].stats
    assert stats["duration_ms"] == {"median": 200}
    assert stats["cost_usd_micros"] == {"median": 0}


def test_a_group_without_any_measured_duration_has_a_median_of_zero() -> None:
    stats = by_key([make_row("m", "p", "low", duration=0)])[StatsKey(0, TASK, "m", "p", "low")]
    assert stats.stats["duration_ms"] == {"median": 0}
