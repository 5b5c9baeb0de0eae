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
fold rather than once per batch. A fold's rows are summed by `_rollup_fold.py` (vector steps,
not one `GROUP BY` per cuboid) and added by one upsert per table (`upsert_statements`,
`count = count + excluded.count`). Migration 0006's backfill folds every stored event the same
way.

The fold's cost grows with the number of cuboids, never the requests': more dimensions (issue
18) add cuboids to `CUBOIDS` and columns to `usage_daily`, and the background fold pays for
them while ingestion stays one insert per batch.

Two tables, keyed by UTC day and owner: an instance, or `ALL` for the sum of every instance,
so that an admin's answer reads as few rows as an instance's.
- `usage_daily`: cuboids, the sums by every set of at most three of `CATEGORICAL` (130 of
  them since migration 0011 added project, branch and user: the sums by nothing, `dims` = "",
  9 single dimensions, 36 pairs and 84 triples; 42 before), the values in `v1`..`v3` in
  `CATEGORICAL`'s order ("" where unused, and "" for an event without that attribution).
  Any `GET /v1/usage` question reads one cuboid: `instance_id` with two categorical
  dimensions reads the instances' pair rows; a filter (`project=`) is one more dimension of
  the cuboid, its value bound on its slot.
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

# Identifiers come only from the fixed table and column names below; values are bound.

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any

__all__ = [
    "ALL",
    "BLOCK_DAYS",
    "CATEGORICAL",
    "CUBOIDS",
    "FOLD_LIMIT",
    "LEGACY_CATEGORICAL",
    "LEGACY_SUMS",
    "MAX_CATEGORICAL",
    "NULLABLE",
    "SUM_NAMES",
    "block_start",
    "check_fold_limit",
    "cuboid_for",
    "legacy_daily",
    "upsert_statements",
]

# The instance_id of rows that sum every instance.
ALL = "*"
# The last three are schema 1.1's attribution (migration 0011), by column name (`user` is
# `user_name`). An event without one is summed under "" in its slot: a real value has 1 to 200
# characters, so "" is never one, and a slot's use is told by `dims`, not by its value (the
# unused slots of smaller cuboids hold "" too). Readers turn it back into NULL.
CATEGORICAL = (
    "task_type",
    "complexity",
    "harness",
    "model",
    "provider",
    "outcome",
    "project",
    "branch",
    "user_name",
)
# Attribution dimensions: NULL on events without the field (every 1.0 event).
NULLABLE = ("project", "branch", "user_name")
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
# Most events one fold takes: one transaction stays a bounded amount of work (on SQLite its
# upserts hold the write lock that ingestion waits for, about 1.5 s for this many spread over
# many days). Big folds are cheap folds: the demo's events (8 instances over 14 days) add about
# 10 rollup rows each in a fold of 20,000, 4 in one of 80,000, as more of them share a row.
FOLD_LIMIT = 50_000
SUM_NAMES = (
    "tasks",
    "input_tokens",
    "output_tokens",
    "cost_usd_micros",
    "duration_ms",
    "successes",
    "gate_passes",
    # Schema 1.1's counts (migration 0011), 0 for an event without the field.
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
# The sums of usage_daily before migration 0011 (what a fold writes while migrating to 6-10).
LEGACY_SUMS = len(SUM_NAMES) - 3
LEGACY_CATEGORICAL = CATEGORICAL[:6]


_EPOCH = date(1970, 1, 1)


def block_start(day: date) -> date:
    """The first day of the block of `day` in usage_token_blocks."""
    return day - timedelta(days=(day - _EPOCH).days % BLOCK_DAYS)


def check_fold_limit(limit: int) -> int:
    """`limit` if it is a chunk one fold may take (1 to FOLD_LIMIT), else ValueError."""
    if not 1 <= limit <= FOLD_LIMIT:
        raise ValueError(f"a fold takes 1 to {FOLD_LIMIT} events")
    return limit


def cuboid_for(categorical: Sequence[str]) -> tuple[str, ...]:
    """The cuboid holding sums by exactly these categorical dimensions (ValueError: too many)."""
    if len(categorical) > MAX_CATEGORICAL:
        raise ValueError(f"usage sums take at most {MAX_CATEGORICAL} categorical dimensions")
    return tuple(name for name in CATEGORICAL if name in categorical)


def _add(names: Sequence[str]) -> str:
    return ", ".join(f"{name} = u.{name} + excluded.{name}" for name in names)


# The rows `_rollup_fold.fold_rows` computes, per table: (table, key columns, summed columns).
_TABLES = (
    ("usage_daily", ("dims", "day", "instance_id", "v1", "v2", "v3"), SUM_NAMES),
    ("usage_token_buckets", ("instance_id", "day", "model", "kind", "bucket"), ("count",)),
    ("usage_token_blocks", ("instance_id", "block_start", "model", "kind", "bucket"), ("count",)),
)


def legacy_daily(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """A fold's usage_daily rows as a schema 6 to 10 table holds them: the cuboids of the six
    dimensions it knew, without the sums 0011 added (migrations 0006 and 0009 fold events
    while a database is migrated to them; one migrated on to 0011 is refolded there)."""
    legacy = {",".join(cuboid) for cuboid in CUBOIDS if set(cuboid) <= set(LEGACY_CATEGORICAL)}
    width = 6 + LEGACY_SUMS
    return [row[:width] for row in rows if row[0] in legacy]


def upsert_statements(
    values: Callable[[tuple[str, ...]], str], *, legacy: bool = False
) -> tuple[str, str, str]:
    """Add rows to usage_daily, usage_token_buckets and usage_token_blocks: one statement per
    table, its rows given by `values` (the columns' names -> "VALUES (...)" or a SELECT);
    `legacy`: to usage_daily without 0011's sums."""
    statements = []
    for table, key, all_sums in _TABLES:
        sums = all_sums[:LEGACY_SUMS] if legacy and table == "usage_daily" else all_sums
        columns = (*key, *sums)
        statements.append(
            f"INSERT INTO {table} AS u ({', '.join(columns)}) {values(columns)} "  # nosec B608
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {_add(sums)}"
        )
    return statements[0], statements[1], statements[2]
