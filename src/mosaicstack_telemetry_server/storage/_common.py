"""What both backends share, free of I/O: columns, row conversions, migrations, URL redaction."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from mosaicstack_telemetry import QualityGate, TaskCompletionEvent
from mosaicstack_telemetry_server.storage.base import (
    ApiKeyRecord,
    BucketKey,
    BucketRow,
    StatsKey,
    StatsRow,
    StorageError,
)

# Column order of the events table as written by insert_events; _event_row follows it.
EVENT_COLUMNS = (
    "instance_id",
    "event_id",
    "schema_version",
    "timestamp",
    "task_duration_ms",
    "task_type",
    "complexity",
    "harness",
    "model",
    "provider",
    "estimated_input_tokens",
    "estimated_output_tokens",
    "actual_input_tokens",
    "actual_output_tokens",
    "estimated_cost_usd_micros",
    "actual_cost_usd_micros",
    "quality_gate_passed",
    "quality_gates_run",
    "quality_gates_failed",
    "context_compactions",
    "context_rotations",
    "context_utilization_final",
    "outcome",
    "retry_count",
    "language",
    "repo_size_category",
    # Schema 1.1's columns come last (NULL on a 1.0 event): SCHEMA_1_1_COLUMNS.
    "project",
    "branch",
    "user_name",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
# Event schema 1.1's columns (storage schema 8), the SDK's SCHEMA_1_1_FIELDS in their order;
# `user` is a reserved word in SQL, so its column is user_name.
SCHEMA_1_1_COLUMNS = EVENT_COLUMNS[-6:]

# The columns of PartitionSnapshot.rows, in its documented order.
PARTITION_COLUMNS = (
    "model",
    "provider",
    "complexity",
    "actual_input_tokens",
    "actual_output_tokens",
    "actual_cost_usd_micros",
    "task_duration_ms",
    "estimated_input_tokens",
    "estimated_output_tokens",
    "quality_gate_passed",
    "outcome",
)

STATS_COLUMNS = (
    "level",
    "task_type",
    "model",
    "provider",
    "complexity",
    "sample_size",
    "stats",
    "computed_at",
)

# The migration that creates the usage rollups as they are now (0003 made a first design,
# 0006 replaced it): the storage backfills them from the stored events right after it.
USAGE_ROLLUPS_VERSION = 6
# The migration that replaces the list of pending events by the fold's cursor: the storage folds
# the events still listed right before it.
USAGE_CURSOR_VERSION = 9
# The migration that adds attribution to the rollups: it empties them and moves the cursor back
# to the first event, so the background fold refolds every event. When a migration runs through
# it, the folds of USAGE_ROLLUPS_VERSION and USAGE_CURSOR_VERSION are skipped (their work would
# be thrown away); when it stops before, they fold as those schemas knew (`legacy_daily`).
USAGE_ATTRIBUTION_VERSION = 12

# Most events one insert_events call takes: one transaction must stay a bounded amount of work.
MAX_EVENTS_PER_INSERT = 100_000

# An API key hash is a hex SHA-256; anything else is a caller's bug, caught before storing.
_KEY_HASH = re.compile(r"[0-9a-f]{64}")
MAX_KEY_ID_LENGTH = 64
MAX_LABEL_LENGTH = 200


def utc(value: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is taken as UTC (as the event model does)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso_utc(value: datetime) -> str:
    """Fixed-width UTC ISO 8601 text, so stored timestamps also sort correctly as text."""
    return utc(value).isoformat(timespec="microseconds")


def event_row(event: TaskCompletionEvent) -> tuple[Any, ...]:
    """The values of EVENT_COLUMNS for one event; UUIDs, datetimes and bools left as such."""
    # `_value_` rather than `.value`: the same string without the enum property's overhead,
    # which shows at a million events.
    repo_size = event.repo_size_category
    return (
        event.instance_id,
        event.event_id,
        event.schema_version,
        event.timestamp,
        event.task_duration_ms,
        event.task_type._value_,
        event.complexity._value_,
        event.harness._value_,
        event.model,
        event.provider._value_,
        event.estimated_input_tokens,
        event.estimated_output_tokens,
        event.actual_input_tokens,
        event.actual_output_tokens,
        event.estimated_cost_usd_micros,
        event.actual_cost_usd_micros,
        event.quality_gate_passed,
        gates_json(tuple(event.quality_gates_run)),
        gates_json(tuple(event.quality_gates_failed)),
        event.context_compactions,
        event.context_rotations,
        event.context_utilization_final,
        event.outcome._value_,
        event.retry_count,
        event.language,
        None if repo_size is None else repo_size._value_,
        event.project,
        event.branch,
        event.user,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.reasoning_tokens,
    )


@functools.lru_cache(maxsize=1024)
def gates_json(gates: tuple[QualityGate, ...]) -> str:
    """A list of quality gates as JSON text (cached: batches repeat the same few lists)."""
    return json.dumps([gate.value for gate in gates])


def event_from_row(row: Sequence[Any]) -> TaskCompletionEvent:
    """Rebuild an event from the values of EVENT_COLUMNS as a backend returns them."""
    data = dict(zip(EVENT_COLUMNS, row, strict=True))
    # The model is strict about bools and SQLite hands back 0/1.
    data["quality_gate_passed"] = bool(data["quality_gate_passed"])
    data["quality_gates_run"] = json.loads(data["quality_gates_run"])
    data["quality_gates_failed"] = json.loads(data["quality_gates_failed"])
    data["user"] = data.pop("user_name")
    if isinstance(data["timestamp"], str):
        data["timestamp"] = datetime.fromisoformat(data["timestamp"])
    return TaskCompletionEvent.model_validate(data)


def check_stats_rows(task_type: str, rows: Sequence[StatsRow]) -> None:
    """Refuse statistics filed under another task type: replace_stats works per task type."""
    for row in rows:
        if row.key.task_type != task_type:
            raise ValueError(
                f"a statistics row of task type {row.key.task_type!r} "
                f"cannot be stored under {task_type!r}"
            )


def stats_row(values: Sequence[Any]) -> StatsRow:
    """A StatsRow from the values of STATS_COLUMNS."""
    level, task_type, model, provider, complexity, sample_size, stats, computed_at = values
    return StatsRow(
        key=StatsKey(level, task_type, model, provider, complexity),
        sample_size=sample_size,
        stats=json.loads(stats),
        computed_at=_as_datetime(computed_at),
    )


def stats_values(row: StatsRow) -> tuple[Any, ...]:
    """The values of STATS_COLUMNS for one row, computed_at left as a datetime."""
    key = row.key
    return (
        key.level,
        key.task_type,
        key.model,
        key.provider,
        key.complexity,
        row.sample_size,
        json.dumps(row.stats, separators=(",", ":")),
        utc(row.computed_at),
    )


def check_api_key_fields(
    key_id: str,
    key_hash: str,
    label: str | None,
    instance_id: UUID | None = None,
    role: str = "instance",
) -> None:
    """Validate a new API key's fields (without ever echoing the hash)."""
    if role not in ("instance", "admin"):
        raise ValueError(f"role must be 'instance' or 'admin', got {role!r}")
    if (role == "admin") != (instance_id is None):
        raise ValueError("an instance key needs an instance_id; an admin key must have none")
    if not key_id or len(key_id) > MAX_KEY_ID_LENGTH:
        raise ValueError(f"key_id must be 1 to {MAX_KEY_ID_LENGTH} characters")
    if not _KEY_HASH.fullmatch(key_hash):
        raise ValueError("key_hash must be a lowercase hex SHA-256 (64 characters)")
    if label is not None and len(label) > MAX_LABEL_LENGTH:
        raise ValueError(f"label must be at most {MAX_LABEL_LENGTH} characters")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change: its SQL statements, applied in one transaction."""

    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(script: str) -> tuple[str, ...]:
    """The statements of a migration file; `--` comment lines are dropped first.

    Deliberately simple (no `;` inside strings or comments in migration files), because
    sqlite3's executescript would commit the migration transaction half-way. A body whose
    statements end in `;` stays whole: a SQLite trigger from the line ending in `BEGIN` to the
    line `END;`, a PostgreSQL function between the lines holding its `$$` quotes.
    """
    statements: list[str] = []
    pending: list[str] = []
    body: str | None = None  # the quote of the body we are in: "$$" or "BEGIN"
    for line in script.splitlines():
        if line.lstrip().startswith("--"):
            continue
        pending.append(line)
        upper = line.strip().upper()
        if line.count("$$") % 2 == 1:
            body = None if body == "$$" else "$$"
        elif body is None and (upper == "BEGIN" or upper.endswith(" BEGIN")):
            body = "BEGIN"
        elif body == "BEGIN" and upper == "END;":
            body = None
        if body is None and upper.endswith(";"):
            statements.extend(_outside_bodies("\n".join(pending)))
            pending = []
    statements.extend(_outside_bodies("\n".join(pending)))
    return tuple(statements)


def _outside_bodies(text: str) -> list[str]:
    if "$$" in text or re.search(r"(?im)\sBEGIN\s*$", text):
        return [text.strip().removesuffix(";").strip()]
    return [part.strip() for part in text.split(";") if part.strip()]


def load_migrations(backend: str) -> list[Migration]:
    """Every migration of a backend ("sqlite" or "postgres"), oldest first."""
    folder = resources.files("mosaicstack_telemetry_server.storage.migrations").joinpath(backend)
    migrations = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            migrations.append(
                Migration(int(match[1]), match[2], split_statements(entry.read_text("utf-8")))
            )
    migrations.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in migrations]
    # A gap or a duplicate number means a botched merge: refuse rather than guess.
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"{backend} migrations are not numbered 1..n: {versions}")
    return migrations


def pending_migrations(
    migrations: Sequence[Migration], applied: set[int], target: int | None
) -> list[Migration]:
    """The migrations still to apply to reach `target` (None: the latest), oldest first."""
    latest = migrations[-1].version if migrations else 0
    if target is None:
        target = latest
    if not 0 <= target <= latest:
        raise ValueError(f"schema version {target} does not exist (latest is {latest})")
    newest_applied = max(applied, default=0)
    if newest_applied > latest:
        # Written by a newer server: running older code against it could corrupt data.
        raise StorageError(
            f"database schema version {newest_applied} is newer than this server "
            f"supports ({latest}); upgrade the server"
        )
    return [m for m in migrations if m.version <= target and m.version not in applied]


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, safe to print and to log."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, host = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{host}"
        query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
        if (netloc, query) == (parts.netloc, parts.query):
            return url  # nothing to hide; urlunsplit would also mangle sqlite:////abs paths
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        # Unparseable (e.g. a bad port): show only the scheme rather than risk a secret.
        return url.split(":", 1)[0] + "://***"


def scrub(message: str, secret: str | None) -> str:
    """A driver's message with the secret (the URL's password) blanked, should it echo it."""
    if secret:
        return message.replace(secret, "***")
    return message


def api_key_record(values: Sequence[Any]) -> ApiKeyRecord:
    """An ApiKeyRecord from key_id, instance_id, label, created_at, revoked_at, key_hash, role."""
    key_id, instance_id, label, created_at, revoked_at, key_hash, role = values
    if instance_id is not None and not isinstance(instance_id, UUID):
        instance_id = UUID(instance_id)
    return ApiKeyRecord(
        key_id=key_id,
        instance_id=instance_id,
        label=label,
        created_at=_as_datetime(created_at),
        revoked_at=None if revoked_at is None else _as_datetime(revoked_at),
        key_hash=key_hash,
        role="admin" if role == "admin" else "instance",
    )


def _as_datetime(value: datetime | str) -> datetime:
    # SQLite hands back the ISO text we stored; PostgreSQL a datetime.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return utc(value)


def check_batch_size(count: int) -> None:
    """Refuse a batch too large for one transaction."""
    if count > MAX_EVENTS_PER_INSERT:
        raise ValueError(
            f"at most {MAX_EVENTS_PER_INSERT} events per insert_events call, got {count}"
        )


def bucket_values(row: BucketRow) -> tuple[Any, ...]:
    """A prediction bucket as the columns of `prediction_buckets`, in table order."""
    k = row.key
    return (
        k.task_type,
        k.model,
        k.provider,
        k.complexity,
        k.day,
        row.sample_size,
        row.sketch,
        row.exact,
    )


def bucket_row(values: Sequence[Any]) -> BucketRow:
    """A `prediction_buckets` row back as a bucket (blobs as bytes whatever the driver gives)."""
    exact = values[7]
    return BucketRow(
        BucketKey(*values[:5]), values[5], bytes(values[6]), None if exact is None else bytes(exact)
    )
