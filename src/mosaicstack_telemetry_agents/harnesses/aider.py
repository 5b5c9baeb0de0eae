"""Aider's analytics log (`--analytics-log FILE`) read as sessions: Aider logs no turns.

A session runs from `launched` to `exit`; its `message_send` events are its requests (model,
`prompt_tokens`, `completion_tokens` and Aider's own `cost`). Calls logged outside any such span,
as happens when several Aider processes share one log, form sessions of their own (consecutive
ones together) and are counted. The provider is read from the model's prefix (`gemini/...`).
The log holds no prompts: `type_tasks` takes each session's task type from Aider's chat history
(`aider_chat.py`), matched by time.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
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
from mosaicstack_telemetry_agents.harnesses.aider_chat import ChatSession, opening_request
from mosaicstack_telemetry_agents.tasks import Request, Task

__all__ = [
    "HEADER_LEAD",
    "AnalyticsLog",
    "parse_log",
    "provider_and_model",
    "read_log",
    "type_tasks",
]

HARNESS = "aider"
# Prefixes of litellm model names (what Aider logs) and the provider each one means.
_PREFIXES = {
    "anthropic": "anthropic",
    "openai": "openai",
    "azure": "openai",
    "gemini": "google",
    "vertex_ai": "google",
    "openrouter": "openrouter",
    "ollama": "ollama",
    "ollama_chat": "ollama",
    "mistral": "mistral",
}
_BARE = (
    ("claude", "anthropic"),
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("gemini", "google"),
    ("mistral", "mistral"),
    ("codestral", "mistral"),
)
# Aider writes its chat history header when it opens its terminal, then logs `launched` once its
# settings are read: within the same second or two. The bound leaves room for a slow start; a
# chat session that began longer before a launch is not that launch's.
HEADER_LEAD = timedelta(seconds=30)


@dataclass
class AnalyticsLog:
    """Sessions read from the log, how many had no launch, and lines read and broken.

    `launches` holds every launch with its time, those that made no call too: each began a chat
    session, which no other launch may take.
    """

    tasks: list[Task] = field(default_factory=list)
    launches: list[tuple[datetime, Task]] = field(default_factory=list)
    sessions: int = 0
    orphan_sessions: int = 0
    tally: LineTally = field(default_factory=LineTally)


def provider_and_model(name: str) -> tuple[str, str]:
    """('google', 'gemini-2.5-pro') from 'gemini/gemini-2.5-pro'; 'custom' when unknown."""
    prefix, _, rest = name.partition("/")
    if rest and prefix in _PREFIXES:
        return _PREFIXES[prefix], rest
    for start, provider in _BARE:
        if name.startswith(start):
            return provider, name
    return "custom", name


@dataclass
class _Reader:
    log: AnalyticsLog
    current: Task | None = None
    orphan: bool = False

    def open(self, record: dict[str, Any], orphan: bool) -> Task:
        when = parse_time(record.get("time"))
        stamp = when.isoformat() if when else str(len(self.log.tasks))
        user = str(record.get("user_id", "unknown"))[:64]
        task = Task(HARNESS, "custom", f"{user}/{'orphan-' if orphan else ''}{stamp}", "session")
        task.see(when)
        self.log.tasks.append(task)
        if when is not None and not orphan:
            self.log.launches.append((when, task))
        self.log.sessions += 1
        self.log.orphan_sessions += orphan
        self.current, self.orphan = task, orphan
        return task

    def read(self, record: dict[str, Any]) -> None:
        event = record.get("event")
        if event == "launched":
            self.open(record, orphan=False)
            return
        task = self.current
        if task is None and event == "message_send":
            task = self.open(record, orphan=True)
        if task is None:
            return
        task.see(parse_time(record.get("time")))
        if event == "message_send":
            self.send(task, record)
        elif event == "exit":
            self.current = None

    def send(self, task: Task, record: dict[str, Any]) -> None:
        properties = record.get("properties")
        if not isinstance(properties, dict):
            return
        provider, model = provider_and_model(str(properties.get("main_model") or "unknown"))
        cost = properties.get("cost")
        task.provider = provider
        task.requests.append(
            Request(
                model=model[:100],
                input_tokens=as_int(properties.get("prompt_tokens")),
                output_tokens=as_int(properties.get("completion_tokens")),
                cost_usd=float(cost) if isinstance(cost, int | float) and cost >= 0 else None,
                at=parse_time(record.get("time")),
            )
        )


def parse_log(lines: Iterable[str | bytes]) -> AnalyticsLog:
    """The sessions of an analytics log; only those with at least one call are kept."""
    reader = _Reader(AnalyticsLog())
    for record in json_objects(lines, reader.log.tally):
        reader.read(record)
    reader.log.tasks = [task for task in reader.log.tasks if task.requests]
    return reader.log


def read_log(path: Path) -> AnalyticsLog:
    """Parse an analytics log file, streaming it."""
    with path.open("rb") as handle:
        return parse_log(bounded_lines(handle))


def _local(started: datetime | None, zone: tzinfo | None) -> datetime | None:
    """A chat session's start (local wall time as Aider wrote it) as an aware time."""
    if started is None:
        return None
    try:
        return started.replace(tzinfo=zone) if zone else started.astimezone()
    except (ValueError, OverflowError, OSError):  # a year the system's clock cannot place
        return None


def type_tasks(
    log: AnalyticsLog, sessions: Sequence[ChatSession], zone: tzinfo | None = None
) -> int:
    """Give each launched task the task type of the request that began its chat session.

    The rule: a launch's chat session is the latest one that started at or before the launch and
    at most `HEADER_LEAD` earlier (Aider writes the header first). Launches take their sessions
    in time order, one each: a launch whose latest session another launch already took gets none
    (an Aider started in another repository, whose history is elsewhere). The task's type is the
    one `classify.py` gives to the session's first request (`aider_chat.opening_request`); a
    session with none leaves it `unknown`, as does every session of calls outside a launch (which
    process made them is not known). Headers are local time without a zone: `zone` is where the
    history was written, by default this machine's.

    Returns how many of the log's tasks were matched to a chat session.
    """
    starts = sorted(
        (start, index)
        for index, session in enumerate(sessions)
        if (start := _local(session.started, zone)) is not None
    )
    times = [start for start, _ in starts]
    kept = {id(task) for task in log.tasks}
    taken: set[int] = set()
    matched = 0
    for launched, task in sorted(log.launches, key=lambda launch: launch[0]):
        position = bisect_right(times, launched) - 1
        if position < 0 or launched - times[position] > HEADER_LEAD:
            continue
        index = starts[position][1]
        if index in taken:
            continue
        taken.add(index)
        if id(task) in kept:
            matched += 1
            request = opening_request(sessions[index])
            task.prompt_type = prompt_task_type(request) if request else "unknown"
    return matched
