"""What the OTLP receiver (`otlp/`) keeps in storage: calls, open tasks, session prompts.

A call is one API call an agent reported over OTLP; it is summed into the open task of its key
by `otlp_record`, once per call identity (an exporter's resend is a duplicate). A task is
closed by claiming it (`closing_at` set, atomically: one claimant per task however many server
processes try), storing its event, then forgetting it; a claim left by a process that died
before forgetting is taken over once it is `CLAIM_STALE_SECONDS` old, and the event's
deterministic id keeps a second store from counting it twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol
from uuid import UUID

__all__ = [
    "CLAIM_STALE_SECONDS",
    "OpenTask",
    "OtlpCall",
    "OtlpPrompt",
    "OtlpRecorded",
    "OtlpStore",
]

# A claim older than this was left by a process that stopped before storing the task's event.
CLAIM_STALE_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class OtlpCall:
    """One API call, ready to be summed into its task.

    `prompt` is the prompt id the record carried, or None: the call then belongs to its
    session's current prompt. Tokens are the task's measures: `input_tokens` all input (cache
    included), `output_tokens` all output (reasoning included).
    """

    call_id: str
    session_key: str
    prompt: str | None
    harness: str
    model: str
    task_type: str
    complexity: str
    project: str | None
    branch: str | None
    user: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd_micros: int
    failed: bool
    start_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True)
class OtlpPrompt:
    """A user prompt: the start of a new task in its session (`prompt`: its id or time)."""

    session_key: str
    prompt: str
    prompt_ns: int


@dataclass(frozen=True, slots=True)
class OpenTask:
    """An open task's running sums, as stored (claimed when returned by a close)."""

    instance_id: UUID
    task_key: str
    first_call: str
    harness: str
    model: str
    task_type: str
    complexity: str
    project: str | None
    branch: str | None
    user: str | None
    calls: int
    failed_calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd_micros: int
    start_ns: int
    end_ns: int


@dataclass(slots=True)
class OtlpRecorded:
    """What `otlp_record` did: calls summed, duplicates skipped, calls refused (no room for
    another open task, or their task was being closed), and the tasks prompts closed (claimed:
    the caller stores and forgets them)."""

    used: int = 0
    duplicates: int = 0
    refused: int = 0
    closed: list[OpenTask] | None = None


class OtlpStore(Protocol):
    """The OTLP receiver's storage methods (`_sqlite_otlp.py`, `_postgres_otlp.py`)."""

    def otlp_record(
        self,
        instance_id: UUID,
        items: Sequence[OtlpCall | OtlpPrompt],
        now: float,
        max_open: int,
    ) -> OtlpRecorded:
        """Sum the calls into their open tasks and apply the prompts, in order, in one
        transaction. A call already recorded is skipped; one that would open a task beyond
        `max_open` open tasks of the instance is refused. A prompt claims the open tasks of its
        session that belong to an earlier prompt."""

    def otlp_claim_idle(self, idle_before: float, now: float, limit: int) -> list[OpenTask]:
        """Claim up to `limit` tasks without a call since `idle_before` (and stale claims)."""

    def otlp_forget(self, tasks: Sequence[OpenTask]) -> None:
        """Delete claimed tasks whose event is stored."""

    def otlp_prune(self, before: float) -> int:
        """Forget call identities and session prompts last seen before `before`."""

    def otlp_open_tasks(self, instance_id: UUID | None = None) -> int:
        """How many tasks are open (of one instance, or of all)."""
