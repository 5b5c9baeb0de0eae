"""A `Task` becomes one `TaskCompletionEvent`: priced, clamped to the schema, with a stable id.

The schema's limits hold: a field over its limit is clamped to it on its own (tokens at
10,000,000, cost at $100, duration at 24 h) and counted in the summary. The event id is derived
from harness, session, task key and part, so a rerun or a resend never counts a task twice.

Schema 1.1 fields are set from what the log holds: the project (the profile's, else the log's,
else the git remote of the task's directory), the branch (a detached `HEAD` is none), the cache
and reasoning token sums where the harness reports them; the user only when configured. A task
with a request of no known price keeps the cost of its priced requests, and the summary says
how many requests were left unpriced: a table never shows such a cost as a plain figure.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_agents.pricing import price_usd
from mosaicstack_telemetry_agents.project import label, project_of_directory
from mosaicstack_telemetry_agents.settings import Profile
from mosaicstack_telemetry_agents.summary import Summary
from mosaicstack_telemetry_agents.tasks import CACHE_READ, CACHE_WRITE, REASONING, Task

__all__ = ["MAX_MICROS", "MAX_TOKENS", "Estimate", "event_id", "to_event"]

# The schema's ranges (sdk-api-reference.md), held here so clamping and docs agree.
MAX_TOKENS = 10_000_000
MAX_MICROS = 100_000_000
MAX_DURATION_MS = 86_400_000
MAX_COMPACTIONS = 100
# A fixed namespace: the same task always gets the same event id, on every machine.
_NAMESPACE = uuid.UUID("6d1f3a52-0c4e-5b8e-9a57-3f2e2b8c7a10")


@dataclass(frozen=True)
class Estimate:
    """What the prediction said before the task: its `estimated_*` fields."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd_micros: int = 0


def event_id(task: Task) -> uuid.UUID:
    """The task's event id: a UUIDv5 of harness, session, key and (above 0) part."""
    name = f"{task.harness}/{task.session_id}/{task.key}"
    if task.part:
        name += f"/{task.part}"
    return uuid.uuid5(_NAMESPACE, name)


def _cost_micros(task: Task, summary: Summary) -> int:
    total = Decimal(0)
    for request in task.requests:
        price = price_usd(request, task.provider)
        if price is None:
            summary.unpriced[request.model] += 1
            summary.warn_once(
                f"price:{request.model}",
                f"no known price for model {request.model!r}: its requests are unpriced "
                "(left out of the cost, and counted as unpriced)",
            )
            continue
        total += price
    return int((total * 1_000_000).to_integral_value())


def _actuals(task: Task, summary: Summary) -> tuple[int, int, int]:
    """(input tokens, output tokens, cost micros) of the task, before clamping; counted."""
    actual_in = sum(request.total_input_tokens for request in task.requests)
    actual_out = sum(request.output_tokens for request in task.requests)
    cost = _cost_micros(task, summary)
    summary.tasks += 1
    summary.input_tokens += actual_in
    summary.output_tokens += actual_out
    summary.cost_usd_micros += cost
    return actual_in, actual_out, cost


def _clamp(name: str, value: int, limit: int, summary: Summary) -> int:
    if value <= limit:
        return max(0, value)
    summary.clamped[name] += 1
    summary.warn_once(
        "clamp", f"a task over the schema's limits was clamped ({name} {value:,} > {limit:,})"
    )
    return limit


def to_event(
    task: Task,
    instance_id: str,
    profile: Profile,
    summary: Summary,
    estimate: Estimate | None = None,
) -> TaskCompletionEvent:
    """The event of `task`; counts its tokens, cost, clamps and unpriced models in `summary`."""
    estimate = estimate or Estimate()
    actual_in, actual_out, cost = _actuals(task, summary)
    outcome = profile.outcome or task.outcome
    fields = {
        "instance_id": instance_id,
        "event_id": event_id(task),
        "timestamp": task.ended,
        "task_duration_ms": _clamp("duration", task.duration_ms, MAX_DURATION_MS, summary),
        "task_type": profile.task_type_for(task.prompt_type),
        "complexity": profile.complexity,
        "harness": task.harness,
        "model": task.model[:100] or "unknown",
        "provider": task.provider,
        "estimated_input_tokens": min(estimate.input_tokens, MAX_TOKENS),
        "estimated_output_tokens": min(estimate.output_tokens, MAX_TOKENS),
        "actual_input_tokens": _clamp("input_tokens", actual_in, MAX_TOKENS, summary),
        "actual_output_tokens": _clamp("output_tokens", actual_out, MAX_TOKENS, summary),
        "estimated_cost_usd_micros": min(estimate.cost_usd_micros, MAX_MICROS),
        "actual_cost_usd_micros": _clamp("cost", cost, MAX_MICROS, summary),
        # A harness runs no gates itself: passed means the task ended well. An orchestrator
        # that runs gates reports them with `send`.
        "quality_gate_passed": outcome == "success",
        "context_compactions": min(task.compactions, MAX_COMPACTIONS),
        "context_rotations": 0,
        "context_utilization_final": task.context_utilization,
        "outcome": outcome,
        "retry_count": 0,
        "language": profile.language,
        "repo_size_category": profile.repo_size,
    }
    if fields["timestamp"] is None:
        del fields["timestamp"]
    fields.update(_schema_1_1(task, profile, summary))
    return TaskCompletionEvent.model_validate(fields)


def _schema_1_1(task: Task, profile: Profile, summary: Summary) -> dict[str, object]:
    """The 1.1 fields the log (or the profile) holds; none at all keeps the event at 1.0."""
    branch = label(profile.branch) or label(task.branch)
    fields: dict[str, object] = {
        "project": label(profile.project)
        or label(task.project)
        or (project_of_directory(task.cwd) if task.cwd else None),
        # A detached head names no branch.
        "branch": None if branch == "HEAD" else branch,
        "user": label(profile.user),
    }
    for name, detail in (
        ("cache_read_tokens", CACHE_READ),
        ("cache_write_tokens", CACHE_WRITE),
        ("reasoning_tokens", REASONING),
    ):
        value = task.detail(detail)
        if value is not None:
            summary.details[name.removesuffix("_tokens").replace("_", " ")] += value
        fields[name] = None if value is None else _clamp(name, value, MAX_TOKENS, summary)
    return {name: value for name, value in fields.items() if value is not None}
