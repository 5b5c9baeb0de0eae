"""One `POST /v1/logs`: records read by their agent's module, summed into open tasks, and the
tasks a prompt closed stored as events.

Blocking (storage): call it from a worker thread. Records are taken in time order (an
exporter's batch may interleave sessions); every record that is not a call or a prompt of a
known agent is counted as ignored, and a call refused for want of room among the open tasks
is counted as rejected (`partial_success`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from mosaicstack_telemetry import Complexity, TaskType
from mosaicstack_telemetry_server.otlp import claude_code, codex, gemini_cli
from mosaicstack_telemetry_server.otlp.calls import Prompt, Usage, label
from mosaicstack_telemetry_server.otlp.pricing import price_usd
from mosaicstack_telemetry_server.otlp.records import (
    MAX_RECORDS,
    Record,
    count_records,
    records_of,
)
from mosaicstack_telemetry_server.otlp.tasks import harness_of, provider_of, to_event
from mosaicstack_telemetry_server.storage._otlp_base import OpenTask, OtlpCall, OtlpPrompt
from mosaicstack_telemetry_server.storage.base import Storage

__all__ = ["MAX_OPEN_TASKS", "Received", "close_tasks", "receive"]

# Open tasks per instance: a fleet of a thousand developers has a few thousand at most.
MAX_OPEN_TASKS: Final = 50_000
# Events stored per insert when tasks close.
_CLOSE_CHUNK: Final = 500
_READERS: Final[tuple[Callable[[Record], Usage | Prompt | None], ...]] = (
    claude_code.read,
    codex.read,
    gemini_cli.read,
)
# The names of the records some agent's module reads; others are ignored unread.
_NAMES: Final = frozenset({*claude_code.NAMES, *codex.NAMES, *gemini_cli.NAMES})
_TASK_TYPES: Final = frozenset(item.value for item in TaskType)
_COMPLEXITIES: Final = frozenset(item.value for item in Complexity)


@dataclass(slots=True)
class Received:
    """What became of a request's records, and how many tasks closed."""

    records: int = 0
    used: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: int = 0
    closed: int = 0

    def message(self) -> str:
        """The `partial_success.error_message` (empty when every record could be used)."""
        if not self.rejected:
            return ""
        return (
            f"{self.rejected} log records were not used: over {MAX_RECORDS} records in one "
            "request, or no room for another open task of this instance"
        )


def _read(record: Record) -> Usage | Prompt | None:
    for read in _READERS:
        item = read(record)
        if item is not None:
            return item
    return None


def _choice(resource: dict[str, Any], name: str, allowed: frozenset[str], default: str) -> str:
    value = resource.get(name)
    return value if isinstance(value, str) and value in allowed else default


def _item(record: Record, item: Usage | Prompt) -> OtlpCall | OtlpPrompt:
    session = f"{item.agent}:{item.session}"
    if isinstance(item, Prompt):
        return OtlpPrompt(session, item.prompt or f"t{record.time_ns}", record.time_ns)
    resource = record.resource
    provider = provider_of(item.model)
    cost = price_usd(item, provider)
    start = max(0, record.time_ns - item.duration_ms * 1_000_000)
    return OtlpCall(
        call_id=record.identity,
        session_key=session,
        prompt=item.prompt,
        harness=harness_of(resource.get("service.name")),
        model=item.model,
        task_type=_choice(resource, "mosaic.task_type", _TASK_TYPES, "unknown"),
        complexity=_choice(resource, "mosaic.complexity", _COMPLEXITIES, "medium"),
        project=label(resource, "mosaic.project"),
        branch=label(resource, "mosaic.branch"),
        user=label(resource, "mosaic.user"),
        input_tokens=item.input_tokens,
        output_tokens=item.output_tokens,
        cache_read_tokens=item.cache_read_tokens,
        cache_write_tokens=item.cache_write_tokens,
        reasoning_tokens=item.reasoning_tokens,
        cost_usd_micros=int((cost * 1_000_000).to_integral_value()),
        failed=item.failed,
        start_ns=start,
        end_ns=record.time_ns,
    )


def receive(
    storage: Storage,
    instance_id: UUID,
    request: ExportLogsServiceRequest,
    *,
    max_open: int = MAX_OPEN_TASKS,
) -> Received:
    """Sum the request's calls into open tasks, apply its prompts, store the tasks they close."""
    received = Received(records=count_records(request))
    received.rejected = max(0, received.records - MAX_RECORDS)
    timed: list[tuple[int, OtlpCall | OtlpPrompt]] = []
    for record in records_of(request, _NAMES.__contains__):
        item = None if record is None else _read(record)
        if record is None or item is None:
            received.ignored += 1
        else:
            timed.append((record.time_ns, _item(record, item)))
    if not timed:
        return received
    timed.sort(key=lambda pair: pair[0])  # stable: records of one time keep their order
    done = storage.otlp_record(instance_id, [item for _, item in timed], time.time(), max_open)
    received.used = len(timed) - done.duplicates - done.refused  # calls and prompts
    received.duplicates = done.duplicates
    received.rejected += done.refused
    received.closed = close_tasks(storage, done.closed or [])
    return received


def close_tasks(storage: Storage, tasks: Sequence[OpenTask]) -> int:
    """Store the events of claimed tasks, then forget them; returns how many."""
    for start in range(0, len(tasks), _CLOSE_CHUNK):
        chunk = tasks[start : start + _CLOSE_CHUNK]
        storage.insert_events([to_event(task) for task in chunk])
        storage.otlp_forget(chunk)
    return len(tasks)
