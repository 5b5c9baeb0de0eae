"""The task-completion event, schema 1.0 and 1.1: its JSON form is the wire form.

Schema 1.1 adds optional fields (attribution: project, branch, user; token detail: cache reads,
cache writes, reasoning). An event that carries none of them is a 1.0 event, byte for byte what
it was before 1.1 existed: the unset 1.1 fields are left out of its JSON, not sent as null, so
a 1.0 server sees nothing new. An event that carries any of them says `schema_version` "1.1"
(set for it when it did not say); one that says "1.0" and carries one is invalid, naming it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from operator import itemgetter
from typing import Annotated
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

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

__all__ = ["SCHEMA_1_1_FIELDS", "SCHEMA_VERSION_1_1", "TaskCompletionEvent"]

# Counts are strict integers so that "12" or 1.5 is a type error, not a silent coercion.
_Tokens = Annotated[int, Field(strict=True, ge=0, le=10_000_000)]
_Micros = Annotated[int, Field(strict=True, ge=0, le=100_000_000)]
_MAX_GATES = len(QualityGate)
# Printable text only: a NUL cannot be stored in PostgreSQL text, and control characters in a
# model name or language only ever mean a bug or an attack.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

SCHEMA_VERSION_1_1 = "1.1"
# The optional fields of schema 1.1, in wire order; an event with none of them is a 1.0 event.
SCHEMA_1_1_FIELDS = (
    "project",
    "branch",
    "user",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_schema_1_1_values = itemgetter(*SCHEMA_1_1_FIELDS)


def _unset(value: object) -> bool:
    return value is None


# An attribution label: 1-200 printable characters (a repository, a branch, a person).
_Label = Annotated[
    str | None,
    Field(strict=True, min_length=1, max_length=200, pattern=_PRINTABLE, exclude_if=_unset),
]
_OptionalTokens = Annotated[int | None, Field(strict=True, ge=0, le=10_000_000, exclude_if=_unset)]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TaskCompletionEvent(BaseModel):
    """One finished agent task: what it was, what it cost, how it ended (schema 1.0 or 1.1)."""

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
    # Schema 1.1. `actual_input_tokens` still counts all input, cache included, and
    # `actual_output_tokens` all output, reasoning included: these only say how much of it was.
    project: _Label = None
    branch: _Label = None
    user: _Label = None
    cache_read_tokens: _OptionalTokens = None
    cache_write_tokens: _OptionalTokens = None
    reasoning_tokens: _OptionalTokens = None

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

    @model_validator(mode="after")
    def _schema_version_matches_fields(self) -> TaskCompletionEvent:
        # Run for every event a server ingests: one C call for the common case, no field set.
        values = _schema_1_1_values(self.__dict__)
        if values.count(None) == len(SCHEMA_1_1_FIELDS):
            return self
        carried = SCHEMA_1_1_FIELDS[next(i for i, value in enumerate(values) if value is not None)]
        if "schema_version" not in self.model_fields_set:
            self.schema_version = SCHEMA_VERSION_1_1
        elif self.schema_version == SCHEMA_VERSION:
            raise PydanticCustomError(
                "schema_1_1_field",
                "{field} is a schema 1.1 field: a schema_version 1.0 event cannot carry it "
                '(send schema_version "1.1")',
                {"field": carried},
            )
        return self
