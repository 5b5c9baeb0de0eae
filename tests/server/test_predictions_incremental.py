"""Incremental summaries on real SQLite and PostgreSQL: exactness, late commits, drift, backlog."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from _api_helpers import wait_until
from _prediction_events import DAY0, TASK, event, query
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import (
    Complexity,
    Provider,
)
from mosaicstack_telemetry_server.predictions import compute_partition_stats
from mosaicstack_telemetry_server.predictions.buckets import fold_events
from mosaicstack_telemetry_server.predictions.incremental import catch_up
from mosaicstack_telemetry_server.predictions.recency import Recency, choose_buckets
from mosaicstack_telemetry_server.predictions.service import REQUEST_MAX_EVENTS, PredictionService
from mosaicstack_telemetry_server.storage import Storage, open_storage
from mosaicstack_telemetry_server.storage.base import BucketKey, BucketRow, EventCursor, StatsKey

ALL_DAYS = Recency(window_days=0)


# A background drain of a backlog: allow for a slow machine.
DRAINED_WITHIN = 60.0


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20261130)


def served(service: PredictionService, storage: Storage) -> dict[StatsKey, Any]:
    service.refresh_stale()
    return storage.get_stats(all_keys(storage))


def all_keys(storage: Storage) -> list[StatsKey]:
    rows = compute_partition_stats(storage.read_partition(TASK.value), DAY0)
    return [row.key for row in rows]


def test_refreshing_in_steps_gives_the_numbers_of_one_full_computation(
    storage: Storage, rng: random.Random
) -> None:
    service = PredictionService(
        storage, min_sample_size=1, stats_max_age_seconds=0, recency=ALL_DAYS
    )
    shapes = [
        (model, provider, complexity)
        for model in ("a", "b")
        for provider in (Provider.ANTHROPIC, Provider.OPENROUTER)
        for complexity in (Complexity.LOW, Complexity.HIGH)
    ]
    for step in range(3):
        storage.insert_events(
            [
                event(rng, day=rng.randrange(5), model=m, provider=p, complexity=c)
                for m, p, c in shapes
                for _ in range(7 + step)
            ]
        )
        got = served(service, storage)
    full = {r.key: r for r in compute_partition_stats(storage.read_partition(TASK.value), DAY0)}
    assert set(got) == set(full)
    for key, row in full.items():
        assert got[key].sample_size == row.sample_size
        mine, theirs = dict(got[key].stats), dict(row.stats)
        if key.level > 0:  # widened: the median and everything else stays
            for metric in ("input_tokens", "output_tokens"):
                assert mine.pop(metric)["median"] == theirs.pop(metric)["median"]
        assert mine == theirs


def test_groups_up_to_10000_events_are_exact_and_larger_ones_within_one_percent(
    storage: Storage, rng: random.Random
) -> None:
    # Level 0: exactly 10,000 events over two days (two buckets); level 1: one more, through
    # another route, so 10,001: the sketches answer there and above.
    exact = [event(rng, day=i % 2) for i in range(10_000)]
    storage.insert_events(exact)
    storage.insert_events([event(rng, provider=Provider.OPENROUTER)])
    service = PredictionService(
        storage, min_sample_size=1, stats_max_age_seconds=0, recency=ALL_DAYS
    )
    rows = served(service, storage)
    full = {r.key: r for r in compute_partition_stats(storage.read_partition(TASK.value), DAY0)}
    level0 = StatsKey(0, TASK.value, "m", "anthropic", "medium")
    assert rows[level0].sample_size == 10_000
    assert rows[level0].stats == full[level0].stats
    for key in (
        StatsKey(1, TASK.value, "m", "*", "medium"),
        StatsKey(3, TASK.value, "*", "*", "*"),
    ):
        assert rows[key].sample_size == 10_001
        for metric in ("input_tokens", "output_tokens"):
            want = full[key].stats[metric]["median"]
            assert abs(rows[key].stats[metric]["median"] - want) <= 0.01 * want
        assert (
            abs(rows[key].stats["duration_ms"]["median"] - full[key].stats["duration_ms"]["median"])
            <= 0.01 * full[key].stats["duration_ms"]["median"]
        )
        assert rows[key].stats["quality"] == full[key].stats["quality"]


def bucket_total(storage: Storage) -> int:
    return sum(size for _, size in storage.bucket_sizes(TASK.value))


def test_two_processes_folding_at_once_count_every_event_once(
    database_url: str, storage: Storage, rng: random.Random
) -> None:
    other = open_storage(database_url)
    try:
        for _ in range(5):
            storage.insert_events([event(rng, day=rng.randrange(3)) for _ in range(300)])
            threads = [
                threading.Thread(
                    target=catch_up,
                    args=(s, lambda: DAY0),
                    kwargs={"chunk": 97, "max_events": 10**6},
                )
                for s in (storage, other, storage)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert bucket_total(storage) == storage.count_events() == 1500
    finally:
        other.close()


def test_postgres_events_committing_out_of_order_are_not_skipped(
    postgres_url: str, rng: random.Random
) -> None:
    import psycopg

    storage = open_storage(postgres_url)
    storage.migrate()
    try:
        storage.insert_events([event(rng)])
        columns = (
            "instance_id, schema_version, timestamp, task_duration_ms, task_type, complexity, "
            "harness, model, provider, estimated_input_tokens, estimated_output_tokens, "
            "actual_input_tokens, actual_output_tokens, estimated_cost_usd_micros, "
            "actual_cost_usd_micros, quality_gate_passed, quality_gates_run, "
            "quality_gates_failed, context_compactions, context_rotations, "
            "context_utilization_final, outcome, retry_count, language, repo_size_category"
        )
        with psycopg.connect(postgres_url) as slow:
            # Draws its id now and commits last: the other events get larger ids, commit first.
            slow.execute(
                f"INSERT INTO events (event_id, {columns}) SELECT gen_random_uuid(), {columns} "
                "FROM events LIMIT 1"
            )
            storage.insert_events([event(rng) for _ in range(5)])
            catch_up(storage, lambda: DAY0, chunk=100, max_events=10**6)
            assert bucket_total(storage) == 6
            slow.commit()
        catch_up(storage, lambda: DAY0, chunk=100, max_events=10**6)
        assert bucket_total(storage) == storage.count_events() == 7
        catch_up(storage, lambda: DAY0, chunk=100, max_events=10**6)
        assert bucket_total(storage) == 7
    finally:
        storage.close()


def test_after_a_step_change_predictions_reach_the_new_level_within_the_window(
    storage: Storage, rng: random.Random
) -> None:
    recency = Recency(window_days=14, min_events=100)
    service = PredictionService(
        storage, min_sample_size=5, stats_max_age_seconds=0, recency=recency
    )
    change, per_day = 30, 40
    medians = {}
    for day in range(change + recency.window_days):
        level = 1_000 if day < change else 3_000  # the model now uses 3x the tokens
        storage.insert_events(
            [event(rng, day=day, tokens=level * rng.lognormvariate(0, 0.3)) for _ in range(per_day)]
        )
        [response] = service.predict_batch([query()])
        assert response.prediction is not None
        medians[day] = response.prediction.input_tokens.median
        assert response.metadata.sample_size == per_day * min(day + 1, recency.window_days)
    assert abs(medians[change - 1] - 1_000) < 100
    # Half the window after the change the median has moved over; at its end it is there.
    assert medians[change + recency.window_days // 2] > 2_000
    assert abs(medians[change + recency.window_days - 1] - 3_000) < 300


def test_a_quiet_group_keeps_its_older_days(storage: Storage, rng: random.Random) -> None:
    storage.insert_events([event(rng, day=0, model="quiet") for _ in range(20)])
    storage.insert_events([event(rng, day=60) for _ in range(5)])
    service = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=0)
    [quiet, busy] = service.predict_batch([query("quiet"), query()])
    assert (quiet.metadata.fallback_level, quiet.metadata.sample_size) == (0, 20)
    assert (busy.metadata.fallback_level, busy.metadata.sample_size) == (0, 5)


def test_a_bulk_load_is_never_waited_for_and_the_answer_says_so(
    storage: Storage, rng: random.Random
) -> None:
    storage.insert_events([event(rng) for _ in range(REQUEST_MAX_EVENTS + 500)])
    service = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=0)
    [first] = service.predict_batch([query()])
    assert first.prediction is None
    assert "backlog" in (first.metadata.fallback_note or "")
    # The drain folds the rest in the background; then answers include everything.
    wait_until(lambda: service.predict_batch([query()])[0].prediction is not None, DRAINED_WITHIN)
    [later] = service.predict_batch([query()])
    assert later.metadata.sample_size == REQUEST_MAX_EVENTS + 500
    assert "backlog" not in (later.metadata.fallback_note or "")


def test_the_window_is_a_server_setting_with_a_flag_and_a_variable() -> None:
    from mosaicstack_telemetry_server.cli import build_parser, settings_from_args
    from mosaicstack_telemetry_server.runner import settings_from_env

    assert settings_from_env({}).stats_window_days == 14
    assert settings_from_env({"MOSAIC_TELEMETRY_STATS_WINDOW_DAYS": "0"}).stats_window_days == 0
    with pytest.raises(ValueError, match="MOSAIC_TELEMETRY_STATS_WINDOW_DAYS"):
        settings_from_env({"MOSAIC_TELEMETRY_STATS_WINDOW_DAYS": "9999"})
    args = build_parser().parse_args(["serve", "--stats-window-days", "30"])
    assert settings_from_args(args).stats_window_days == 30
    with pytest.raises(ValueError, match="window_days"):
        Recency(window_days=-1)


def test_recency_picks_the_window_and_reaches_back_only_for_quiet_groups() -> None:
    def key(model: str, day: str) -> BucketKey:
        return BucketKey("implementation", model, "anthropic", "low", day)

    sizes = [
        (key("busy", "2026-01-01"), 500),
        (key("busy", "2026-01-20"), 500),
        (key("quiet", "2026-01-01"), 60),
        (key("quiet", "2026-01-02"), 60),
        (key("quiet", "2026-01-19"), 50),
    ]
    chosen = choose_buckets(sizes, Recency(window_days=7, min_events=100))
    assert chosen == {
        key("busy", "2026-01-20"): 500,
        key("quiet", "2026-01-19"): 50,
        key("quiet", "2026-01-02"): 60,  # 50 in the window: back until 100
    }
    assert choose_buckets(sizes, Recency(window_days=0)) == dict(sizes)
    assert choose_buckets([], Recency()) == {}
    with pytest.raises(ValueError, match="min_events"):
        Recency(min_events=-1)


# Groups differing in each of the three dimensions: a window sum must keep them apart.
_GROUPS = (
    ("a", "anthropic", "low"),
    ("b", "anthropic", "low"),
    ("a", "openai", "low"),
    ("a", "anthropic", "high"),
    ("b", "openai", "high"),
)
_window_buckets = st.lists(
    st.tuples(st.integers(0, len(_GROUPS) - 1), st.integers(0, 40), st.integers(1, 80)),
    max_size=60,
    unique_by=lambda bucket: bucket[:2],
)


def _day(offset: int) -> str:
    return (DAY0 + timedelta(days=offset)).date().isoformat()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_window_buckets, st.sampled_from([0, 1, 3, 7, 14]), st.sampled_from([0, 1, 50, 100, 300]))
def test_the_database_chooses_the_window_as_recency_does(
    storage: Storage, buckets: list[tuple[int, int, int]], window_days: int, min_events: int
) -> None:
    # A task type of its own per example: the storage is shared by every example.
    task_type = f"window-{uuid.uuid4().hex[:12]}"
    rows = [
        BucketRow(
            BucketKey(task_type, *_GROUPS[g], _day(d)),
            size,
            b"\x02",
            None,
        )
        for g, d, size in buckets
    ]
    cursor = storage.event_cursor()
    moved = EventCursor(cursor.generation + 1, cursor.last_id, cursor.horizon, cursor.in_flight)
    assert storage.advance_events(cursor, moved, rows)
    chosen = storage.window_buckets(task_type, window_days, min_events)
    expected = choose_buckets(storage.bucket_sizes(task_type), Recency(window_days, min_events))
    assert dict(chosen) == expected
    assert len(chosen) == len(expected)


def test_with_the_refresher_running_a_backlog_wakes_it_and_requests_never_wait(
    storage: Storage, rng: random.Random
) -> None:
    service = PredictionService(storage, min_sample_size=5, stats_max_age_seconds=0)
    service.start_background(interval_seconds=30)
    try:
        storage.insert_events([event(rng) for _ in range(5)])
        wait_until(
            lambda: service.predict_batch([query()])[0].prediction is not None, DRAINED_WITHIN
        )
        storage.insert_events([event(rng) for _ in range(REQUEST_MAX_EVENTS + 1)])
        [during] = service.predict_batch([query()])
        # Served from the statistics there are (5 events), saying a backlog is summarized.
        assert during.metadata.sample_size == 5
        assert "backlog" in (during.metadata.fallback_note or "")
        wait_until(
            lambda: (
                service.predict_batch([query()])[0].metadata.sample_size == REQUEST_MAX_EVENTS + 6
            ),
            DRAINED_WITHIN,
        )
    finally:
        assert service.stop_background()


def test_rows_are_read_once_per_version_and_served_with_the_current_stamp(
    storage: Storage, rng: random.Random
) -> None:
    from mosaicstack_telemetry_server.predictions import row_cache

    reads: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(storage, name)

        def get_stats(self, keys: Any) -> Any:
            reads.append(len(keys))
            return storage.get_stats(keys)

    now = [DAY0]
    service = PredictionService(
        Counting(),  # type: ignore[arg-type]
        min_sample_size=5,
        stats_max_age_seconds=60,
        clock=lambda: now[0],
    )
    storage.insert_events([event(rng) for _ in range(5)])
    first = service.predict_batch([query(), query("unknown-model")])
    second = service.predict_batch([query(), query("unknown-model")])
    assert len(reads) == 1  # the second request: nothing read, not even the absent keys
    assert [r.prediction for r in first] == [r.prediction for r in second]
    now[0] += timedelta(seconds=60)  # max age, no new event: a re-stamp, same rows
    [restamped] = service.predict_batch([query()])
    assert len(reads) == 1
    assert restamped.metadata.last_updated == DAY0 + timedelta(seconds=60)
    storage.insert_events([event(rng) for _ in range(5)])
    now[0] += timedelta(seconds=60)
    [recomputed] = service.predict_batch([query()])
    assert len(reads) == 2
    assert recomputed.metadata.sample_size == 10
    cache = row_cache.RowCache(max_keys=1)
    keys = [
        StatsKey(0, TASK.value, "m", "anthropic", "medium"),
        StatsKey(3, TASK.value, "*", "*", "*"),
    ]
    assert len(cache.get(storage, keys, storage.stats_versions())) == 2  # over the bound: emptied


def test_postgres_a_long_transaction_elsewhere_does_not_grow_the_reread(
    postgres_url: str, rng: random.Random
) -> None:
    import psycopg

    storage = open_storage(postgres_url)
    storage.migrate()
    try:
        with psycopg.connect(postgres_url) as idle:
            # Holds the cluster's xmin back, as a forgotten session would.
            idle.execute("SELECT pg_current_xact_id()")
            for _ in range(3):
                storage.insert_events([event(rng) for _ in range(200)])
                catch_up(storage, lambda: DAY0, chunk=150, max_events=10**6)
            cursor = storage.event_cursor()
            # The idle transaction and whatever else runs on the cluster; not the 600 events.
            assert len(cursor.in_flight) < 50
            assert bucket_total(storage) == storage.count_events() == 600
            idle.rollback()
    finally:
        storage.close()


def test_a_read_that_takes_exactly_the_events_left_says_it_is_complete(
    storage: Storage, rng: random.Random
) -> None:
    storage.insert_events([event(rng) for _ in range(5)])
    cursor = storage.event_cursor()
    exactly = storage.read_new_events(cursor, 5)
    assert (len(exactly.rows), exactly.complete) == (5, True)
    short = storage.read_new_events(cursor, 4)
    assert (len(short.rows), short.complete) == (4, False)
    assert short.cursor.last_id < exactly.cursor.last_id


def test_a_request_folds_a_backlog_of_exactly_its_limit_and_answers_with_it(
    storage: Storage, rng: random.Random
) -> None:
    service = PredictionService(storage, min_sample_size=1, stats_max_age_seconds=0)
    storage.insert_events([event(rng) for _ in range(5)])
    service.predict_batch([query()])
    storage.insert_events([event(rng) for _ in range(REQUEST_MAX_EVENTS)])
    [answer] = service.predict_batch([query()])
    assert answer.metadata.sample_size == REQUEST_MAX_EVENTS + 5
    assert "backlog" not in (answer.metadata.fallback_note or "")


class BucketReads:
    """A real storage that counts the buckets read back (a test of what a refresh reads)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.read: list[BucketKey] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_buckets(self, keys: Sequence[BucketKey], *, exact: bool) -> dict[BucketKey, Any]:
        self.read += keys
        return self.inner.get_buckets(keys, exact=exact)


def test_a_refresh_reads_no_older_day_again_and_still_gives_the_full_numbers(
    storage: Storage, rng: random.Random
) -> None:
    counted = BucketReads(storage)
    service = PredictionService(
        counted,  # type: ignore[arg-type]
        min_sample_size=1,
        stats_max_age_seconds=0,
        recency=ALL_DAYS,
    )
    for day in range(4):
        storage.insert_events([event(rng, day=day, model=m) for m in "ab" for _ in range(30)])
    served(service, storage)
    storage.insert_events([event(rng, day=3, model=m) for m in "ab" for _ in range(30)])
    counted.read.clear()
    got = served(service, storage)
    # The fold reads the two newest buckets it adds to; the rebuild reads nothing more.
    assert sorted(k.model for k in counted.read) == ["a", "b"]
    assert all(k.day == "2026-09-04" for k in counted.read)
    full = {r.key: r for r in compute_partition_stats(storage.read_partition(TASK.value), DAY0)}
    level0 = StatsKey(0, TASK.value, "a", "anthropic", "medium")
    assert got[level0].stats == full[level0].stats
    # An event on an older day: that group (only) reads its days again and merges afresh.
    storage.insert_events([event(rng, day=1, model="a")])
    counted.read.clear()
    got = served(service, storage)
    assert {k.model for k in counted.read} == {"a"}
    assert {k.day for k in counted.read} == {f"2026-09-0{d}" for d in range(1, 5)}
    full = {r.key: r for r in compute_partition_stats(storage.read_partition(TASK.value), DAY0)}
    assert got[level0].stats == full[level0].stats
    assert got[level0].sample_size == 4 * 30 + 30 + 1


def test_kept_group_merges_stay_within_their_memory_bound() -> None:
    from mosaicstack_telemetry_server.predictions.buckets import BucketSummary
    from mosaicstack_telemetry_server.predictions.group_bases import GroupBases, summary_bytes

    rows = [
        ("implementation", "m", "anthropic", "medium", "2026-09-01", i, i, i, i, i, i, True, "x")
        for i in range(1, 101)
    ]
    [(key, summary)] = fold_events(rows).items()
    size = summary_bytes(summary)
    bases = GroupBases(max_bytes=2 * size)
    groups = [StatsKey(0, "implementation", m, "anthropic", "medium") for m in "abc"]
    older = {key: 100}
    bases.put(groups[0], older, summary)
    bases.put(groups[1], older, summary)
    assert bases.get(groups[0], older, exact=True) is summary
    assert bases.get(groups[0], {key: 99}, exact=False) is None  # another size: a miss
    bases.put(groups[2], older, summary)  # over the bound: the others are dropped
    assert bases.get(groups[0], older, exact=False) is None
    assert bases.get(groups[2], older, exact=False) is summary
    sketch_only = BucketSummary.merge([summary], keep_exact=False)
    bases.put(groups[2], older, sketch_only)
    assert bases.get(groups[2], older, exact=True) is None  # exact values asked, none kept
    GroupBases(max_bytes=size - 1).put(groups[0], older, summary)  # too big alone: not kept
