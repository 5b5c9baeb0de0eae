"""The usage reads of both backends, written once: `sum_usage`, `token_buckets`,
`project_token_percentiles` (`_project_tokens.py`), `export_events`.

Their SQL is built by `_usage_sql.py` from the backend's `Dialect`; what differs between the
backends is only how a value is bound (`_bind`) and how one read-only query runs (`_read`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server.storage._common import event_from_row
from mosaicstack_telemetry_server.storage._project_tokens import project_token_percentiles
from mosaicstack_telemetry_server.storage._usage_sql import (
    Dialect,
    export_sql,
    plan_range,
    rollups_serve,
    token_bucket_rows,
    token_buckets_sql,
    usage_rows,
    usage_sql,
)
from mosaicstack_telemetry_server.storage.base import (
    TokenBucketRow,
    TokenPercentileRow,
    UsageRow,
)

__all__ = ["UsageReads"]


class UsageReads:
    """The usage methods of `SQLiteStorage` and `PostgresStorage`."""

    _dialect: ClassVar[Dialect]

    @staticmethod
    def _bind(value: Any) -> Any:
        raise NotImplementedError  # pragma: no cover - provided by each backend

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        raise NotImplementedError  # pragma: no cover - provided by each backend

    def sum_usage(
        self,
        *,
        instance_id: UUID | None,
        start: datetime,
        end: datetime,
        dimensions: Sequence[str],
        filters: Mapping[str, str] | None = None,
    ) -> list[UsageRow]:
        """Sums by `dimensions` over `[start, end)` of the events matching `filters`: rollups
        for whole days, events for edges (and for all of it when no cuboid serves)."""
        filters = dict(filters or {})
        plan = plan_range(start, end, rollups=rollups_serve(dimensions, filters))
        sql, params = usage_sql(self._dialect, plan, dimensions, instance_id, self._bind, filters)
        return usage_rows(self._read(sql, params), len(dimensions)) if sql else []

    def token_buckets(
        self, *, instance_id: UUID | None, start: datetime, end: datetime
    ) -> list[TokenBucketRow]:
        """Per model, token histograms over `[start, end)`: rollups, then the edges' events."""
        plan = plan_range(start, end)
        sql, params = token_buckets_sql(self._dialect, plan, instance_id, self._bind)
        return token_bucket_rows(self._read(sql, params)) if sql else []

    def project_token_percentiles(
        self,
        *,
        instance_id: UUID | None,
        start: datetime,
        end: datetime,
        project: str,
        per_model: int,
    ) -> list[TokenPercentileRow]:
        """Per model, exact token percentiles of the project's `per_model` latest events."""
        return project_token_percentiles(
            self._dialect,
            self._bind,
            self._read,
            instance_id=instance_id,
            start=start,
            end=end,
            project=project,
            per_model=per_model,
        )

    def export_events(
        self,
        *,
        instance_id: UUID | None,
        start: datetime | None,
        end: datetime | None,
        after: int,
        limit: int,
    ) -> list[tuple[int, TaskCompletionEvent]]:
        """One page of events with ids above `after`, in id order (keyset pagination)."""
        sql, params = export_sql(
            self._dialect,
            self._bind,
            instance_id=instance_id,
            start=start,
            end=end,
            after=after,
            limit=limit,
        )
        return [(int(row[0]), event_from_row(row[1:])) for row in self._read(sql, params)]
