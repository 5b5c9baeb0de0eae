"""Calibration: p10-p90 covers 70-90% of held-out outcomes at every confidence tier.

Generated hierarchical data with known factors: models whose medians differ up to x12, two
providers per model (x1.15), three complexities (x3 from low to high), log-normal spread
within a group, and very unequal amounts of data per model (one dominates, as in real
fleets). Each tier is reached by hiding data and asking for what was hidden: a provider
never seen for a model and complexity (level 1, "high"), a complexity never seen for a model
(level 2, "medium"), a model with no history at all (level 3, "low"). Held-out outcomes
are fresh draws from the hidden group's true distribution.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from mosaicstack_telemetry import Complexity, PredictionQuery, Provider, TaskType
from mosaicstack_telemetry_server.predictions import build_response, compute_partition_stats
from mosaicstack_telemetry_server.predictions.widening import PRIOR_LOG_SPREAD, widen_intervals
from mosaicstack_telemetry_server.storage.base import PartitionSnapshot, StatsKey, StatsRow

NOW = datetime(2026, 11, 30, tzinfo=UTC)
TASK = TaskType.IMPLEMENTATION
BASE_TOKENS = 20_000.0
WITHIN_LOG_SD = 0.6
# Known factors, and how many events each model has (one dominates).
MODELS = {
    "m-a": (1.0, 3000),
    "m-b": (0.3, 900),
    "m-c": (2.2, 500),
    "m-d": (0.6, 300),
    "m-e": (3.5, 200),
    "m-f": (1.5, 150),
    "m-g": (0.45, 120),
    "m-h": (1.2, 100),
}
PROVIDERS = {Provider.ANTHROPIC: 1.0, Provider.OPENROUTER: 1.15}
COMPLEXITIES = {Complexity.LOW: 0.55, Complexity.MEDIUM: 1.0, Complexity.HIGH: 1.7}
Group = tuple[str, Provider, Complexity]


def true_median(group: Group) -> float:
    model, provider, complexity = group
    return BASE_TOKENS * MODELS[model][0] * PROVIDERS[provider] * COMPLEXITIES[complexity]


def draw(rng: np.random.Generator, group: Group, n: int) -> np.ndarray:
    return np.rint(true_median(group) * np.exp(rng.normal(0, WITHIN_LOG_SD, n)))


def history(rng: np.random.Generator) -> dict[Group, np.ndarray]:
    """Every group's past events: a model's events spread over its providers and complexities."""
    groups: dict[Group, np.ndarray] = {}
    for model, (_, count) in MODELS.items():
        for provider in PROVIDERS:
            for complexity in COMPLEXITIES:
                groups[(model, provider, complexity)] = draw(
                    rng, (model, provider, complexity), count // 6
                )
    return groups


def rows_of(groups: dict[Group, np.ndarray]) -> list[tuple[Any, ...]]:
    return [
        (
            model,
            provider.value,
            complexity.value,
            int(v),
            int(v) // 4,
            1000,
            60_000,
            0,
            0,
            True,
            "success",
        )
        for (model, provider, complexity), values in groups.items()
        for v in values
    ]


def answer(groups: dict[Group, np.ndarray], hidden: Group, *, widen: bool) -> Any:
    rows = compute_partition_stats(PartitionSnapshot(TASK.value, 1, rows_of(groups)), NOW)
    if widen:
        rows = widen_intervals(rows)
    found: dict[StatsKey, StatsRow] = {row.key: row for row in rows}
    model, provider, complexity = hidden
    query = PredictionQuery(task_type=TASK, model=model, provider=provider, complexity=complexity)
    return build_response(query, found, min_sample_size=5, cache_hit=False)


def held_out_cases(rng: np.random.Generator) -> Iterator[tuple[dict[Group, np.ndarray], Group]]:
    """(history with something hidden, the hidden group) for every tier."""
    full = history(rng)
    for model in MODELS:
        yield full, (model, Provider.ANTHROPIC, Complexity.MEDIUM)  # level 0
        yield (
            {g: v for g, v in full.items() if g[0] != model},
            (model, Provider.ANTHROPIC, Complexity.MEDIUM),
        )
        for complexity in COMPLEXITIES:
            yield (
                {g: v for g, v in full.items() if g[::2] != (model, complexity)},
                (model, Provider.OPENROUTER, complexity),
            )
            yield (
                {g: v for g, v in full.items() if g != (model, Provider.OPENROUTER, complexity)},
                (model, Provider.OPENROUTER, complexity),
            )


def coverage_by_tier(*, widen: bool) -> dict[tuple[str, int], float]:
    rng = np.random.default_rng(20261130)
    covered: dict[tuple[str, int], list[float]] = {}
    for groups, hidden in held_out_cases(rng):
        response = answer(groups, hidden, widen=widen)
        tokens = response.prediction.input_tokens
        outcomes = draw(rng, hidden, 400)
        inside = (outcomes >= tokens.p10) & (outcomes <= tokens.p90)
        tier = (response.metadata.confidence, response.metadata.fallback_level)
        covered.setdefault(tier, []).extend(inside.tolist())
    return {tier: float(np.mean(values)) for tier, values in covered.items()}


def test_p10_p90_covers_70_to_90_percent_at_every_confidence_tier() -> None:
    coverage = coverage_by_tier(widen=True)
    assert {tier for tier, _ in coverage} == {"high", "medium", "low"}
    for tier, share in coverage.items():
        assert 0.70 <= share <= 0.90, (tier, share, coverage)


def test_without_widening_the_fallback_levels_undercover() -> None:
    # What the widening is for: the matched events alone cover too little where a
    # dimension was dropped (measured: 63% at level 2), while level 0 is the same.
    plain, widened = coverage_by_tier(widen=False), coverage_by_tier(widen=True)
    assert plain[("medium", 2)] < 0.70
    assert plain[("high", 0)] == widened[("high", 0)]
    assert all(plain[tier] <= widened[tier] for tier in plain)


def test_widening_keeps_the_median_and_level_0_and_never_narrows() -> None:
    rng = np.random.default_rng(7)
    rows = compute_partition_stats(PartitionSnapshot(TASK.value, 1, rows_of(history(rng))), NOW)
    widened = {row.key: row for row in widen_intervals(rows)}
    for row in rows:
        after = widened[row.key]
        assert after.sample_size == row.sample_size
        for metric in ("input_tokens", "output_tokens"):
            old, new = row.stats[metric], after.stats[metric]
            assert new["median"] == old["median"]
            if row.key.level == 0:
                assert new == old
            else:
                assert new["p10"] <= old["p10"]
                assert new["p25"] <= old["p25"]
                assert new["p75"] >= old["p75"]
                assert new["p90"] >= old["p90"]
        assert {k: v for k, v in after.stats.items() if not k.endswith("_tokens")} == {
            k: v for k, v in row.stats.items() if not k.endswith("_tokens")
        }


def test_a_task_type_with_one_model_widens_level_3_by_the_documented_prior() -> None:
    rng = np.random.default_rng(3)
    only = {
        ("m-a", Provider.ANTHROPIC, Complexity.MEDIUM): draw(
            rng, ("m-a", Provider.ANTHROPIC, Complexity.MEDIUM), 500
        )
    }
    rows = widen_intervals(
        compute_partition_stats(PartitionSnapshot(TASK.value, 1, rows_of(only)), NOW)
    )
    top = next(r for r in rows if r.key.level == 3).stats["input_tokens"]
    # sqrt(sigma^2 + tau0^2 (1 + 1/1)), sigma ~ 0.6 and tau0^2 = 1.5^2 + 0.6^2 + 0.35^2:
    # p90 / median ~ exp(1.28 * 2.41) ~ 22.
    assert PRIOR_LOG_SPREAD[3] == pytest.approx(math.sqrt(1.5**2 + 0.6**2 + 0.35**2))
    assert 18 < top["p90"] / top["median"] < 27
    assert 18 < top["median"] / top["p10"] < 27
