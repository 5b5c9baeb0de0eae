"""The fallback chain: level choice, dimensions_matched, fallback_note, confidence, metadata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mosaicstack_telemetry import Complexity, PredictionQuery, Provider, TaskType
from mosaicstack_telemetry_server.predictions import build_response, chain_keys, confidence_for
from mosaicstack_telemetry_server.storage.base import WILDCARD, StatsKey, StatsRow

QUERY = PredictionQuery(
    task_type=TaskType.CODE_REVIEW,
    model="claude-sonnet",
    provider=Provider.OPENROUTER,
    complexity=Complexity.HIGH,
)
COMPUTED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
VALUES = {
    "task_type": "code_review",
    "model": "claude-sonnet",
    "provider": "openrouter",
    "complexity": "high",
}


def stats_for(level: int) -> dict[str, object]:
    """Distinct, valid PredictionData JSON per level, so the served level is visible."""
    n = 1000 * (level + 1)
    dist = {"p10": n, "p25": n + 1, "median": n + 2, "p75": n + 3, "p90": n + 4}
    return {
        "input_tokens": dist,
        "output_tokens": dist,
        "cost_usd_micros": {"median": n},
        "duration_ms": {"median": n},
        "correction_factors": {"input": 1.5, "output": 0.5},
        "quality": {"gate_pass_rate": 0.25, "success_rate": 0.75},
    }


def found(*sizes: int | None, computed_at: datetime = COMPUTED) -> dict[StatsKey, StatsRow]:
    """Stored rows for the query's chain: sizes per level 0..3, None = no row at all."""
    return {
        key: StatsRow(key, n, stats_for(key.level), computed_at)
        for key, n in zip(chain_keys(QUERY), sizes, strict=False)
        if n is not None
    }


def test_chain_keys_drop_provider_then_complexity_then_model() -> None:
    assert chain_keys(QUERY) == [
        StatsKey(0, "code_review", "claude-sonnet", "openrouter", "high"),
        StatsKey(1, "code_review", "claude-sonnet", WILDCARD, "high"),
        StatsKey(2, "code_review", "claude-sonnet", WILDCARD, WILDCARD),
        StatsKey(3, "code_review", WILDCARD, WILDCARD, WILDCARD),
    ]


def test_level_0_is_an_exact_match_without_note() -> None:
    response = build_response(QUERY, found(5, 5, 5, 5), min_sample_size=5, cache_hit=True)
    meta = response.metadata
    assert meta.fallback_level == 0
    assert meta.sample_size == 5
    assert meta.dimensions_matched == VALUES
    assert meta.fallback_note is None
    assert response.prediction is not None
    assert response.prediction.model_dump(mode="json") == stats_for(0)


def test_level_1_drops_the_provider() -> None:
    response = build_response(QUERY, found(4, 7, 9, 12), min_sample_size=5, cache_hit=True)
    meta = response.metadata
    assert meta.fallback_level == 1
    assert meta.sample_size == 7
    assert meta.dimensions_matched == {**VALUES, "provider": None}
    assert meta.fallback_note == (
        "No exact match with at least 5 events (exact match: 4); "
        "dropped provider (same model through another route)"
    )
    assert response.prediction is not None
    assert response.prediction.model_dump(mode="json") == stats_for(1)


def test_level_2_drops_provider_and_complexity() -> None:
    response = build_response(QUERY, found(None, 3, 9, 12), min_sample_size=5, cache_hit=True)
    meta = response.metadata
    assert meta.fallback_level == 2
    assert meta.sample_size == 9
    assert meta.dimensions_matched == {**VALUES, "provider": None, "complexity": None}
    assert meta.fallback_note == (
        "No closer match with at least 5 events (exact match: 0, without provider: 3); "
        "dropped provider and complexity (same model at any complexity, through any route)"
    )
    assert response.prediction is not None
    assert response.prediction.model_dump(mode="json") == stats_for(2)


def test_level_3_keeps_only_the_task_type() -> None:
    response = build_response(QUERY, found(None, None, None, 40), min_sample_size=5, cache_hit=True)
    meta = response.metadata
    assert meta.fallback_level == 3
    assert meta.sample_size == 40
    assert meta.dimensions_matched == {
        "task_type": "code_review",
        "model": None,
        "provider": None,
        "complexity": None,
    }
    assert meta.fallback_note == (
        "No closer match with at least 5 events "
        "(exact match: 0, without provider: 0, model only: 0); "
        "dropped model, provider and complexity (every task of this type)"
    )
    assert response.prediction is not None
    assert response.prediction.model_dump(mode="json") == stats_for(3)


def test_no_level_with_enough_events_means_no_prediction() -> None:
    response = build_response(QUERY, found(1, 2, 3, 4), min_sample_size=5, cache_hit=False)
    assert response.prediction is None
    meta = response.metadata
    assert (meta.fallback_level, meta.sample_size, meta.confidence) == (-1, 0, "none")
    assert meta.last_updated is None
    assert meta.dimensions_matched == dict.fromkeys(VALUES)
    assert meta.fallback_note == (
        "No level of the fallback chain has at least 5 events "
        "(exact match: 1, without provider: 2, model only: 3, task type only: 4)"
    )
    assert meta.cache_hit is False


def test_no_statistics_at_all_means_no_prediction() -> None:
    response = build_response(QUERY, {}, min_sample_size=5, cache_hit=True)
    assert response.prediction is None
    assert response.metadata.fallback_level == -1
    assert response.metadata.confidence == "none"
    assert "task type only: 0" in (response.metadata.fallback_note or "")


@pytest.mark.parametrize("min_sample_size", [1, 5, 30])
def test_min_sample_size_is_inclusive(min_sample_size: int) -> None:
    below = build_response(
        QUERY,
        found(min_sample_size - 1, None, None, None),
        min_sample_size=min_sample_size,
        cache_hit=True,
    )
    at = build_response(
        QUERY,
        found(min_sample_size, None, None, None),
        min_sample_size=min_sample_size,
        cache_hit=True,
    )
    assert below.metadata.fallback_level == -1
    assert at.metadata.fallback_level == 0
    assert at.metadata.sample_size == min_sample_size


@pytest.mark.parametrize(
    ("level", "n", "expected"),
    [
        (0, 29, "low"),
        (0, 30, "medium"),
        (0, 99, "medium"),
        (0, 100, "high"),
        (1, 29, "low"),
        (1, 30, "medium"),
        (1, 99, "medium"),
        (1, 100, "high"),
        (2, 29, "low"),
        (2, 30, "medium"),
        (2, 99, "medium"),
        (2, 100, "medium"),
        (3, 29, "low"),
        (3, 30, "low"),
        (3, 99, "low"),
        (3, 100, "low"),
        (3, 100_000, "low"),
    ],
)
def test_confidence_boundaries(level: int, n: int, expected: str) -> None:
    assert confidence_for(level, n) == expected
    sizes: list[int | None] = [None] * 4
    sizes[level] = n
    response = build_response(QUERY, found(*sizes), min_sample_size=5, cache_hit=True)
    assert response.metadata.fallback_level == level
    assert response.metadata.confidence == expected


def test_confidence_is_none_without_data() -> None:
    assert confidence_for(-1, 0) == "none"
    assert confidence_for(0, 0) == "none"


@pytest.mark.parametrize(
    "computed_at",
    [
        COMPUTED,
        COMPUTED.replace(tzinfo=None),
        COMPUTED.astimezone(timezone(timedelta(hours=-5))),
    ],
)
def test_last_updated_is_when_the_statistics_were_computed_in_utc(computed_at: datetime) -> None:
    response = build_response(
        QUERY, found(50, computed_at=computed_at), min_sample_size=5, cache_hit=True
    )
    last = response.metadata.last_updated
    assert last == COMPUTED
    assert last is not None
    assert last.utcoffset() == timedelta(0)


@pytest.mark.parametrize("cache_hit", [True, False])
def test_cache_hit_is_reported_as_given(cache_hit: bool) -> None:
    response = build_response(QUERY, found(50), min_sample_size=5, cache_hit=cache_hit)
    assert response.metadata.cache_hit is cache_hit


def test_the_response_serialises_to_the_contract_shape() -> None:
    body = build_response(QUERY, found(0, 120), min_sample_size=5, cache_hit=True).model_dump(
        mode="json"
    )
    assert body["metadata"] == {
        "sample_size": 120,
        "fallback_level": 1,
        "confidence": "high",
        "last_updated": "2026-03-04T05:06:07Z",
        "dimensions_matched": {**VALUES, "provider": None},
        "fallback_note": (
            "No exact match with at least 5 events (exact match: 0); "
            "dropped provider (same model through another route)"
        ),
        "cache_hit": True,
    }
    assert body["prediction"] == stats_for(1)
