"""A fluent builder for `TaskCompletionEvent` with sensible defaults."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self
from uuid import UUID, uuid4

from mosaicstack_telemetry.enums import (
    Complexity,
    Harness,
    Outcome,
    Provider,
    QualityGate,
    RepoSizeCategory,
    TaskType,
)
from mosaicstack_telemetry.models.events import TaskCompletionEvent

__all__ = ["EventBuilder"]


class EventBuilder:
    """Chainable construction of a `TaskCompletionEvent`; reusable after `build()`.

    Each `build()` mints a fresh `event_id` and takes the current time, unless
    `.event_id()` / `.timestamp()` were set explicitly.
    """

    def __init__(self, instance_id: str | UUID) -> None:
        self._instance_id = instance_id
        self._event_id: str | UUID | None = None
        self._timestamp: datetime | None = None
        self._fields: dict[str, Any] = {
            "task_type": TaskType.UNKNOWN,
            "complexity": Complexity.MEDIUM,
            "harness": Harness.UNKNOWN,
            "model": "unknown",
            "provider": Provider.UNKNOWN,
            "task_duration_ms": 0,
            "outcome": Outcome.FAILURE,
            "retry_count": 0,
            "language": None,
            "repo_size_category": None,
            "estimated_input_tokens": 0,
            "estimated_output_tokens": 0,
            "actual_input_tokens": 0,
            "actual_output_tokens": 0,
            "estimated_cost_usd_micros": 0,
            "actual_cost_usd_micros": 0,
            "quality_gate_passed": False,
            "quality_gates_run": [],
            "quality_gates_failed": [],
            "context_compactions": 0,
            "context_rotations": 0,
            "context_utilization_final": 0.0,
        }

    def event_id(self, value: str | UUID) -> Self:
        """Set the event id (default: a fresh UUIDv4 per `build()`)."""
        self._event_id = value
        return self

    def timestamp(self, value: datetime) -> Self:
        """Set when the task completed (default: now, UTC, at `build()`)."""
        self._timestamp = value
        return self

    def task_type(self, value: TaskType) -> Self:
        """Set the type of work performed."""
        self._fields["task_type"] = value
        return self

    def complexity_level(self, value: Complexity) -> Self:
        """Set the task's complexity."""
        self._fields["complexity"] = value
        return self

    def harness_type(self, value: Harness) -> Self:
        """Set the coding tool that ran the task."""
        self._fields["harness"] = value
        return self

    def model(self, value: str) -> Self:
        """Set the model identifier."""
        self._fields["model"] = value
        return self

    def provider(self, value: Provider) -> Self:
        """Set the LLM provider."""
        self._fields["provider"] = value
        return self

    def duration_ms(self, value: int) -> Self:
        """Set the task's wall-clock time in milliseconds."""
        self._fields["task_duration_ms"] = value
        return self

    def outcome_value(self, value: Outcome) -> Self:
        """Set the task's final result."""
        self._fields["outcome"] = value
        return self

    def retry_count(self, value: int) -> Self:
        """Set how many retries preceded the final outcome."""
        self._fields["retry_count"] = value
        return self

    def language(self, value: str | None) -> Self:
        """Set the primary programming language."""
        self._fields["language"] = value
        return self

    def repo_size(self, value: RepoSizeCategory | None) -> Self:
        """Set the repository size bucket."""
        self._fields["repo_size_category"] = value
        return self

    def project(self, value: str | None) -> Self:
        """Set the project the task was for, e.g. `owner/name` (schema 1.1; `None` unsets)."""
        return self._optional("project", value)

    def branch(self, value: str | None) -> Self:
        """Set the git branch the task worked on (schema 1.1; `None` unsets)."""
        return self._optional("branch", value)

    def user(self, value: str | None) -> Self:
        """Set who ran the task (schema 1.1; `None` unsets)."""
        return self._optional("user", value)

    def cache_tokens(self, *, read: int | None = None, write: int | None = None) -> Self:
        """Set the input tokens read from and written to a prompt cache (schema 1.1).

        They are part of `actual_input_tokens`, not added to it. `None` leaves a count unset.
        """
        self._optional("cache_read_tokens", read)
        return self._optional("cache_write_tokens", write)

    def reasoning_tokens(self, value: int | None) -> Self:
        """Set the output tokens spent on reasoning, part of `actual_output_tokens` (schema 1.1)."""
        return self._optional("reasoning_tokens", value)

    def _optional(self, name: str, value: object) -> Self:
        # A schema 1.1 field is absent, not None, until set: an event built without any of
        # them stays a 1.0 event.
        if value is None:
            self._fields.pop(name, None)
        else:
            self._fields[name] = value
        return self

    def tokens(
        self,
        *,
        estimated_in: int = 0,
        estimated_out: int = 0,
        actual_in: int = 0,
        actual_out: int = 0,
    ) -> Self:
        """Set the four token counts."""
        self._fields["estimated_input_tokens"] = estimated_in
        self._fields["estimated_output_tokens"] = estimated_out
        self._fields["actual_input_tokens"] = actual_in
        self._fields["actual_output_tokens"] = actual_out
        return self

    def cost(self, *, estimated: int = 0, actual: int = 0) -> Self:
        """Set estimated and actual cost in microdollars."""
        self._fields["estimated_cost_usd_micros"] = estimated
        self._fields["actual_cost_usd_micros"] = actual
        return self

    def quality(
        self,
        *,
        passed: bool,
        gates_run: list[QualityGate] | None = None,
        gates_failed: list[QualityGate] | None = None,
    ) -> Self:
        """Set the quality gate results."""
        self._fields["quality_gate_passed"] = passed
        self._fields["quality_gates_run"] = list(gates_run or [])
        self._fields["quality_gates_failed"] = list(gates_failed or [])
        return self

    def context(
        self, *, compactions: int = 0, rotations: int = 0, utilization: float = 0.0
    ) -> Self:
        """Set the context window metrics."""
        self._fields["context_compactions"] = compactions
        self._fields["context_rotations"] = rotations
        self._fields["context_utilization_final"] = utilization
        return self

    def build(self) -> TaskCompletionEvent:
        """Validate and return a new event; raises `pydantic.ValidationError` on bad values."""
        fields = dict(self._fields)
        fields["quality_gates_run"] = list(fields["quality_gates_run"])
        fields["quality_gates_failed"] = list(fields["quality_gates_failed"])
        fields["instance_id"] = self._instance_id
        fields["event_id"] = self._event_id if self._event_id is not None else uuid4()
        if self._timestamp is not None:
            fields["timestamp"] = self._timestamp
        return TaskCompletionEvent.model_validate(fields)
