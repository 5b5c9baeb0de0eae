"""OpenAI Codex CLI rollouts (`$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*.jsonl`) read as turns.

A turn runs from `task_started` to the next one (older rollouts without task events: from one
`user_message` to the next). Tokens come from `token_count` events: the growth of the session's
cumulative `total_token_usage` (repeated events add nothing), or `last_token_usage` where the
total restarts. OpenAI's `input_tokens` include the cached ones; `output_tokens` include reasoning
(`reasoning_output_tokens`). The session's `git` (branch, repository URL) and `cwd` come from
`session_meta`; the URL is reduced to its project at once, so its credentials go no further.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mosaicstack_telemetry_agents.classify import prompt_task_type
from mosaicstack_telemetry_agents.harnesses._lines import (
    LineTally,
    as_int,
    bounded_lines,
    json_objects,
    parse_time,
)
from mosaicstack_telemetry_agents.project import label, project_from_remote
from mosaicstack_telemetry_agents.tasks import CACHE_READ, REASONING, Request, Task

__all__ = ["Rollout", "parse_rollout", "read_rollout", "rollout_files"]

HARNESS = "custom"
PROVIDER = "openai"
# OpenAI reports cached input and reasoning output; its caches have no writes to count.
_DETAILS = frozenset({CACHE_READ, REASONING})


@dataclass
class Rollout:
    """A rollout's turns and the lines read and broken."""

    session_id: str
    tasks: list[Task] = field(default_factory=list)
    tally: LineTally = field(default_factory=LineTally)


@dataclass
class _Reader:
    rollout: Rollout
    current: Task | None = None
    model: str = "unknown"
    context_window: int = 0
    task_events: bool = False
    total: tuple[int, int, int, int] = (0, 0, 0, 0)
    cwd: str | None = None
    project: str | None = None
    branch: str | None = None
    completed: set[int] = field(default_factory=set)

    def task(self, key: str) -> Task:
        task = Task(HARNESS, PROVIDER, self.rollout.session_id, key, token_details=_DETAILS)
        if self.context_window:
            task.context_window = self.context_window
        self.rollout.tasks.append(task)
        self.current = task
        return task

    def read(self, record: dict[str, Any]) -> None:
        payload = record.get("payload")
        if not isinstance(payload, dict):
            return
        kind, event = record.get("type"), payload.get("type")
        if kind == "session_meta":
            self.meta(payload)
        elif kind == "turn_context" and isinstance(payload.get("model"), str):
            self.model = payload["model"]
        elif kind == "event_msg":
            self.event(event, payload, record)
        if self.current is not None:
            self.current.see(parse_time(record.get("timestamp")))

    def meta(self, payload: dict[str, Any]) -> None:
        if isinstance(payload.get("id"), str):
            self.rollout.session_id = payload["id"]
        self.cwd = label(payload.get("cwd")) or self.cwd
        git = payload.get("git")
        if isinstance(git, dict):
            url = git.get("repository_url")
            self.project = project_from_remote(url) if isinstance(url, str) else None
            self.branch = label(git.get("branch"))

    def event(self, event: object, payload: dict[str, Any], record: dict[str, Any]) -> None:
        if event == "task_started":
            self.task_events = True
            self.context_window = as_int(payload.get("model_context_window"))
            turn = payload.get("turn_id")
            self.task(turn if isinstance(turn, str) else f"turn-{len(self.rollout.tasks)}")
        elif event == "user_message" and not self.task_events:
            self.task(f"turn-{len(self.rollout.tasks)}")
        task = self.current or self.task("session-start")
        if event == "token_count":
            self.tokens(task, payload.get("info"), record)
        elif event == "task_complete":
            self.completed.add(id(task))
        elif event == "turn_aborted":
            task.interrupted = True
        elif event == "error":
            task.failed = True
        elif event == "context_compacted":
            task.compactions += 1
        elif event == "user_message" and task.prompt_type == "unknown":
            # The turn's first prompt says what it is; later ones steer it.
            message = payload.get("message")
            task.prompt_type = prompt_task_type(message) if isinstance(message, str) else "unknown"

    def tokens(self, task: Task, info: object, record: dict[str, Any]) -> None:
        if not isinstance(info, dict):
            return
        total = _usage(info.get("total_token_usage"))
        if total is not None and all(
            now >= before for now, before in zip(total, self.total, strict=True)
        ):
            delta = tuple(now - before for now, before in zip(total, self.total, strict=True))
        else:  # no total, or it started over: the last request's own counts
            delta = _usage(info.get("last_token_usage")) or (0, 0, 0, 0)
        if total is not None:
            self.total = total
        if not any(delta):
            return  # a repeated event: nothing new
        input_total, cached, output, reasoning = delta
        cached = min(cached, input_total)
        task.requests.append(
            Request(
                model=self.model,
                input_tokens=input_total - cached,
                cache_read_tokens=cached,
                output_tokens=output,
                reasoning_tokens=min(reasoning, output),
                key=f"codex/{self.total[:3]}",
                at=parse_time(record.get("timestamp")),
            )
        )


def _usage(value: object) -> tuple[int, int, int, int] | None:
    if not isinstance(value, dict):
        return None
    return (
        as_int(value.get("input_tokens")),
        as_int(value.get("cached_input_tokens")),
        as_int(value.get("output_tokens")),
        as_int(value.get("reasoning_output_tokens")),
    )


def parse_rollout(session_id: str, lines: Iterable[str | bytes]) -> Rollout:
    """The turns of one rollout; `session_id` until the rollout's `session_meta` names it."""
    reader = _Reader(Rollout(session_id))
    for record in json_objects(lines, reader.rollout.tally):
        reader.read(record)
    if reader.task_events:
        # A turn that never completed was cut short (interrupted, or the process ended).
        for task in reader.rollout.tasks:
            if id(task) not in reader.completed and task.key != "session-start":
                task.interrupted = True
    reader.rollout.tasks = [task for task in reader.rollout.tasks if task.requests]
    for task in reader.rollout.tasks:
        task.cwd, task.project, task.branch = reader.cwd, reader.project, reader.branch
    return reader.rollout


def rollout_files(sessions: Path) -> list[Path]:
    """Every rollout under the sessions folder, oldest first."""
    return sorted(sessions.rglob("rollout-*.jsonl"))


def read_rollout(path: Path) -> Rollout:
    """Parse a rollout file, streaming it."""
    with path.open("rb") as handle:
        return parse_rollout(path.stem, bounded_lines(handle))
