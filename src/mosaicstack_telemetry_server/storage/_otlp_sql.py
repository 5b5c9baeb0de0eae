"""The OTLP receiver's SQL, written once for both backends, and the one algorithm using it.

`OtlpSql.of(dialect)` spells the statements with the backend's placeholder and functions;
`record_items` runs them on an open transaction's connection (sqlite3 and psycopg connections
both offer `execute(sql, params)` with `rowcount` and `fetch*`). SQL uses bound parameters only.
The statements are assembled from the fixed fragments of this module only.
"""

# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from mosaicstack_telemetry_server.storage._otlp_base import (
    OpenTask,
    OtlpCall,
    OtlpPrompt,
    OtlpRecorded,
)

__all__ = ["OtlpSql", "open_task", "record_items"]

_TASK_COLUMNS = (
    "instance_id, task_key, first_call, harness, model, task_type, complexity, project, branch, "
    "user_name, calls, failed_calls, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_tokens, reasoning_tokens, cost_usd_micros, start_ns, end_ns"
)
_SUMMED = (
    "failed_calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd_micros",
)


@dataclass(frozen=True, slots=True)
class OtlpSql:
    """The statements of one backend."""

    count_open: str
    insert_call: str
    delete_call: str
    session_prompt: str
    upsert_session: str
    claim_session: str
    task_exists: str
    upsert_task: str
    claim_idle: str
    forget: str
    prune_calls: str
    prune_sessions: str
    count_all: str

    @classmethod
    def of(cls, p: str, least: str, greatest: str, lock: str) -> OtlpSql:
        """Statements with placeholder `p`, the two-argument `least`/`greatest` functions and
        the row lock suffix of a claim's subquery (empty where one writer runs at a time)."""
        updates = ", ".join(f"{name} = otlp_tasks.{name} + excluded.{name}" for name in _SUMMED)
        values = ", ".join([p] * 22)
        return cls(
            count_open=f"SELECT count(*) FROM otlp_tasks WHERE instance_id = {p}",  # nosec B608
            count_all="SELECT count(*) FROM otlp_tasks",
            insert_call=(
                f"INSERT INTO otlp_calls (instance_id, call_id, seen_at) VALUES ({p}, {p}, {p}) "  # nosec B608
                "ON CONFLICT (instance_id, call_id) DO NOTHING"
            ),
            delete_call=f"DELETE FROM otlp_calls WHERE instance_id = {p} AND call_id = {p}",  # nosec B608
            session_prompt=(
                f"SELECT prompt FROM otlp_sessions WHERE instance_id = {p} AND session_key = {p}"  # nosec B608
            ),
            upsert_session=(
                "INSERT INTO otlp_sessions (instance_id, session_key, prompt, prompt_ns, seen_at) "  # nosec B608
                f"VALUES ({p}, {p}, {p}, {p}, {p}) ON CONFLICT (instance_id, session_key) DO "
                "UPDATE SET prompt = excluded.prompt, prompt_ns = excluded.prompt_ns, seen_at = "
                "excluded.seen_at WHERE excluded.prompt_ns >= otlp_sessions.prompt_ns"
            ),
            claim_session=(
                f"UPDATE otlp_tasks SET closing_at = {p} WHERE instance_id = {p} AND session_key "  # nosec B608
                f"= {p} AND task_key <> {p} AND end_ns <= {p} AND closing_at IS NULL "
                f"RETURNING {_TASK_COLUMNS}"
            ),
            task_exists=f"SELECT 1 FROM otlp_tasks WHERE instance_id = {p} AND task_key = {p}",  # nosec B608
            upsert_task=(
                "INSERT INTO otlp_tasks (instance_id, task_key, session_key, first_call, harness, "  # nosec B608
                "model, top_cost, task_type, complexity, project, branch, user_name, calls, "
                "failed_calls, input_tokens, output_tokens, cache_read_tokens, "
                "cache_write_tokens, reasoning_tokens, cost_usd_micros, start_ns, end_ns, "
                f"touched_at) VALUES ({values}, {p}) "
                "ON CONFLICT (instance_id, task_key) DO UPDATE SET model = CASE WHEN "
                "excluded.top_cost > otlp_tasks.top_cost THEN excluded.model ELSE "
                f"otlp_tasks.model END, top_cost = {greatest}(otlp_tasks.top_cost, "
                f"excluded.top_cost), calls = otlp_tasks.calls + 1, {updates}, start_ns = "
                f"{least}(otlp_tasks.start_ns, excluded.start_ns), end_ns = "
                f"{greatest}(otlp_tasks.end_ns, excluded.end_ns), touched_at = "
                "excluded.touched_at WHERE otlp_tasks.closing_at IS NULL"
            ),
            claim_idle=(
                f"UPDATE otlp_tasks SET closing_at = {p} WHERE (instance_id, task_key) IN "  # nosec B608
                "(SELECT instance_id, task_key FROM otlp_tasks WHERE (closing_at IS NULL AND "
                f"touched_at < {p}) OR closing_at < {p} LIMIT {p}{lock}) AND (closing_at IS NULL "
                f"OR closing_at < {p}) RETURNING {_TASK_COLUMNS}"
            ),
            forget=(
                f"DELETE FROM otlp_tasks WHERE instance_id = {p} AND task_key = {p} AND "  # nosec B608
                f"first_call = {p} AND closing_at IS NOT NULL"
            ),
            prune_calls=f"DELETE FROM otlp_calls WHERE seen_at < {p}",  # nosec B608
            prune_sessions=f"DELETE FROM otlp_sessions WHERE seen_at < {p}",  # nosec B608
        )


def open_task(row: Sequence[Any]) -> OpenTask:
    """An `OpenTask` from a row of `_TASK_COLUMNS`."""
    return OpenTask(UUID(str(row[0])), *row[1:])


def _task_values(instance: Any, key: str, call: OtlpCall, now: float) -> tuple[Any, ...]:
    return (
        instance,
        key,
        call.session_key,
        call.call_id,
        call.harness,
        call.model,
        call.cost_usd_micros,
        call.task_type,
        call.complexity,
        call.project,
        call.branch,
        call.user,
        1,
        int(call.failed),
        call.input_tokens,
        call.output_tokens,
        call.cache_read_tokens,
        call.cache_write_tokens,
        call.reasoning_tokens,
        call.cost_usd_micros,
        call.start_ns,
        call.end_ns,
        now,
    )


def task_key(session_key: str, prompt: str) -> str:
    """The key of the task of one prompt of a session."""
    return f"{session_key}#{prompt}"


def record_items(
    execute: Callable[[str, Sequence[Any]], Any],
    sql: OtlpSql,
    instance: Any,
    items: Sequence[OtlpCall | OtlpPrompt],
    now: float,
    max_open: int,
) -> OtlpRecorded:
    """`OtlpStore.otlp_record` on one transaction; `instance` is bound as the backend wants."""
    done = OtlpRecorded(closed=[])
    closed: list[OpenTask] = []
    (open_now,) = execute(sql.count_open, (instance,)).fetchone()
    room = max_open - open_now
    # Only when the request could fill the room is each new task checked for.
    checked = room < sum(1 for item in items if isinstance(item, OtlpCall))
    for item in items:
        if isinstance(item, OtlpPrompt):
            key = task_key(item.session_key, item.prompt)
            params = (instance, item.session_key, item.prompt, item.prompt_ns, now)
            execute(sql.upsert_session, params)
            rows = execute(
                sql.claim_session, (now, instance, item.session_key, key, item.prompt_ns)
            ).fetchall()
            closed += [open_task(row) for row in rows]
            continue
        if execute(sql.insert_call, (instance, item.call_id, now)).rowcount == 0:
            done.duplicates += 1
            continue
        prompt = item.prompt
        if prompt is None:
            row = execute(sql.session_prompt, (instance, item.session_key)).fetchone()
            prompt = row[0] if row else ""
        key = task_key(item.session_key, prompt)
        new = checked and execute(sql.task_exists, (instance, key)).fetchone() is None
        if (new and room <= 0) or execute(
            sql.upsert_task, _task_values(instance, key, item, now)
        ).rowcount == 0:
            # No room, or its task is being closed: forgotten, so a resend may be used later.
            execute(sql.delete_call, (instance, item.call_id))
            done.refused += 1
            continue
        room -= new
        done.used += 1
    done.closed = closed
    return done
