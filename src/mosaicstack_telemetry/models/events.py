"""The task-completion event, schema 1.0: its JSON form is the wire form."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mosaicstack_telemetry._version import SCHEMA_VERSION
from mosaicstack_telemetry.enums import (
    Complexity,
    Harness,
    Outcome,
    Provider,
    QualityGate,
    RepoSizeCategory,
    TaskType,
)

__all__ = ["TaskCompletionEvent"]

# Counts are strict integers so that "12" or 1.5 is a type error, not a silent coercion.
_Tokens = Annotated[int, Field(strict=True, ge=0, le=10_000_000)]
_Micros = Annotated[int, Field(strict=True, ge=0, le=100_000_000)]
_MAX_GATES = len(QualityGate)
# Printable text only: a NUL cannot be stored in PostgreSQL text, and control characters in a
# model name or language only ever mean a bug or an attack.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TaskCompletionEvent(BaseModel):
    """One finished agent task: what it was, what it cost, how it ended (schema 1.0)."""

    model_config = ConfigDict(extra="ignore", validate_default=False, defer_build=True)

    instance_id: UUID
    event_id: UUID = Field(default_factory=uuid4)
    schema_version: Annotated[
        str, Field(strict=True, min_length=1, max_length=16, pattern=_PRINTABLE)
    ] = SCHEMA_VERSION
    timestamp: datetime = Field(default_factory=_utc_now)
    task_duration_ms: Annotated[int, Field(strict=True, ge=0, le=86_400_000)]
    task_type: TaskType
    complexity: Complexity
    harness: Harness
    model: Annotated[str, Field(strict=True, min_length=1, max_length=100, pattern=_PRINTABLE)]
    provider: Provider
    estimated_input_tokens: _Tokens
    estimated_output_tokens: _Tokens
    actual_input_tokens: _Tokens
    actual_output_tokens: _Tokens
    estimated_cost_usd_micros: _Micros
    actual_cost_usd_micros: _Micros
    quality_gate_passed: Annotated[bool, Field(strict=True)]
    quality_gates_run: Annotated[list[QualityGate], Field(max_length=_MAX_GATES * 4)] = Field(
        default_factory=list
    )
    quality_gates_failed: Annotated[list[QualityGate], Field(max_length=_MAX_GATES * 4)] = Field(
        default_factory=list
    )
    context_compactions: Annotated[int, Field(strict=True, ge=0, le=100)]
    context_rotations: Annotated[int, Field(strict=True, ge=0, le=50)]
    context_utilization_final: Annotated[float, Field(strict=True, ge=0.0, le=1.0)]
    outcome: Outcome
    retry_count: Annotated[int, Field(strict=True, ge=0, le=20)]
    language: Annotated[str | None, Field(strict=True, max_length=30, pattern=_PRINTABLE)] = None
    repo_size_category: RepoSizeCategory | None = None

    @field_validator("timestamp")
    @classmethod
    def _timestamp_in_utc(cls, value: datetime) -> datetime:
        # A naive timestamp is taken as UTC; an aware one is converted, so the wire is always UTC.
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            # e.g. 0001-01-01T00:00+05:00 has no UTC form: a validation error, not a crash.
            raise ValueError("timestamp is out of range once converted to UTC") from None
