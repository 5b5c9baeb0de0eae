"""PredictionService on real SQLite and PostgreSQL: numbers, freshness, cache_hit, refresher."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import numpy as np
import pytest
from _api_helpers import wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import (
    Complexity,
    Harness,
    Outcome,
    PredictionQuery,
    Provider,
    TaskCompletionEvent,
    TaskType,
)
from mosaicstack_telemetry_server.predictions.service import PredictionService
from mosaicstack_telemetry_server.storage import Storage, open_storage
from mosaicstack_telemetry_server.storage.base import BucketKey, EventCursor, NewEvents

T0 = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
INSTANCE = uuid4()


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_event(
    rng: random.Random,
    task_type: TaskType = TaskType.IMPLEMENTATION,
    model: str = "claude-x",
    provider: Provider = Provider.ANTHROPIC,
    complexity: Complexity = Complexity.MEDIUM,
) -> TaskCompletionEvent:
    """A valid event with random numbers (some without estimates)."""
    return TaskCompletionEvent(
        instance_id=INSTANCE,
        task_duration_ms=rng.randrange(86_400_000),
        task_type=task_type,
        complexity=complexity,
        harness=Harness.CLAUDE_CODE,
        model=model,
        provider=provider,
        estimated_input_tokens=rng.choice([0, rng.randrange(1, 200_000)]),
        estimated_output_tokens=rng.choice([0, rng.randrange(1, 50_000)]),
        actual_input_tokens=rng.randrange(200_000),
        actual_output_tokens=rng.randrange(50_000),
        estimated_cost_usd_micros=rng.randrange(1_000_000),
        actual_cost_usd_micros=rng.randrange(1_000_000),
        quality_gate_passed=rng.random() < 0.7,
        context_compactions=0,
        context_rotations=0,
        context_utilization_final=0.5,
        outcome=rng.choice(list(Outcome)),
        retry_count=0,
    )


def expected(events: Sequence[TaskCompletionEvent]) -> dict[str, Any]:
    """The contract's statistics of these events, computed directly with numpy."""

    def col(name: str) -> np.ndarray:
        return np.array([getattr(e, name) for e in events])

    def dist(values: np.ndarray) -> dict[str, int]:
        p = np.rint(np.percentile(values, [10, 25, 50, 75, 90]))
        return dict(zip(["p10", "p25", "median", "p75", "p90"], map(int, p), strict=True))

    def factor(actual: np.ndarray, estimated: np.ndarray) -> float:
        has = estimated > 0
        return float(np.percentile(actual[has] / estimated[has], 50)) if has.any() else 1.0

    return {
        "input_tokens": dist(col("actual_input_tokens")),
        "output_tokens": dist(col("actual_output_tokens")),
        "cost_usd_micros": {"median": int(np.rint(np.median(col("actual_cost_usd_micros"))))},
        "duration_ms": {"median": measured_median(col("task_duration_ms"))},
        "correction_factors": {
            "input": factor(col("actual_input_tokens"), col("estimated_input_tokens")),
            "output": factor(col("actual_output_tokens"), col("estimated_output_tokens")),
        },
        "quality": {
            "gate_pass_rate": float(np.mean(col("quality_gate_passed"))),
            "success_rate": float(np.mean([e.outcome is Outcome.SUCCESS for e in events])),
        },
    }


def measured_median(durations: np.ndarray) -> int:
    """Median of the durations > 0 (0 is "not measured"); 0 when none is measured."""
    measured = durations[durations > 0]
    return int(np.rint(np.median(measured))) if measured.size else 0


def assert_matches(
    served: dict[str, Any], events: Sequence[TaskCompletionEvent], level: int
) -> None:
    """Level 0 is exactly numpy's; levels 1-3 keep the median and widen the interval."""
    want = expected(events)
    if level == 0:
        assert served == want
        return
    for metric in ("input_tokens", "output_tokens"):
        got, own = served.pop(metric), want.pop(metric)
        assert got["median"] == own["median"]
        assert got["p10"] <= own["p10"]
        assert got["p25"] <= own["p25"]
        assert got["p75"] >= own["p75"]
        assert got["p90"] >= own["p90"]
    assert served == want


def query(
    task_type: TaskType = TaskType.IMPLEMENTATION,
    model: str = "claude-x",
    provider: Provider = Provider.ANTHROPIC,
    complexity: Complexity = Complexity.MEDIUM,
) -> PredictionQuery:
    return PredictionQuery(
        task_type=task_type, model=model, provider=provider, complexity=complexity
    )


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20260506)


def test_predict_on_an_empty_database_has_no_prediction(storage: Storage) -> None:
    service = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=0)
    [response] = service.predict_batch([query()])
    assert response.prediction is None
    assert response.metadata.fallback_level == -1
    assert response.metadata.confidence == "none"
    assert response.metadata.sample_size == 0
    assert response.metadata.last_updated is None
    assert service.refresh_stale() == 0
    assert service.predict_batch([]) == []


def test_predictions_match_numpy_at_every_fallback_level(
    storage: Storage, rng: random.Random
) -> None:
    impl, review = TaskType.IMPLEMENTATION, TaskType.CODE_REVIEW
    groups: dict[tuple[Any, ...], list[TaskCompletionEvent]] = {
        # 6 exact events: level 0.
        (impl, "a", Provider.ANTHROPIC, Complexity.LOW): [],
        # 2 exact + 4 through another route at the same complexity: level 1 (6 events).
        (impl, "b", Provider.ANTHROPIC, Complexity.LOW): [],
        (impl, "b", Provider.OPENROUTER, Complexity.LOW): [],
        # 2 + 1 at another complexity and route: level 2 (model "c", 5 events).
        (impl, "c", Provider.ANTHROPIC, Complexity.LOW): [],
        (impl, "c", Provider.OPENROUTER, Complexity.LOW): [],
        (impl, "c", Provider.OPENAI, Complexity.HIGH): [],
        # Only 4 code_review events in all: no level has 5.
        (review, "d", Provider.ANTHROPIC, Complexity.LOW): [],
    }
    counts = [6, 2, 4, 2, 1, 2, 4]
    for (key, bucket), n in zip(groups.items(), counts, strict=True):
        bucket.extend(make_event(rng, *key) for _ in range(n))
    storage.insert_events([e for bucket in groups.values() for e in bucket])
    impl_events = [e for (t, *_), b in groups.items() if t is impl for e in b]

    service = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=0)
    queries = [
        query(impl, "a", Provider.ANTHROPIC, Complexity.LOW),
        query(impl, "b", Provider.ANTHROPIC, Complexity.LOW),
        query(impl, "c", Provider.ANTHROPIC, Complexity.LOW),
        query(impl, "zzz", Provider.ANTHROPIC, Complexity.LOW),
        query(review, "d", Provider.ANTHROPIC, Complexity.LOW),
    ]
    responses = service.predict_batch(queries)

    matched = [
        groups[(impl, "a", Provider.ANTHROPIC, Complexity.LOW)],
        [e for e in impl_events if e.model == "b" and e.complexity is Complexity.LOW],
        [e for e in impl_events if e.model == "c"],
        impl_events,
    ]
    for level, (response, events) in enumerate(zip(responses, matched, strict=False)):
        assert response.metadata.fallback_level == level
        assert response.metadata.sample_size == len(events)
        assert response.prediction is not None
        assert_matches(response.prediction.model_dump(mode="json"), events, level)
    assert responses[3].metadata.dimensions_matched == {
        "task_type": "implementation",
        "model": None,
        "provider": None,
        "complexity": None,
    }
    none = responses[4]
    assert none.prediction is None
    assert none.metadata.fallback_level == -1
    assert "task type only: 4" in (none.metadata.fallback_note or "")


def test_first_request_recomputes_then_later_ones_hit_the_cache(
    storage: Storage, rng: random.Random
) -> None:
    storage.insert_events([make_event(rng) for _ in range(8)])
    clock = FakeClock()
    service = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=300, clock=clock)
    first = service.predict_batch([query()])[0].metadata
    assert first.cache_hit is False
    assert first.last_updated == T0
    clock.advance(60)
    second = service.predict_batch([query(), query(complexity=Complexity.HIGH)])
    assert [r.metadata.cache_hit for r in second] == [True, True]
    assert second[0].metadata.last_updated == T0  # nothing new: the stored statistics stand
    assert second[1].metadata.fallback_level == 2


def test_max_age_zero_reflects_every_event_accepted_before_the_request(
    storage: Storage, rng: random.Random
) -> None:
    service = PredictionService(storage, min_sample_size=1, stats_max_age_seconds=0)
    accepted: list[TaskCompletionEvent] = []
    for _ in range(4):
        batch = [make_event(rng) for _ in range(rng.randrange(1, 4))]
        storage.insert_events(batch)
        accepted += batch
        [response] = service.predict_batch([query()])
        assert response.metadata.cache_hit is False
        assert response.metadata.sample_size == len(accepted)
        assert response.prediction is not None
        assert response.prediction.model_dump(mode="json") == expected(accepted)


def test_young_stale_statistics_are_served_until_max_age_passes(
    storage: Storage, rng: random.Random
) -> None:
    clock = FakeClock()
    service = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=300, clock=clock)
    storage.insert_events([make_event(rng) for _ in range(5)])
    assert service.predict_batch([query()])[0].metadata.sample_size == 5

    storage.insert_events([make_event(rng) for _ in range(3)])
    clock.advance(299.5)
    young = service.predict_batch([query()])[0].metadata
    assert (young.sample_size, young.cache_hit, young.last_updated) == (5, True, T0)

    clock.advance(0.5)  # exactly max age: stale now
    fresh = service.predict_batch([query()])[0].metadata
    assert fresh.sample_size == 8
    assert fresh.cache_hit is False
    assert fresh.last_updated == T0 + timedelta(seconds=300)


def test_refresh_stale_recomputes_each_stale_task_type_once(
    storage: Storage, rng: random.Random
) -> None:
    # A stopped clock: statistics never age, so only new events make them stale.
    service = PredictionService(
        storage, min_sample_size=5, stats_max_age_seconds=0, clock=FakeClock()
    )
    storage.insert_events([make_event(rng, TaskType.TESTING), make_event(rng, TaskType.PLANNING)])
    assert service.refresh_stale() == 2
    assert service.refresh_stale() == 0
    storage.insert_events([make_event(rng, TaskType.TESTING)])
    assert service.refresh_stale() == 1
    assert [r.metadata.cache_hit for r in service.predict_batch([query(TaskType.TESTING)])] == [
        True
    ]


def test_refresh_ahead_recomputes_statistics_about_to_go_stale(
    storage: Storage, rng: random.Random
) -> None:
    clock = FakeClock()
    service = PredictionService(storage, min_sample_size=1, stats_max_age_seconds=60, clock=clock)
    storage.insert_events([make_event(rng)])
    assert service.refresh_stale() == 1
    storage.insert_events([make_event(rng)])
    clock.advance(50)
    assert service.refresh_stale() == 0  # changed, but young for 10 more seconds
    assert service.refresh_stale(ahead_seconds=15) == 1
    assert service.predict_batch([query()])[0].metadata.sample_size == 2


def test_another_process_serves_the_same_statistics(
    database_url: str, storage: Storage, rng: random.Random
) -> None:
    storage.insert_events([make_event(rng) for _ in range(7)])
    first = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=600)
    [computed] = first.predict_batch([query()])
    other_storage = open_storage(database_url)
    try:
        other = PredictionService(other_storage, min_sample_size=5, stats_max_age_seconds=600)
        [served] = other.predict_batch([query()])
    finally:
        other_storage.close()
    assert computed.metadata.cache_hit is False
    assert served.metadata.cache_hit is True
    assert served.prediction == computed.prediction
    assert served.metadata.last_updated == computed.metadata.last_updated


def test_concurrent_requests_recompute_a_partition_once(
    storage: Storage, rng: random.Random
) -> None:
    storage.insert_events([make_event(rng) for _ in range(50)])
    # A stopped clock: the statistics cannot age while the threads run, so none re-stamps.
    service = PredictionService(
        storage, min_sample_size=5, stats_max_age_seconds=0, clock=FakeClock()
    )
    start = threading.Barrier(6)
    hits: list[bool] = []

    def ask() -> None:
        start.wait()
        hits.extend(r.metadata.cache_hit for r in service.predict_batch([query()]))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(hits) == [False, True, True, True, True, True]


def test_background_refresher_recomputes_without_a_request(
    storage: Storage, rng: random.Random
) -> None:
    # A stopped clock: with a maximum age of 0 a request re-stamps aged statistics itself.
    service = PredictionService(
        storage, min_sample_size=5, stats_max_age_seconds=0, clock=FakeClock()
    )
    service.start_background(interval_seconds=0.02)
    try:
        assert service.background_running
        storage.insert_events([make_event(rng) for _ in range(6)])
        task = TaskType.IMPLEMENTATION.value

        def refreshed() -> bool:
            stats = storage.stats_versions().get(task)
            return stats is not None and stats[0] == storage.partition_versions()[task]

        wait_until(refreshed)
        [response] = service.predict_batch([query()])
        assert response.metadata.cache_hit is True
        assert response.metadata.sample_size == 6
    finally:
        assert service.stop_background(timeout=5)
    assert not service.background_running


def test_statistics_at_max_age_with_no_new_event_are_restamped_not_recomputed(
    storage: Storage, rng: random.Random
) -> None:
    counting = CountingStorage(storage)
    clock = FakeClock()
    service = PredictionService(
        counting,  # type: ignore[arg-type]
        min_sample_size=5,
        stats_max_age_seconds=300,
        clock=clock,
    )
    storage.insert_events([make_event(rng) for _ in range(6)])
    [computed] = service.predict_batch([query()])
    assert counting.partition_reads == 1

    clock.advance(300)  # exactly max age, no event since
    [restamped] = service.predict_batch([query()])
    assert counting.partition_reads == 1  # the same numbers, not read again
    assert restamped.prediction == computed.prediction
    assert restamped.metadata.cache_hit is False  # this request did the freshness work
    assert restamped.metadata.last_updated == T0 + timedelta(seconds=300)
    assert storage.stats_versions()["implementation"][1] == T0 + timedelta(seconds=300)

    clock.advance(299)
    [young] = service.predict_batch([query()])
    assert (young.metadata.cache_hit, young.metadata.last_updated) == (
        True,
        T0 + timedelta(seconds=300),
    )


def test_a_restamp_by_another_process_is_served_as_is(
    database_url: str, storage: Storage, rng: random.Random
) -> None:
    clock = FakeClock()
    storage.insert_events([make_event(rng) for _ in range(6)])
    first = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=60, clock=clock)
    first.predict_batch([query()])
    clock.advance(61)
    other_storage = open_storage(database_url)
    try:
        other = PredictionService(
            other_storage, min_sample_size=5, stats_max_age_seconds=60, clock=clock
        )
        assert other.predict_batch([query()])[0].metadata.cache_hit is False
    finally:
        other_storage.close()
    [served] = first.predict_batch([query()])
    assert served.metadata.cache_hit is True
    assert served.metadata.last_updated == T0 + timedelta(seconds=61)


def test_refresher_restamps_unchanged_statistics_before_they_reach_max_age(
    storage: Storage, rng: random.Random
) -> None:
    clock = FakeClock()
    service = PredictionService(storage, min_sample_size=1, stats_max_age_seconds=60, clock=clock)
    storage.insert_events([make_event(rng)])
    assert service.refresh_stale() == 1
    clock.advance(50)
    assert service.refresh_stale(ahead_seconds=5) == 0  # 5 s to go: not yet
    assert service.refresh_stale(ahead_seconds=15) == 1
    assert storage.stats_versions()["implementation"] == (1, T0 + timedelta(seconds=50))
    clock.advance(15)  # 65 s after the computation, 15 s after the re-stamp
    [response] = service.predict_batch([query()])
    assert response.metadata.cache_hit is True
    assert response.metadata.last_updated == T0 + timedelta(seconds=50)


def test_with_max_age_zero_requests_restamp_and_the_refresher_leaves_it_to_them(
    storage: Storage, rng: random.Random
) -> None:
    clock = FakeClock()
    service = PredictionService(storage, min_sample_size=1, stats_max_age_seconds=0, clock=clock)
    storage.insert_events([make_event(rng)])
    assert service.refresh_stale(ahead_seconds=0.5) == 1  # new data: computed ahead
    clock.advance(10)
    assert service.refresh_stale(ahead_seconds=0.5) == 0  # no write every period
    [response] = service.predict_batch([query()])
    assert response.metadata.cache_hit is False
    assert response.metadata.last_updated == T0 + timedelta(seconds=10)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    max_age=st.sampled_from([0, 1, 30, 300]),
    steps=st.lists(
        st.tuples(st.floats(0, 400), st.integers(0, 2), st.booleans()), min_size=1, max_size=12
    ),
)
def test_served_statistics_are_never_older_than_max_age(
    max_age: int, steps: list[tuple[float, int, bool]]
) -> None:
    rng = random.Random(7)
    clock = FakeClock()
    store = open_storage("sqlite://:memory:")
    try:
        store.migrate()
        service = PredictionService(
            store, min_sample_size=1, stats_max_age_seconds=max_age, clock=clock
        )
        inserted = 0
        for seconds, new_events, run_refresher in steps:
            clock.advance(seconds)
            store.insert_events([make_event(rng) for _ in range(new_events)])
            inserted += new_events
            if run_refresher:
                service.refresh_stale(ahead_seconds=max_age / 2)
            [response] = service.predict_batch([query()])
            meta = response.metadata
            if inserted == 0:
                assert meta.last_updated is None
                continue
            assert meta.last_updated is not None
            assert timedelta(0) <= clock.now - meta.last_updated <= timedelta(seconds=max_age)
            if max_age == 0:
                assert meta.sample_size == inserted
    finally:
        store.close()


def test_last_updated_is_taken_before_the_partition_is_read(
    storage: Storage, rng: random.Random
) -> None:
    clock = FakeClock()
    service = PredictionService(
        SlowReadStorage(storage, clock, rng),  # type: ignore[arg-type]
        min_sample_size=1,
        stats_max_age_seconds=300,
        clock=clock,
    )
    storage.insert_events([make_event(rng) for _ in range(3)])
    [response] = service.predict_batch([query()])
    # The event stored during the read (at T0 + 10 s) is not in these statistics, so they
    # only reflected every stored event at T0.
    assert response.metadata.sample_size == 3
    assert response.metadata.last_updated == T0


class WrappedStorage:
    """A real storage seen through a wrapper, to produce what a healthy one cannot."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CountingStorage(WrappedStorage):
    """Counts rebuilds of a task type's statistics from its buckets (one bucket listing each)."""

    partition_reads = 0

    def window_buckets(
        self, task_type: str, window_days: int, min_events: int
    ) -> list[tuple[BucketKey, int]]:
        self.partition_reads += 1
        return self.inner.window_buckets(task_type, window_days, min_events)


class SlowReadStorage(WrappedStorage):
    """A partition read during which time passes (and, optionally, an event arrives)."""

    def __init__(self, inner: Storage, clock: FakeClock, rng: random.Random) -> None:
        super().__init__(inner)
        self.clock = clock
        self.rng = rng

    def read_new_events(self, cursor: EventCursor, limit: int) -> NewEvents:
        snapshot = self.inner.read_new_events(cursor, limit)
        self.clock.advance(10)
        self.inner.insert_events([make_event(self.rng)])  # stored after the snapshot
        return snapshot


class FlakyStorage(WrappedStorage):
    """Version reads fail while `failing` is set (an outage)."""

    failing = True
    failures = 0

    def partition_versions(self) -> dict[str, int]:
        if self.failing:
            self.failures += 1
            raise ConnectionError("database unreachable")
        return self.inner.partition_versions()


class NaiveTimesStorage(WrappedStorage):
    """Hands back computation times without a time zone, as some drivers do."""

    def stats_versions(self) -> dict[str, tuple[int, datetime]]:
        return {
            task: (version, at.astimezone(UTC).replace(tzinfo=None))
            for task, (version, at) in self.inner.stats_versions().items()
        }


def test_naive_computation_times_are_taken_as_utc(storage: Storage, rng: random.Random) -> None:
    clock = FakeClock()
    service = PredictionService(
        NaiveTimesStorage(storage),  # type: ignore[arg-type]
        min_sample_size=1,
        stats_max_age_seconds=60,
        clock=clock,
    )
    storage.insert_events([make_event(rng)])
    assert service.refresh_stale() == 1
    storage.insert_events([make_event(rng)])
    clock.advance(59)
    assert service.refresh_stale() == 0
    clock.advance(1)
    assert service.refresh_stale() == 1


def test_background_refresher_logs_failures_and_keeps_going(
    storage: Storage, rng: random.Random, caplog: pytest.LogCaptureFixture
) -> None:
    storage.insert_events([make_event(rng) for _ in range(5)])
    flaky = FlakyStorage(storage)
    service = PredictionService(
        flaky,  # type: ignore[arg-type]
        min_sample_size=5,
        stats_max_age_seconds=0,
    )
    with caplog.at_level(logging.INFO, logger="mosaicstack_telemetry_server.predictions"):
        service.start_background(interval_seconds=0.01)
        try:
            wait_until(lambda: flaky.failures >= 3)
            flaky.failing = False
            wait_until(lambda: "implementation" in storage.stats_versions())
            wait_until(lambda: "works again" in caplog.text)
        finally:
            assert service.stop_background(timeout=5)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # one traceback per outage
    assert "refreshing prediction statistics failed" in errors[0].getMessage()
    assert "ConnectionError" in caplog.text


def test_background_refresher_stops_at_once_and_starts_only_once(storage: Storage) -> None:
    service = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=3600)
    assert service.stop_background() is True  # never started
    service.start_background()  # default period: 30 s
    service.start_background()
    names = [t.name for t in threading.enumerate()]
    assert names.count("mosaic-telemetry-stats-refresher") == 1
    started = time.monotonic()
    assert service.stop_background(timeout=5) is True
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("max_age", "interval"), [(0, 0.5), (0.4, 0.5), (10, 5.0), (300, 30.0), (86_400, 30.0)]
)
def test_default_refresh_interval_is_half_max_age_within_bounds(
    storage: Storage, max_age: float, interval: float
) -> None:
    service = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=max_age)
    assert service.default_interval_seconds() == interval
    assert service.stats_max_age_seconds == max_age
    assert service.min_sample_size == 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_sample_size": 0, "stats_max_age_seconds": 1},
        {"min_sample_size": 5, "stats_max_age_seconds": -1},
        {"min_sample_size": 5, "stats_max_age_seconds": float("nan")},
    ],
)
def test_invalid_settings_are_refused(storage: Storage, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        PredictionService(storage, **kwargs)


def test_batches_and_intervals_have_limits(storage: Storage) -> None:
    service = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=0)
    with pytest.raises(ValueError, match="at most 100"):
        service.predict_batch([query()] * 101)
    assert len(service.predict_batch([query()] * 100)) == 100
    with pytest.raises(ValueError, match="interval_seconds"):
        service.start_background(interval_seconds=0)


@pytest.mark.parametrize(
    ("exact", "other_route", "level", "confidence"),
    [
        (99, 0, 0, "medium"),
        (100, 0, 0, "high"),
        (4, 25, 1, "low"),
        (4, 26, 1, "medium"),
        (4, 95, 1, "medium"),
        (4, 96, 1, "high"),
    ],
)
def test_confidence_follows_level_and_sample_size_end_to_end(
    storage: Storage,
    rng: random.Random,
    exact: int,
    other_route: int,
    level: int,
    confidence: str,
) -> None:
    storage.insert_events(
        [make_event(rng) for _ in range(exact)]
        + [make_event(rng, provider=Provider.OPENROUTER) for _ in range(other_route)]
    )
    service = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=0)
    [response] = service.predict_batch([query()])
    assert response.metadata.fallback_level == level
    assert response.metadata.sample_size == (exact if level == 0 else exact + other_route)
    assert response.metadata.confidence == confidence


def test_warm_answers_are_kept_until_their_statistics_move(
    storage: Storage, rng: random.Random
) -> None:
    clock = FakeClock()
    service = PredictionService(storage, min_sample_size=1, stats_max_age_seconds=60, clock=clock)
    storage.insert_events([make_event(rng) for _ in range(3)])
    [first] = service.predict_batch([query()])
    assert (first.metadata.sample_size, first.metadata.cache_hit) == (3, False)
    [again, twin] = service.predict_batch([query(), query()])
    assert again.metadata.cache_hit
    assert again is twin  # the same answer, built once
    assert service.predict_batch([query()])[0] is again
    # A new event: young statistics still answer as they are (the maximum age rules) ...
    storage.insert_events([make_event(rng)])
    assert service.predict_batch([query()])[0] is again
    # ... and once they reach it, the recomputed statistics give a new answer.
    clock.advance(60)
    [fresh] = service.predict_batch([query()])
    assert (fresh.metadata.sample_size, fresh.metadata.cache_hit) == (4, False)
    [warm] = service.predict_batch([query()])
    assert warm.metadata.cache_hit
    assert warm.metadata.last_updated == fresh.metadata.last_updated


def test_the_answer_cache_stays_within_its_bound() -> None:
    from mosaicstack_telemetry import PredictionResponse
    from mosaicstack_telemetry_server.predictions.answers import AnswerCache, answer_key

    cache = AnswerCache(max_answers=2)
    answer = PredictionResponse.model_validate(
        {
            "prediction": None,
            "metadata": {
                "sample_size": 0,
                "fallback_level": -1,
                "confidence": "none",
                "last_updated": None,
                "dimensions_matched": None,
                "fallback_note": None,
                "cache_hit": True,
            },
        }
    )
    keys = [answer_key(query(model=m), (1, T0), cache_hit=True, catching_up=False) for m in "abc"]
    cache.put(keys[0], answer)
    cache.put(keys[1], answer)
    assert cache.get(keys[0]) is answer
    cache.put(keys[2], answer)  # full: the others are dropped
    assert (cache.get(keys[0]), cache.get(keys[2])) == (None, answer)


class RefreshedMeanwhile(WrappedStorage):
    """Another call of the process refreshes the statistics just after a request read their
    stamps (as the background refresher may)."""

    service: PredictionService | None = None

    def stats_versions(self) -> dict[str, tuple[int, datetime]]:
        stamps = self.inner.stats_versions()
        service, self.service = self.service, None
        if service is not None:
            assert service.refresh_stale() == 1
        return stamps


def test_a_request_answers_with_statistics_refreshed_meanwhile_by_another_call(
    storage: Storage, rng: random.Random
) -> None:
    racing = RefreshedMeanwhile(storage)
    service = PredictionService(
        racing,  # type: ignore[arg-type]
        min_sample_size=1,
        stats_max_age_seconds=0,
    )
    storage.insert_events([make_event(rng) for _ in range(3)])
    racing.service = service
    # The request finds no statistics, the other call computes them, so the request does
    # not: it must still answer with them (every event accepted before it), not "no data".
    [answer] = service.predict_batch([query()])
    assert answer.metadata.sample_size == 3
    assert answer.prediction is not None
