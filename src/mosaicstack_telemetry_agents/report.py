"""Report the turns of one Claude Code session that were not reported yet (the hook's worker).

Each turn is reported once as part 0; requests that appear in a turn after it was reported (a
Stop hook that made the agent go on, a background subagent that finished late) are reported as
the next part, so every token is counted once and in full, however the hooks fire.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_agents.delivery import Delivered, deliver
from mosaicstack_telemetry_agents.events import Estimate, to_event
from mosaicstack_telemetry_agents.harnesses.claude_code import read_session
from mosaicstack_telemetry_agents.hookstate import ReportState, estimate_before, session_lock
from mosaicstack_telemetry_agents.settings import AgentSettings, Profile
from mosaicstack_telemetry_agents.summary import Summary
from mosaicstack_telemetry_agents.tasks import Task

__all__ = ["ESTIMATE_SLACK", "instance_id", "report_session"]

# The prompt's line can be stamped a moment after its UserPromptSubmit hook ran.
ESTIMATE_SLACK = timedelta(seconds=10)


def instance_id(settings: AgentSettings) -> str:
    """The configured instance id (flag, else `MOSAIC_TELEMETRY_INSTANCE_ID`)."""
    value = settings.instance_id or os.environ.get("MOSAIC_TELEMETRY_INSTANCE_ID", "")
    if not value:
        raise ValueError("no instance id: set MOSAIC_TELEMETRY_INSTANCE_ID or --instance-id")
    return value


@dataclass(frozen=True)
class _Unreported:
    task: Task
    keys: list[str]


def _unreported(task: Task, state: ReportState) -> _Unreported | None:
    if task.key not in state.parts:
        return _Unreported(task, [r.key for r in task.requests if r.key])
    # Requests without a key cannot be told apart: they were counted in part 0.
    new = [r for r in task.requests if r.key and r.key not in state.reported]
    if not new:
        return None
    part = replace(task, requests=new, part=state.parts[task.key] + 1, started=None, ended=None)
    for request in new:
        part.see(request.at)
    return _Unreported(part, [r.key for r in new])


def _after(task: Task, until: datetime) -> bool:
    return task.started is not None and task.started > until


def _estimate(settings: AgentSettings, session_id: str, task: Task) -> Estimate | None:
    if task.part or task.started is None:
        return None
    record = estimate_before(settings.state_dir, session_id, task.started + ESTIMATE_SLACK)
    if record is None:
        return None
    return Estimate(
        int(record.get("input", 0)), int(record.get("output", 0)), int(record.get("cost", 0))
    )


def report_session(
    session_id: str,
    transcript: Path,
    settings: AgentSettings,
    profile: Profile,
    summary: Summary,
    timeout: float,
    until: datetime | None = None,
) -> Delivered | None:
    """Report what is new in the session; None when there was nothing to report.

    Turns started after `until` (the Stop hook's time) are left for the next report.
    """
    instance = instance_id(settings)
    with session_lock(settings.state_dir, session_id):
        state = ReportState.load(settings.state_dir, session_id)
        parsed = read_session(transcript)
        summary.skip("broken lines", parsed.tally.broken)
        tasks = [t for t in parsed.tasks if until is None or not _after(t, until)]
        pending = [u for u in (_unreported(t, state) for t in tasks) if u is not None]
        if not pending:
            # Nothing new, but the spool may hold what an outage left: this run delivers it.
            deliver([], settings, timeout=timeout)
            return None
        events: list[TaskCompletionEvent] = []
        for item in pending:
            # The hook's session id, not the file name: they are the same for Claude Code.
            task = replace(item.task, session_id=session_id)
            estimate = _estimate(settings, session_id, task)
            events.append(to_event(task, instance, profile, summary, estimate))
        delivered = deliver(events, settings, timeout=timeout)
        if delivered.complete:
            for item in pending:
                state.parts[item.task.key] = item.task.part
                state.reported.update(item.keys)
            state.save(settings.state_dir, session_id)
        return delivered
