"""PostgreSQL side of the OTLP receiver's storage (`_otlp_base.py`): claims lock their rows
(`FOR UPDATE SKIP LOCKED`), so two processes never claim one task."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg

from mosaicstack_telemetry_server.storage._otlp_base import (
    CLAIM_STALE_SECONDS,
    OpenTask,
    OtlpCall,
    OtlpPrompt,
    OtlpRecorded,
)
from mosaicstack_telemetry_server.storage._otlp_sql import OtlpSql, open_task, record_items

__all__ = ["PostgresOtlp"]

_SQL = OtlpSql.of("%s", least="least", greatest="greatest", lock=" FOR UPDATE SKIP LOCKED")


class PostgresOtlp:
    """The OTLP methods of `PostgresStorage` (which provides `_transaction`)."""

    def _transaction(
        self, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        raise NotImplementedError  # pragma: no cover - provided by PostgresStorage

    def otlp_record(
        self,
        instance_id: UUID,
        items: Sequence[OtlpCall | OtlpPrompt],
        now: float,
        max_open: int,
    ) -> OtlpRecorded:
        """Sum calls into open tasks and apply prompts, in one transaction."""
        with self._transaction() as conn:
            return record_items(conn.execute, _SQL, instance_id, items, now, max_open)

    def otlp_claim_idle(self, idle_before: float, now: float, limit: int) -> list[OpenTask]:
        """Claim up to `limit` idle tasks (and stale claims)."""
        stale = now - CLAIM_STALE_SECONDS
        with self._transaction() as conn:
            rows = conn.execute(_SQL.claim_idle, (now, idle_before, stale, limit, stale))
            return [open_task(row) for row in rows.fetchall()]

    def otlp_forget(self, tasks: Sequence[OpenTask]) -> None:
        """Delete claimed tasks whose event is stored."""
        with self._transaction() as conn, conn.cursor() as cursor:
            cursor.executemany(
                _SQL.forget, [(t.instance_id, t.task_key, t.first_call) for t in tasks]
            )

    def otlp_prune(self, before: float) -> int:
        """Forget call identities and session prompts last seen before `before`."""
        with self._transaction() as conn:
            calls = conn.execute(_SQL.prune_calls, (before,)).rowcount
            return calls + conn.execute(_SQL.prune_sessions, (before,)).rowcount

    def otlp_open_tasks(self, instance_id: UUID | None = None) -> int:
        """How many tasks are open (of one instance, or of all)."""
        with self._transaction() as conn:
            if instance_id is None:
                row = conn.execute(_SQL.count_all).fetchone()
            else:
                row = conn.execute(_SQL.count_open, (instance_id,)).fetchone()
        return int(row[0]) if row is not None else 0
