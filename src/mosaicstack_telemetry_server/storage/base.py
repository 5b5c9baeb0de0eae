"""The one small interface every storage backend implements.

Backends: `sqlite.py` (embedded default) and `postgres.py`. Every method is synchronous and
thread-safe; the app calls them from its worker threads. SQL uses bound parameters only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server.storage._otlp_base import OtlpStore

__all__ = [
    "USAGE_DIMENSIONS",
    "WILDCARD",
    "ApiKeyRecord",
    "BucketKey",
    "BucketRow",
    "EventCursor",
    "KeyRole",
    "NewEvents",
    "PartitionSnapshot",
    "PruneCount",
    "StatsKey",
    "StatsRow",
    "Storage",
    "StorageError",
    "TokenBucketRow",
    "TokenPercentileRow",
    "UsageRow",
]

# Stands for a dimension dropped at a fallback level, in stats keys (NULL would defeat
# unique indexes).
WILDCARD = "*"

# An instance key submits and reads its own instance's events; an admin key belongs to no
# instance, reads every instance's usage and may ask for predictions, but submits nothing.
KeyRole = Literal["instance", "admin"]

# What usage can be summed by in storage (the daily rollups' key); week and month are derived
# from day by the caller.
USAGE_DIMENSIONS = (
    "day",
    "instance_id",
    "task_type",
    "complexity",
    "harness",
    "model",
    "provider",
    "outcome",
    # Schema 1.1's attribution, by column name; NULL (None in a key) on events without it.
    "project",
    "branch",
    "user_name",
)


class StorageError(Exception):
    """The storage backend could not do what was asked (unreachable, broken schema...)."""


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key as stored: never the key itself, only its hash and who it belongs to."""

    key_id: str  # short public identifier, safe to print and to log
    instance_id: UUID | None  # None for an admin key, and only for one
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
    # Hex SHA-256 of the key, for the verifier's constant-time check; never shown (not in
    # repr, not listed by the CLI). Defaulted so records built without it still construct.
    key_hash: str = field(default="", repr=False)
    role: KeyRole = "instance"

    @property
    def is_active(self) -> bool:
        """Whether the key may still authenticate."""
        return self.revoked_at is None

    @property
    def is_admin(self) -> bool:
        """Whether this is an admin key (bound to no instance)."""
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class StatsKey:
    """One group of the fallback chain: dropped dimensions are `WILDCARD`."""

    level: int
    task_type: str
    model: str
    provider: str
    complexity: str


@dataclass(frozen=True, slots=True)
class StatsRow:
    """Precomputed statistics of one group."""

    key: StatsKey
    sample_size: int
    stats: dict[str, Any]  # PredictionData.model_dump(mode="json")
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class PartitionSnapshot:
    """All events of one task type, read in one consistent snapshot with its data version.

    `rows` are tuples of: model, provider, complexity, actual_input_tokens,
    actual_output_tokens, actual_cost_usd_micros, task_duration_ms, estimated_input_tokens,
    estimated_output_tokens, quality_gate_passed (bool), outcome (str).
    """

    task_type: str
    version: int
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Sums over the events of one group: `key` holds the text of each dimension asked for
    (day as "2026-11-30", instance_id as a UUID's text; None for events without an
    attribution), in the order asked."""

    key: tuple[str | None, ...]
    tasks: int
    input_tokens: int
    output_tokens: int
    cost_usd_micros: int
    duration_ms: int
    successes: int
    gate_passes: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TokenBucketRow:
    """How many events of a model fell in one logarithmic token bucket (see usage.py).

    `kind` is "input" or "output"; bucket -1 holds events with zero tokens.
    """

    model: str
    kind: str
    bucket: int
    count: int


@dataclass(frozen=True, slots=True)
class TokenPercentileRow:
    """Exact p10, p50 and p90 of one model's input and of its output tokens over a sample of
    `events` events (linear interpolation between the closest ranks, as `percentile_cont`)."""

    model: str
    events: int
    input_tokens: tuple[float, float, float]
    output_tokens: tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class BucketKey:
    """One level-0 group of the fallback chain on one UTC day (of the events' timestamps)."""

    task_type: str
    model: str
    provider: str
    complexity: str
    day: str  # YYYY-MM-DD


@dataclass(frozen=True, slots=True)
class BucketRow:
    """The stored summary of one bucket's events (see `predictions/buckets.py`).

    `sketch` holds the counts and every metric's sketch; `exact` the values themselves while
    the bucket has at most 10,000 events (else None; also None when not asked for).
    """

    key: BucketKey
    sample_size: int
    sketch: bytes
    exact: bytes | None


@dataclass(frozen=True, slots=True)
class EventCursor:
    """How far the prediction summaries have read the events table.

    Every event with an id <= `last_id` has been read, except, on PostgreSQL, events of
    transactions still in flight when it was read (ids are drawn before commit, so they can
    commit out of order): those are the transactions in `in_flight` (the reading snapshot's
    xip list) or at or after `horizon` (its xmax), xid8s as text, and are read later. SQLite
    has one writer at a time, so there ids commit in order and both stay empty.
    """

    generation: int  # bumped by every advance: a compare-and-set between processes
    last_id: int
    horizon: str | None = None
    in_flight: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NewEvents:
    """Events not read yet, and the cursor and data versions after reading them.

    `rows` are tuples of: task_type, model, provider, complexity, day (YYYY-MM-DD of the
    timestamp, UTC), actual_input_tokens, actual_output_tokens, actual_cost_usd_micros,
    task_duration_ms, estimated_input_tokens, estimated_output_tokens, quality_gate_passed
    (bool), outcome (str). `versions` are the data versions of the same snapshot, and
    `complete` says whether the read reached its end (no event was left for lack of room).
    """

    rows: list[tuple[Any, ...]]
    cursor: EventCursor
    versions: dict[str, int]
    complete: bool


@dataclass(frozen=True, slots=True)
class PruneCount:
    """The events a prune would delete: how many, on how many UTC days, the first and last."""

    events: int
    days: int
    first_day: date | None
    last_day: date | None


class Lease(Protocol):
    """A lock one holder at a time: tried with `try_acquire`, held until `release` (or until
    its holder ends)."""

    def try_acquire(self) -> bool:
        """Take it unless another holder has it (never waits); True once held."""

    def release(self) -> None:
        """Give it back, if held, and free what holding it took (idempotent)."""


class Storage(OtlpStore, Protocol):
    """What the server needs from a database."""

    def migrate(self, target: int | None = None) -> None:
        """Create or upgrade the schema to `target` (default: the latest version); idempotent.

        Safe when several processes migrate at once; raises StorageError when the database
        was migrated by a newer server than this one.
        """

    def schema_version(self) -> int:
        """The schema version currently applied."""

    def latest_schema_version(self) -> int:
        """The schema version this server's migrations reach (what `migrate()` applies)."""

    def probe_write(self) -> None:
        """Commit a real write that changes nothing, or raise StorageError (for /readyz)."""

    def ping(self) -> bool:
        """Whether the database answers right now (never raises)."""

    def close(self) -> None:
        """Release connections."""

    def start_maintenance(self) -> None:
        """Start the backend's own background upkeep, for a server's life (SQLite: the WAL
        checkpointer; PostgreSQL: none, the database does its own)."""

    def stop_maintenance(self, timeout: float | None = 5.0) -> bool:
        """Stop that upkeep after a last round; True when it stopped within `timeout`."""

    # events
    def insert_events(self, events: Sequence[TaskCompletionEvent]) -> int:
        """Store events in one transaction, skipping any whose (instance_id, event_id) exists.

        Bumps the data version of each task type that got a new row, in the same transaction.
        Returns how many rows were newly stored.
        """

    def get_event(self, instance_id: UUID, event_id: UUID) -> TaskCompletionEvent | None:
        """The stored event with this id from this instance, or None."""

    def count_events(self) -> int:
        """Number of stored events."""

    # api keys
    def create_api_key(
        self,
        *,
        key_id: str,
        key_hash: str,
        instance_id: UUID | None,
        label: str | None,
        role: KeyRole = "instance",
    ) -> ApiKeyRecord:
        """Store a new key's hash (hex SHA-256): an instance key bound to `instance_id`, or an
        admin key (`instance_id` None). ValueError when role and instance_id disagree."""

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The key with this hash, revoked or not, or None."""

    def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, oldest first."""

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key; False if no active key has that id."""

    # prediction statistics
    def partition_versions(self) -> dict[str, int]:
        """Data version of each task type that has events (bumped on every insert)."""

    def stats_versions(self) -> dict[str, tuple[int, datetime]]:
        """For each task type with stored statistics: the data version and time they reflect."""

    def read_partition(self, task_type: str) -> PartitionSnapshot:
        """Every event of a task type plus its data version, from one snapshot."""

    def replace_stats(
        self, task_type: str, version: int, computed_at: datetime, rows: Sequence[StatsRow]
    ) -> bool:
        """Atomically replace the statistics of a task type, unless newer ones are stored.

        Returns False (and changes nothing) when statistics of a version >= `version` exist.
        """

    def touch_stats(self, task_type: str, version: int, computed_at: datetime) -> bool:
        """Re-stamp a task type's statistics as reflecting every event at `computed_at`.

        Sets `computed_at` on its `stats_versions` entry and on all its statistics rows, in
        one transaction, only if the stored statistics are of exactly `version` and stamped
        earlier than `computed_at` (compare-and-set: newer statistics, or a later stamp by
        another process, are never overwritten). Returns whether it re-stamped them.
        """

    def get_stats(self, keys: Sequence[StatsKey]) -> dict[StatsKey, StatsRow]:
        """The stored statistics of the groups asked for (absent groups are left out)."""

    def stats_at_level(self, level: int) -> list[StatsRow]:
        """The stored statistics of every group of one fallback level, every task type."""

    # usage (daily rollups, folded in the background from a cursor on the events)
    def sum_usage(
        self,
        *,
        instance_id: UUID | None,
        start: datetime,
        end: datetime,
        dimensions: Sequence[str],
        filters: Mapping[str, str] | None = None,
    ) -> list[UsageRow]:
        """Sums over events with `start <= timestamp < end` (of one instance, or all when
        None) whose `filters` columns (categorical names of USAGE_DIMENSIONS) equal their
        values, grouped by `dimensions` (a subset of USAGE_DIMENSIONS), groups in no order.

        Whole UTC days come from the daily rollups and their events after the fold's cursor
        (by id); only the partial days at the edges are read from the events (by an index).
        """

    def usage_waiting(self, limit: int) -> int:
        """How many events the usage cursor has not passed, up to `limit` (one read; SQLite gives
        an upper bound from the ids, which counts ids a resent event left unused)."""

    def fold_pending_usage(self, min_events: int = 1, limit: int = 50_000) -> int:
        """Fold up to `limit` (1 to FOLD_LIMIT, ValueError else) of the events after the usage
        cursor into the rollups and move the cursor past them, in one transaction, unless fewer
        than `min_events` are there; returns how many it folded (the background `UsageFolder`
        calls it; answers count unfolded events either way)."""

    def token_buckets(
        self, *, instance_id: UUID | None, start: datetime, end: datetime
    ) -> list[TokenBucketRow]:
        """Per model, the logarithmic histograms of input and output tokens of the events
        with `start <= timestamp < end` (rollups for whole days, events for the edges)."""

    def project_token_percentiles(
        self,
        *,
        instance_id: UUID | None,
        start: datetime,
        end: datetime,
        project: str,
        per_model: int,
    ) -> list[TokenPercentileRow]:
        """Per model, exact input and output token p10/p50/p90 of the `per_model` (at least 1)
        most recent events of `project` with `start <= timestamp < end` (of one instance, or
        all when None): read from the events, at most `per_model` of them per model."""

    def export_events(
        self,
        *,
        instance_id: UUID | None,
        start: datetime | None,
        end: datetime | None,
        after: int,
        limit: int,
    ) -> list[tuple[int, TaskCompletionEvent]]:
        """One page of stored events, in storage order, with their row ids: those with an id
        greater than `after` (keyset pagination: pass the last id of the previous page)."""

    # dashboard sessions
    def create_dashboard_session(
        self, token_hash: str, key_hash: str, created_at: datetime, expires_at: datetime
    ) -> None:
        """Store a session (by the hash of its token), dropping every expired one first."""

    def find_dashboard_session(self, token_hash: str, now: datetime) -> str | None:
        """The key hash of the session with this token hash, unless absent or expired."""

    def delete_dashboard_session(self, token_hash: str) -> None:
        """End a session (nothing happens if there is none)."""

    # incremental prediction summaries
    def event_cursor(self) -> EventCursor:
        """Where the summaries' reading of the events table stands."""

    def event_backlog(self) -> int:
        """About how many events the summaries have not read yet (cheap: no row is read).

        The newest event id less the cursor's last id: exact on SQLite, an upper bound on
        PostgreSQL (ids skipped by conflicts count), late commits left out.
        """

    def read_new_events(self, cursor: EventCursor, limit: int) -> NewEvents:
        """Up to `limit` events (plus late commits) not read at `cursor`, from one snapshot."""

    def advance_events(
        self, old: EventCursor, new: EventCursor, buckets: Sequence[BucketRow]
    ) -> bool:
        """Store `new` and upsert the buckets in one transaction, if the cursor is still `old`.

        Returns False (and changes nothing) when another process advanced it meanwhile.
        """

    def bucket_sizes(self, task_type: str) -> list[tuple[BucketKey, int]]:
        """Every bucket of a task type and its number of events, without the summaries."""

    def drain_lease(self) -> Lease:
        """The database's drain lease (not taken yet).

        A drain process holds it while it folds a backlog, so that those of several server
        processes on one database do not all fold the same chunks (all but one would lose the
        cursor's compare-and-set and redo them). Freed when released, or when its holder ends,
        even by a crash.
        """

    def window_buckets(
        self, task_type: str, window_days: int, min_events: int
    ) -> list[tuple[BucketKey, int]]:
        """The buckets (and their sizes) a task type's statistics stand on: those of the
        newest `window_days` days (0: all), and older days of a group while the newer ones
        hold fewer than `min_events` events. `recency.choose_buckets` made in the database,
        so that a refresh does not turn a year of buckets into Python objects to keep two
        weeks of them."""

    def get_buckets(self, keys: Sequence[BucketKey], *, exact: bool) -> dict[BucketKey, BucketRow]:
        """The stored buckets asked for; their exact values only when `exact`."""

    # retention (retention.py): every cut is at the UTC midnight starting day `before`
    def count_prunable(self, before: date) -> PruneCount:
        """The events stamped before `before` (UTC midnight): what a prune would delete."""

    def prune_events(self, before: date, limit: int) -> int:
        """Delete up to `limit` of the oldest events stamped before `before`, in one
        transaction; returns how many. Concurrent callers delete disjoint events."""

    def prune_rollups(self, before: date, limit: int) -> int:
        """Delete up to `limit` usage rollup rows (cuboids, token buckets) of days before
        `before`, in one transaction; returns how many."""

    def prune_buckets(self, before: date, limit: int) -> int:
        """Delete up to `limit` prediction buckets of days before `before`, in one transaction.

        The same transaction bumps the event cursor's generation, even when no bucket is left
        (a catch-up that read events before they were pruned fails its compare-and-set and
        reads again, so it cannot bring a pruned day back), and the data version of each task
        type that lost a bucket (its statistics are stale). Returns how many it deleted.
        """
