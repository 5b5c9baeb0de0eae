"""The daily rollups of usage: what they hold, and the statements that fold events into them.

`insert_events` only stores a batch; the rollups are folded in the background
(`usage_fold.py`, every process of a server runs one) from a cursor on the events table,
`usage_cursor`: one transaction reads up to `FOLD_LIMIT` events after the cursor, adds them to
the rollups and moves the cursor past them, so a reader's snapshot sees each event exactly once,
either after the cursor or folded. The usage queries (`_usage_sql.py`) read the rollups plus the
events after the cursor (the "tail"), so an answer is exact at every instant, folded or not, and
the fold's cost is paid by no request. Folds take turns: on SQLite the write lock, on PostgreSQL
a lock on the cursor's row; a crash mid-fold rolls its transaction back, cursor and rollups
alike. On PostgreSQL ids are drawn before commit, so the cursor also keeps the fold snapshot's
transactions in progress and its horizon, as the prediction cursor does
(`_postgres_summaries.py`): their events are re-read by the next fold and read as tail until
then. Folding in big groups is what makes the rollups cheap: a day's rows are upserted once per
fold rather than once per batch. Each table gets one `INSERT ... SELECT ... GROUP BY` over the
folded rows, summed in SQL (no Python per event or per row), upserted in key order. Migration
0006's backfill folds every stored event the same way.

The fold's cost grows with the number of cuboids, never the requests': more dimensions (issue
18) add cuboids to `CUBOIDS` and columns to `usage_daily`, and the background fold pays for
them while ingestion stays one insert per batch.

Two tables, keyed by UTC day and owner: an instance, or `ALL` for the sum of every instance,
so that an admin's answer reads as few rows as an instance's.
- `usage_daily`: cuboids, the sums by every set of at most three of `CATEGORICAL` (42 of them:
  the sums by nothing, `dims` = "", 6 single dimensions, 15 pairs and 20 triples), the values
  in `v1`..`v3` in `CATEGORICAL`'s order ("" where unused). Any `GET /v1/usage` question reads
  one cuboid: `instance_id` with two categorical dimensions reads the instances' pair rows.
- `usage_token_buckets`: per model and kind (input or output tokens), how many events fell in
  each logarithmic bucket (`token_sketch.py`), added to by `count = count + excluded.count`.
- `usage_token_blocks`: the same counts summed over aligned blocks of `BLOCK_DAYS` days (a
  block starts on a day whose days since 1970-01-01 are a multiple of `BLOCK_DAYS`), added to
  by the same fold; a block always holds the sum of the daily rows of its days. A 90-day
  token answer reads about 5 blocks and at most 30 days (about 2,500 rows a day for ALL).

A 90-day answer then reads 90 days of one cuboid's rows and the tail (what arrived since the
last fold, a fraction of a second's worth while the fold keeps up), whatever the number of
events.
"""

# Identifiers come only from CATEGORICAL and the Dialect constants; values are bound.
# ruff: noqa: S608

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Protocol

__all__ = [
    "ALL",
    "BLOCK_DAYS",
    "CATEGORICAL",
    "CUBOIDS",
    "FOLD_LIMIT",
    "MAX_CATEGORICAL",
    "SUM_NAMES",
    "RollupDialect",
    "block_start",
    "cuboid_for",
    "cuboids_statement",
    "token_blocks_statement",
    "token_buckets_statement",
]

# The instance_id of rows that sum every instance.
ALL = "*"
CATEGORICAL = ("task_type", "complexity", "harness", "model", "provider", "outcome")
# GET /v1/usage groups by at most three dimensions, so a cuboid needs at most three.
MAX_CATEGORICAL = 3
# Every set of at most three categorical dimensions, each in CATEGORICAL's order.
CUBOIDS: tuple[tuple[str, ...], ...] = tuple(
    cuboid
    for size in range(MAX_CATEGORICAL + 1)
    for cuboid in itertools.combinations(CATEGORICAL, size)
)
# Days summed by one row of usage_token_blocks.
BLOCK_DAYS = 16
# Most events one fold takes: one transaction stays a bounded amount of work (on SQLite it holds
# the write lock that ingestion waits for).
FOLD_LIMIT = 20_000
SUM_NAMES = (
    "tasks",
    "input_tokens",
    "output_tokens",
    "cost_usd_micros",
    "duration_ms",
    "successes",
    "gate_passes",
)


class RollupDialect(Protocol):
    """What the statements need of a backend's SQL (`_usage_sql.Dialect` provides it)."""

    @property
    def event_day(self) -> str: ...  # an event's UTC day, as the rollups store it
    @property
    def event_instance(self) -> str: ...  # an event's instance_id as the rollups' text
    @property
    def successes(self) -> str: ...  # count of events with outcome "success"
    @property
    def gate_passes(self) -> str: ...  # count of events that passed their quality gates
    @property
    def log_bucket(self) -> str: ...  # `token_sketch.bucket_of` of "{}", in SQL
    @property
    def block_of(self) -> str: ...  # the first day of the BLOCK_DAYS block of the day "{}"


_EPOCH = date(1970, 1, 1)


def block_start(day: date) -> date:
    """The first day of the block of `day` in usage_token_blocks."""
    return day - timedelta(days=(day - _EPOCH).days % BLOCK_DAYS)


def cuboid_for(categorical: Sequence[str]) -> tuple[str, ...]:
    """The cuboid holding sums by exactly these categorical dimensions (ValueError: too many)."""
    if len(categorical) > MAX_CATEGORICAL:
        raise ValueError(f"usage sums take at most {MAX_CATEGORICAL} categorical dimensions")
    return tuple(name for name in CATEGORICAL if name in categorical)


def _add(names: Sequence[str]) -> str:
    return ", ".join(f"{name} = u.{name} + excluded.{name}" for name in names)


# Each smaller cuboid is summed from one a dimension larger (few rows) rather than from the
# events: a fold groups its events 20 times (the triples), not 42. The dimension added is the
# one with the fewest values, so the parent is small.
_FEWEST_VALUES_FIRST = ("harness", "outcome", "complexity", "provider", "model", "task_type")


def _parent(cuboid: tuple[str, ...]) -> tuple[str, ...]:
    extra = next(name for name in _FEWEST_VALUES_FIRST if name not in cuboid)
    return cuboid_for([*cuboid, extra])


def _grouped(
    dialect: RollupDialect, cuboid: tuple[str, ...], names: dict[tuple[str, ...], str]
) -> str:
    """The cuboid's sums per day and instance: from the events, or from its parent cuboid."""
    keys = ", ".join(["day", "instance_id", *cuboid])
    if len(cuboid) == MAX_CATEGORICAL:
        sums = (
            "count(*) AS tasks, sum(actual_input_tokens) AS input_tokens, "
            "sum(actual_output_tokens) AS output_tokens, "
            "sum(actual_cost_usd_micros) AS cost_usd_micros, sum(task_duration_ms) AS duration_ms, "
            f"{dialect.successes} AS successes, {dialect.gate_passes} AS gate_passes"
        )
        source = "new"
    else:
        sums = ", ".join(f"sum({name}) AS {name}" for name in SUM_NAMES)
        source = names[_parent(cuboid)]
    return f"{names[cuboid]} AS MATERIALIZED (SELECT {keys}, {sums} FROM {source} GROUP BY {keys})"  # nosec B608


def cuboids_statement(dialect: RollupDialect, source: str) -> str:
    """Add the events selected by `source` (a condition on `events`, with the caller's
    parameters) to every cuboid of `usage_daily`, for their instance and for ALL."""
    new = (
        f"new AS MATERIALIZED (SELECT {dialect.event_day} AS day, "  # nosec B608
        f"{dialect.event_instance} AS instance_id, {', '.join(CATEGORICAL)}, "
        "actual_input_tokens, actual_output_tokens, actual_cost_usd_micros, task_duration_ms, "
        f"quality_gate_passed FROM events WHERE {source})"
    )
    names = {cuboid: f"c{index}" for index, cuboid in enumerate(CUBOIDS)}
    # Largest first: each CTE names only ones before it.
    ctes = [new, *(_grouped(dialect, c, names) for c in sorted(CUBOIDS, key=len, reverse=True))]
    sums = ", ".join(SUM_NAMES)
    total = ", ".join(f"sum({name})" for name in SUM_NAMES)
    branches = []
    for cuboid in CUBOIDS:
        values = ", ".join([*cuboid, *(["''"] * (MAX_CATEGORICAL - len(cuboid)))])
        dims, table = ",".join(cuboid), names[cuboid]
        branches += [
            f"SELECT '{dims}', day, instance_id, {values}, {sums} FROM {table}",  # nosec B608
            f"SELECT '{dims}', day, '{ALL}', {values}, {total} FROM {table} "  # nosec B608
            f"GROUP BY {', '.join(['day', *cuboid])}",
        ]
    key = "dims, day, instance_id, v1, v2, v3"
    return (
        f"WITH {', '.join(ctes)} INSERT INTO usage_daily AS u ({key}, {sums}) "  # nosec B608
        f"SELECT * FROM ({' UNION ALL '.join(branches)}) AS added WHERE true "
        f"ORDER BY 1, 2, 3, 4, 5, 6 ON CONFLICT ({key}) DO UPDATE SET {_add(SUM_NAMES)}"
    )


def token_buckets_statement(dialect: RollupDialect, source: str) -> str:
    """Add the events selected by `source` to `usage_token_buckets`, for their instance and
    for ALL."""
    return _token_statement(dialect, source, "usage_token_buckets", "day", dialect.event_day)


def token_blocks_statement(dialect: RollupDialect, source: str) -> str:
    """Add the events selected by `source` to `usage_token_blocks`, for their instance and
    for ALL."""
    block = dialect.block_of.format(dialect.event_day)
    return _token_statement(dialect, source, "usage_token_blocks", "block_start", block)


def _token_statement(
    dialect: RollupDialect, source: str, table: str, period: str, period_of_event: str
) -> str:
    bucket = dialect.log_bucket
    new = (
        f"WITH new AS MATERIALIZED (SELECT {period_of_event} AS {period}, "  # nosec B608
        f"{dialect.event_instance} AS instance_id, model, "
        f"{bucket.format('actual_input_tokens')} AS input_bucket, "
        f"{bucket.format('actual_output_tokens')} AS output_bucket FROM events WHERE {source}) "
    )
    branches = [
        f"SELECT {owner}, {period}, model, '{kind}', {kind}_bucket, count(*) FROM new "  # nosec B608
        f"GROUP BY {', '.join([*keys, period, 'model', f'{kind}_bucket'])}"
        for kind in ("input", "output")
        for owner, keys in (("instance_id", ["instance_id"]), (f"'{ALL}'", []))
    ]
    key = f"instance_id, {period}, model, kind, bucket"
    return (
        f"{new}INSERT INTO {table} AS u ({key}, count) "  # nosec B608
        f"SELECT * FROM ({' UNION ALL '.join(branches)}) AS added WHERE true "
        f"ORDER BY 1, 2, 3, 4, 5 ON CONFLICT ({key}) DO UPDATE SET {_add(['count'])}"
    )
