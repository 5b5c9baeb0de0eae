"""Leave-one-model-out on a fleet shaped like real agents: p10-p90 holds 65-90% (issue 17).

The fleet and the scoring are `_fleet_calibration`'s. Measured on the code before issue 17
(same seed): a model never seen was covered 70% overall, but 47% in the task type only two
models had run and 64% in the one three had; the model that re-sends a 450k context 35%.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from _fleet_calibration import Fold, Score, answers, evaluate, folds, history
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import PredictionData, PredictionResponse
from mosaicstack_telemetry_server.predictions import compute_partition_stats
from mosaicstack_telemetry_server.predictions.widening import widen_intervals, widen_task_types
from mosaicstack_telemetry_server.storage import open_storage
from mosaicstack_telemetry_server.storage.base import PartitionSnapshot, StatsRow


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, object], Score]:
    return evaluate(tmp_path_factory.mktemp("fleet"))


def test_p10_p90_covers_65_to_90_percent_at_every_confidence_leaving_one_model_out(
    scores: dict[tuple[str, object], Score],
) -> None:
    confidences = {name: s for (kind, name), s in scores.items() if kind == "confidence"}
    assert set(confidences) == {"high", "medium", "low"}
    for name, score in confidences.items():
        for metric in ("input", "output"):
            assert 0.65 <= score.coverage(metric) <= 0.90, (name, metric, score)


def test_a_model_never_seen_is_covered_in_task_types_that_few_models_ran(
    scores: dict[tuple[str, object], Score],
) -> None:
    # Testing was run by two models and code review by three: a spread estimated from them
    # alone was far too small (47% and 64% before issue 17).
    unseen = {name: s for (kind, name), s in scores.items() if kind == "unseen model in"}
    assert set(unseen) == {"implementation", "debugging", "code_review", "testing"}
    for task_type, score in unseen.items():
        assert 0.65 <= score.coverage("input") <= 0.90, (task_type, score)
    assert all(s.answers > 0 for s in unseen.values())


def test_fallback_levels_appear_and_level_3_is_scored_on_the_held_out_models(
    scores: dict[tuple[str, object], Score],
) -> None:
    levels = {name for kind, name in scores if kind == "level"}
    assert levels == {0, 1, 2, 3}
    unseen = sum(s.answers for (kind, _), s in scores.items() if kind == "unseen model in")
    assert scores[("level", 3)].answers == unseen


def test_level_0_answers_are_the_exact_quantiles_of_their_events(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    fold = next(folds())
    events = history(rng, fold.hidden)
    path = tmp_path / "level0.db"
    responses = answers(path, events, fold.asked)
    storage = open_storage(f"sqlite:///{path}")
    try:
        exact = {
            row.key: row
            for task in {g[0] for g in fold.asked}
            for row in compute_partition_stats(storage.read_partition(task.value), _T)
            if row.key.level == 0
        }
    finally:
        storage.close()
    at_level_0 = [
        (group, r) for group, r in zip(fold.asked, responses, strict=True) if _level(r) == 0
    ]
    assert at_level_0
    for (task, model, provider, complexity), response in at_level_0:
        row = next(
            row
            for key, row in exact.items()
            if (key.task_type, key.model, key.provider, key.complexity)
            == (task.value, model, provider.value, complexity.value)
        )
        assert response.prediction is not None
        assert response.prediction.model_dump(mode="json") == row.stats


def test_widening_leaves_level_0_rows_untouched_whatever_the_fleet(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    rows = _stats(tmp_path, rng, next(folds()))
    by_task: dict[str, list[StatsRow]] = {}
    for row in rows:
        by_task.setdefault(row.key.task_type, []).append(row)
    fleet = [row for row in rows if row.key.level == 0]
    for task_rows in by_task.values():
        for alone, together in zip(
            widen_intervals(task_rows), widen_intervals(task_rows, fleet), strict=True
        ):
            if alone.key.level == 0:
                assert alone == together
                assert alone in task_rows


def test_a_close_fleet_of_many_models_narrows_towards_its_data() -> None:
    # Twelve models within x1.5 of each other: the data outweigh the x30 prior.
    close = _level_3_ratio(models=12, spread=0.1)
    few = _level_3_ratio(models=2, spread=0.1)
    assert close < few
    assert close < 8  # the prior alone gives ~22 (see test_predictions_calibration)


_GROUP = st.tuples(
    st.sampled_from(["testing", "planning", "debugging"]),
    st.sampled_from(["m1", "m2", "m3", "m4"]),
    st.sampled_from(["anthropic", "openai"]),
    st.sampled_from(["low", "high"]),
)
_VALUES = st.lists(st.integers(0, 10_000_000), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_GROUP, _VALUES, min_size=1, max_size=12))
def test_widening_keeps_level_0_and_medians_and_never_narrows_or_disorders(
    groups: dict[tuple[str, str, str, str], list[int]],
) -> None:
    merged: dict[str, list[StatsRow]] = {}
    for task_type in {g[0] for g in groups}:
        rows = [
            (m, p, c, v, v // 4, 1000, 60_000, 0, 0, True, "success")
            for (t, m, p, c), values in groups.items()
            if t == task_type
            for v in values
        ]
        merged[task_type] = compute_partition_stats(PartitionSnapshot(task_type, 1, rows), _T)
    widened = widen_task_types(merged, [])
    for task_type, rows in merged.items():
        for before, after in zip(rows, widened[task_type], strict=True):
            assert after.key == before.key
            if before.key.level == 0:
                assert after == before
                continue
            for metric in ("input_tokens", "output_tokens"):
                old, new = before.stats[metric], after.stats[metric]
                assert new["median"] == old["median"]
                assert new["p10"] <= old["p10"]
                assert new["p90"] >= old["p90"]
                assert new["p10"] <= new["p25"] <= new["median"] <= new["p75"] <= new["p90"]
            PredictionData.model_validate(after.stats)


_T = datetime(2026, 12, 1, tzinfo=UTC)


def _level(response: PredictionResponse) -> int:
    return response.metadata.fallback_level


def _stats(tmp_path: Path, rng: np.random.Generator, fold: Fold) -> list[StatsRow]:
    events = history(rng, fold.hidden)
    path = tmp_path / "stats.db"
    answers(path, events, fold.asked[:1])
    storage = open_storage(f"sqlite:///{path}")
    try:
        return storage.stats_at_level(0) + [
            row for level in (1, 2, 3) for row in storage.stats_at_level(level)
        ]
    finally:
        storage.close()


def _level_3_ratio(*, models: int, spread: float) -> float:
    """p90 / median at level 3 of one task type whose models' log medians have sd `spread`."""
    rng = np.random.default_rng(11)
    rows = [
        (f"m{i}", "anthropic", "medium", int(v), 1, 0, 0, 0, 0, True, "success")
        for i, centre in enumerate(rng.normal(10, spread, models))
        for v in np.exp(rng.normal(centre, 0.5, 300))
    ]
    stats = compute_partition_stats(PartitionSnapshot("testing", 1, rows), _T)
    top = next(r for r in widen_intervals(stats) if r.key.level == 3).stats["input_tokens"]
    return float(top["p90"] / top["median"])
