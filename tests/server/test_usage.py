"""Usage sums and token percentiles against plain arithmetic on generated events, both backends.

The ranges hypothesis draws include UTC midnights (whole days from the rollups), instants inside
days (edges summed from the events) and the exact timestamps of events (`from` inclusive, `to`
exclusive); the events cross a month, a year and an ISO week that straddles the year.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from _storage_helpers import INSTANCE, OTHER_INSTANCE
from _usage_helpers import FIRST, LAST, expected_usage, generated_events, postgres_base_url
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server.storage import Storage, open_storage
from mosaicstack_telemetry_server.token_sketch import (
    LN_GAMMA,
    RELATIVE_ACCURACY,
    bucket_of,
    bucket_value,
    quantile,
)
from mosaicstack_telemetry_server.usage import (
    GROUP_BY,
    UsageReport,
    UsageTotals,
    check_group_by,
    query_token_percentiles,
    query_usage,
)

EVENTS = generated_events(900, seed=9)
_MIDNIGHTS = [FIRST + timedelta(days=n) for n in range(-2, (LAST - FIRST).days + 3)]
_instants = st.one_of(
    st.sampled_from(_MIDNIGHTS),
    st.sampled_from([event.timestamp for event in EVENTS]),
    st.datetimes(
        min_value=(FIRST - timedelta(days=2)).replace(tzinfo=None),
        max_value=(LAST + timedelta(days=2)).replace(tzinfo=None),
        timezones=st.just(UTC),
    ),
)
# Midnights at, just before and just after every 16-day token block's first day.
_BLOCK_EDGES = [
    day + timedelta(days=shift)
    for day in _MIDNIGHTS
    if (day.date() - date(1970, 1, 1)).days % 16 == 0
    for shift in (-1, 0, 1)
]
_block_instants = st.one_of(st.sampled_from(_BLOCK_EDGES), _instants)
_group_bys = st.lists(st.sampled_from(GROUP_BY), unique=True, max_size=3)
# Attribution filters: values the events hold (see `generated_events`) and one none holds.
_filters = st.fixed_dictionaries(
    {},
    optional={
        "project": st.sampled_from(["acme/billing", "widgets", "nobody/none"]),
        "branch": st.sampled_from(["main", "fix/ünïcode-paths"]),
        "user": st.sampled_from(["dana", "lee@example.com"]),
    },
)
_instance_ids = st.sampled_from([None, INSTANCE, OTHER_INSTANCE, uuid.uuid4()])


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Storage]:
    """One database per backend holding EVENTS, shared by the module's read-only tests."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('usage') / 'telemetry.db'}"
        storage = open_storage(url)
        try:
            yield _load(storage)
        finally:
            storage.close()
        return
    import psycopg

    base = postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    storage = open_storage(f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}")
    try:
        yield _load(storage)
    finally:
        storage.close()
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _load(storage: Storage) -> Storage:
    storage.migrate()
    # Two thirds folded into the rollups, the rest pending: answers must add both.
    assert storage.insert_events(EVENTS[:600]) == 600
    assert storage.fold_pending_usage() == 600
    assert storage.insert_events(EVENTS) == len(EVENTS) - 600
    assert storage.insert_events(EVENTS[:100]) == 0  # a resend adds nothing
    return storage


def _same_sums(actual: UsageTotals, sums: dict[str, int]) -> None:
    tasks = sums.get("tasks", 0)
    for name in ("tasks", "input_tokens", "output_tokens", "cost_usd_micros", "duration_ms"):
        assert getattr(actual, name) == sums.get(name, 0), name
    assert actual.successes == sums.get("successes", 0)
    for name in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
        assert getattr(actual, name) == sums.get(name, 0), name
    rates = {"success_rate": "successes", "gate_pass_rate": "gate_passes"}
    for rate, count in rates.items():
        assert getattr(actual, rate) == (round(sums[count] / tasks, 4) if tasks else 0.0)


def _check(report: UsageReport, events: list[TaskCompletionEvent], **query: object) -> None:
    groups, totals = expected_usage(events, **query)  # type: ignore[arg-type]
    got = {tuple(group.key[name] for name in report.group_by): group for group in report.groups}
    assert set(got) == set(groups)
    keys = [tuple(group.key.values()) for group in report.groups]
    # Ascending by key values in group_by order, null (a missing attribution) first.
    assert keys == sorted(keys, key=lambda key: [(v is not None, v or "") for v in key])
    for key, sums in groups.items():
        _same_sums(got[key], sums)
    _same_sums(report.totals, totals)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=_instants,
    end=_instants,
    group_by=_group_bys,
    instance_id=_instance_ids,
    filters=_filters,
)
def test_usage_sums_equal_plain_arithmetic_for_every_group_by_filter_and_range_edge(
    loaded: Storage,
    start: datetime,
    end: datetime,
    group_by: list[str],
    instance_id: uuid.UUID | None,
    filters: dict[str, str],
) -> None:
    query = {
        "instance_id": instance_id,
        "start": start,
        "end": end,
        "group_by": group_by,
        "filters": filters,
    }
    report = query_usage(loaded, **query)  # type: ignore[arg-type]
    _check(report, EVENTS, **query)


def test_from_is_inclusive_and_to_exclusive_to_the_microsecond(loaded: Storage) -> None:
    event = next(e for e in EVENTS if e.timestamp.microsecond and e.instance_id == INSTANCE)
    at, tick = event.timestamp, timedelta(microseconds=1)
    mine = [e for e in EVENTS if e.instance_id == INSTANCE]
    at_that_instant = sum(e.timestamp == at for e in mine)
    included = query_usage(loaded, instance_id=INSTANCE, start=at, end=at + tick, group_by=[])
    assert included.totals.tasks == at_that_instant >= 1
    assert [group.key for group in included.groups] == [{}]
    excluded = query_usage(loaded, instance_id=INSTANCE, start=at - tick, end=at, group_by=[])
    assert excluded.totals.tasks == sum(e.timestamp == at - tick for e in mine) == 0
    assert excluded.groups == []


def test_a_range_of_whole_days_matches_one_with_edges_cut_at_midnight(loaded: Storage) -> None:
    start, end = datetime(2025, 12, 28, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC)
    report = query_usage(loaded, instance_id=None, start=start, end=end, group_by=["week"])
    assert [group.key["week"] for group in report.groups] == ["2025-W52", "2026-W01"]
    _check(report, EVENTS, instance_id=None, start=start, end=end, group_by=["week"])


def test_an_empty_range_has_no_groups_and_zero_totals(loaded: Storage) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    report = query_usage(
        loaded, instance_id=None, start=start, end=start + timedelta(days=3), group_by=[]
    )
    assert report.groups == []
    assert report.totals.tasks == 0
    assert report.totals.success_rate == 0.0
    inverted = query_usage(loaded, instance_id=None, start=start, end=start, group_by=["day"])
    assert inverted.groups == []


def test_query_usage_refuses_an_unknown_or_repeated_dimension(loaded: Storage) -> None:
    with pytest.raises(ValueError, match="unknown group_by 'colour'"):
        query_usage(loaded, instance_id=None, start=FIRST, end=LAST, group_by=["colour"])
    with pytest.raises(ValueError, match="at most once"):
        check_group_by(["day", "day"])
    with pytest.raises(ValueError, match="at most 3"):
        check_group_by(["day", "model", "harness", "outcome"])
    with pytest.raises(ValueError, match="distinct names"):
        loaded.sum_usage(instance_id=None, start=FIRST, end=LAST, dimensions=["week"])
    with pytest.raises(ValueError, match="usage filters are project, branch, user"):
        query_usage(
            loaded,
            instance_id=None,
            start=FIRST,
            end=LAST,
            group_by=[],
            filters={"model": "gpt-5"},
        )
    with pytest.raises(ValueError, match="usage filters must be names"):
        loaded.sum_usage(
            instance_id=None, start=FIRST, end=LAST, dimensions=[], filters={"day": "x"}
        )


def test_more_than_three_dimensions_with_filters_are_summed_from_the_events(
    loaded: Storage,
) -> None:
    # No cuboid holds three group_by dimensions and a fourth filtered on: the whole range is
    # read from the events, and still equals plain arithmetic (whole days and edges alike).
    start, end = FIRST + timedelta(hours=5), LAST - timedelta(hours=7)
    for group_by, filters in (
        (["model", "branch", "user"], {"project": "acme/billing"}),
        (["task_type", "complexity", "harness"], {"project": "widgets", "user": "dana"}),
        (["project", "branch", "outcome"], {"user": "lee@example.com"}),
    ):
        query = {
            "instance_id": None,
            "start": start,
            "end": end,
            "group_by": group_by,
            "filters": filters,
        }
        report = query_usage(loaded, **query)  # type: ignore[arg-type]
        assert report.totals.tasks > 0
        _check(report, EVENTS, **query)
    four = ["task_type", "complexity", "harness", "model"]
    rows = loaded.sum_usage(instance_id=None, start=FIRST, end=LAST, dimensions=four)
    assert sum(row.tasks for row in rows) == sum(FIRST <= e.timestamp < LAST for e in EVENTS)


def test_events_without_an_attribution_group_under_null_first(loaded: Storage) -> None:
    report = query_usage(
        loaded, instance_id=None, start=FIRST, end=LAST, group_by=["project", "user"]
    )
    first = report.groups[0]
    assert first.key == {"project": None, "user": None}
    legacy = [e for e in EVENTS if e.project is None and e.user is None and e.timestamp < LAST]
    assert first.tasks == len(legacy)
    assert report.model_dump(mode="json")["groups"][0]["key"] == {"project": None, "user": None}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(start=_instants, end=_instants, instance_id=_instance_ids)
def test_token_percentiles_are_within_one_percent_of_the_event_at_each_rank(
    loaded: Storage, start: datetime, end: datetime, instance_id: uuid.UUID | None
) -> None:
    found = query_token_percentiles(loaded, instance_id=instance_id, start=start, end=end)
    selected = [
        e for e in EVENTS if start <= e.timestamp < end and instance_id in (None, e.instance_id)
    ]
    models = sorted({e.model for e in selected})
    assert [row.model for row in found] == models
    for row in found:
        mine = [e for e in selected if e.model == row.model]
        assert row.tasks == len(mine)
        for field, attribute in (
            ("input_tokens", "actual_input_tokens"),
            ("output_tokens", "actual_output_tokens"),
        ):
            values = sorted(getattr(e, attribute) for e in mine)
            percentiles = getattr(row, field)
            for q, got in ((0.1, percentiles.p10), (0.5, percentiles.p50), (0.9, percentiles.p90)):
                want = values[math.floor(q * (len(values) - 1))]
                # Within 1% of the real value, then rounded to a whole token.
                assert abs(got - want) <= RELATIVE_ACCURACY * want + 0.5, (q, got, want)


def test_token_sketch_mapping_keeps_every_value_within_one_percent() -> None:
    assert math.log((1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)) == LN_GAMMA
    assert bucket_of(0) == -1
    assert bucket_value(-1) == 0
    for tokens in [*range(1, 3000), 10**6, 10**7, 123_456_789]:
        value = bucket_value(bucket_of(tokens))
        assert abs(value - tokens) <= RELATIVE_ACCURACY * tokens + 0.5, tokens
    for tokens in range(1, 50):  # buckets narrower than a token: exact
        assert bucket_value(bucket_of(tokens)) == tokens
    assert quantile({}, 0.5) == 0
    assert quantile({bucket_of(100): 1, bucket_of(1000): 1}, 0.0) == 100
    assert quantile({bucket_of(100): 1, bucket_of(1000): 1}, 1.0) == bucket_value(bucket_of(1000))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(start=_block_instants, end=_block_instants, instance_id=_instance_ids)
@example(start=_MIDNIGHTS[0], end=_MIDNIGHTS[-1], instance_id=None)  # whole blocks and days
@example(start=_BLOCK_EDGES[1], end=_BLOCK_EDGES[4], instance_id=INSTANCE)  # one block exactly
def test_token_buckets_equal_a_recount_for_ranges_with_and_without_whole_blocks(
    loaded: Storage, start: datetime, end: datetime, instance_id: uuid.UUID | None
) -> None:
    found = loaded.token_buckets(instance_id=instance_id, start=start, end=end)
    expected: Counter[tuple[str, str, int]] = Counter()
    for e in EVENTS:
        if start <= e.timestamp < end and instance_id in (None, e.instance_id):
            expected[(e.model, "input", bucket_of(e.actual_input_tokens))] += 1
            expected[(e.model, "output", bucket_of(e.actual_output_tokens))] += 1
    assert {(r.model, r.kind, r.bucket): r.count for r in found} == expected
    assert [(r.model, r.kind, r.bucket) for r in found] == sorted(expected)
