"""Where the server keeps events, API keys and statistics: `open_storage(url)` picks the backend.

sqlite:///relative/path.db     a file relative to the working directory
sqlite:////absolute/path.db    an absolute path (parent folders are created)
sqlite://:memory:              a private in-memory database (tests, demos)
postgresql://user:pw@host/db   PostgreSQL (also postgres://)
"""

from __future__ import annotations

from mosaicstack_telemetry_server.storage._common import MAX_EVENTS_PER_INSERT, redact_url
from mosaicstack_telemetry_server.storage.base import (
    WILDCARD,
    ApiKeyRecord,
    PartitionSnapshot,
    StatsKey,
    StatsRow,
    Storage,
    StorageError,
)

__all__ = [
    "MAX_EVENTS_PER_INSERT",
    "WILDCARD",
    "ApiKeyRecord",
    "PartitionSnapshot",
    "StatsKey",
    "StatsRow",
    "Storage",
    "StorageError",
    "open_storage",
    "redact_url",
    "sqlite_path",
]

_SCHEMES = "sqlite:///<path>, sqlite://:memory:, postgresql://..., postgres://..."


def sqlite_path(url: str) -> str:
    """The file path (or ":memory:") a `sqlite://` URL names; ValueError if it names none."""
    if not url.startswith("sqlite://"):
        raise ValueError(f"not a SQLite URL: {redact_url(url)}")
    rest = url[len("sqlite://") :]
    if rest in (":memory:", "/:memory:"):
        return ":memory:"
    # After "sqlite://" comes an empty host and "/": what follows is the path, so four
    # slashes in all make an absolute path (SQLAlchemy's convention).
    if not rest.startswith("/") or len(rest) == 1:
        raise ValueError(f"a SQLite URL needs a path, as in sqlite:///telemetry.db: {url!r}")
    path = rest[1:]
    if "?" in path or "#" in path:
        raise ValueError(f"SQLite URLs take no query or fragment: {url!r}")
    return path


def open_storage(url: str) -> Storage:
    """The storage backend for a database URL (not yet migrated, connections opened lazily)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "sqlite":
        from mosaicstack_telemetry_server.storage.sqlite import SQLiteStorage

        return SQLiteStorage(sqlite_path(url))
    if scheme in ("postgresql", "postgres"):
        from mosaicstack_telemetry_server.storage.postgres import PostgresStorage

        return PostgresStorage(url)
    raise ValueError(f"unsupported database URL {redact_url(url)!r}; use one of: {_SCHEMES}")
