"""A closed task becomes one `TaskCompletionEvent`, by the hook's definition of a task.

Harness from the resource's `service.name` (`claude-code`: claude_code, else custom), provider
from the model's name, tokens and cost summed, duration from the first call's start to the last
call's end, outcome `failure` when every call failed, else `success`. Values beyond the
schema's ranges are clamped. The event id is a UUIDv5 of the instance, the task key and the
task's first call: a task closed twice (a claim taken over) is stored once, and calls that
arrive after their task closed make a task of their own.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server.ingest import EARLIEST_TIMESTAMP, MAX_CLOCK_AHEAD
from mosaicstack_telemetry_server.storage._otlp_base import OpenTask

__all__ = ["harness_of", "provider_of", "to_event"]

_NAMESPACE: Final = uuid.UUID("5b0c54f2-8f0e-4d47-9a5e-2f6c0a9d7e31")
_MAX_TOKENS: Final = 10_000_000
_MAX_MICROS: Final = 100_000_000
_MAX_DURATION_MS: Final = 86_400_000
# A model name's start tells its provider (as the agents' harness readers do).
_BARE: Final = (
    ("claude", "anthropic"),
    ("anthropic", "anthropic"),
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("codex", "openai"),
    ("gemini", "google"),
    ("mistral", "mistral"),
    ("codestral", "mistral"),
)


def harness_of(service_name: str | None) -> str:
    """The harness a resource's `service.name` names."""
    if service_name in ("claude-code", "claude_code"):
        return "claude_code"
    return "custom"


def provider_of(model: str) -> str:
    """The provider a model's name tells, else custom."""
    name = model.lower().rpartition("/")[2]
    for start, provider in _BARE:
        if name.startswith(start):
            return provider
    return "custom"


def _timestamp(end_ns: int, now: datetime) -> datetime:
    stamp = datetime.fromtimestamp(min(end_ns, 2**62) / 1e9, UTC)
    # A sender's wrong clock must not cost the task: it is stamped when it closed instead.
    if stamp < EARLIEST_TIMESTAMP or stamp > now + MAX_CLOCK_AHEAD:
        return now
    return stamp


def to_event(task: OpenTask, now: datetime | None = None) -> TaskCompletionEvent:
    """The event of a closed task."""
    now = now or datetime.now(UTC)
    name = f"{task.instance_id}/{task.task_key}/{task.first_call}"
    succeeded = task.calls - task.failed_calls
    outcome = "success" if succeeded > 0 else "failure"
    duration = max(0, (task.end_ns - task.start_ns) // 1_000_000)
    return TaskCompletionEvent.model_validate(
        {
            "instance_id": task.instance_id,
            "event_id": uuid.uuid5(_NAMESPACE, name),
            "timestamp": _timestamp(task.end_ns, now),
            "task_duration_ms": min(duration, _MAX_DURATION_MS),
            "task_type": task.task_type,
            "complexity": task.complexity,
            "harness": task.harness,
            "model": task.model[:100],
            "provider": provider_of(task.model),
            "estimated_input_tokens": 0,
            "estimated_output_tokens": 0,
            "actual_input_tokens": min(task.input_tokens, _MAX_TOKENS),
            "actual_output_tokens": min(task.output_tokens, _MAX_TOKENS),
            "estimated_cost_usd_micros": 0,
            "actual_cost_usd_micros": min(task.cost_usd_micros, _MAX_MICROS),
            # No gates run over OTLP: passed means the task ended well, as the hook says.
            "quality_gate_passed": outcome == "success",
            "context_compactions": 0,
            "context_rotations": 0,
            "context_utilization_final": 0.0,
            "outcome": outcome,
            "retry_count": 0,
            "project": task.project,
            "branch": task.branch,
            "user": task.user,
            "cache_read_tokens": min(task.cache_read_tokens, _MAX_TOKENS),
            "cache_write_tokens": min(task.cache_write_tokens, _MAX_TOKENS),
            "reasoning_tokens": min(task.reasoning_tokens, _MAX_TOKENS),
        }
    )
