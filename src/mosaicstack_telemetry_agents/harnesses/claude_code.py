"""Claude Code transcripts (`~/.claude/projects/<project>/<session>.jsonl`) read as turns.

A turn is one prompt the person typed and everything the agent did for it, until the next
prompt. Tool results, meta lines, hook feedback, local command output, task notifications and
compaction summaries are not prompts. Streaming writes several lines per API message: each
message is counted once (by message id and request id), with the line of the final counts.
Subagent files (`<session>/subagents/agent-*.jsonl`) fold into the turn that started them; their
own lines record one output token per line, so the final message of each takes its true counts
from the parent's tool result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
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
from mosaicstack_telemetry_agents.tasks import CACHE_READ, CACHE_WRITE, Request, Task

__all__ = ["Transcript", "parse_session", "read_session", "session_files"]

HARNESS = "claude_code"
PROVIDER = "anthropic"
# Text that Claude Code writes into a user line itself: never what the person typed.
_INJECTED = (
    "<local-command-stdout>",
    "<local-command-stderr>",
    "<local-command-caveat>",
    "<task-notification>",
    "<system-reminder>",
    "<bash-input>",
    "<bash-stdout>",
    "<bash-stderr>",
    "<user-prompt-submit-hook>",
    "Caveat: ",
)
_INTERRUPTED = re.compile(r"^\[Request interrupted by user")
# Claude Code writes API errors as assistant lines of this model, with zero usage.
_SYNTHETIC = "<synthetic>"
# Anthropic's usage breaks out cache reads and writes; thinking is not counted apart.
_DETAILS = frozenset({CACHE_READ, CACHE_WRITE})


@dataclass
class Transcript:
    """A session's turns, the lines read and broken, and the subagents folded in."""

    session_id: str
    tasks: list[Task] = field(default_factory=list)
    tally: LineTally = field(default_factory=LineTally)
    subagents: int = 0


def _content(record: dict[str, Any]) -> object:
    message = record.get("message")
    return message.get("content") if isinstance(message, dict) else None


def _texts(content: object) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        ]
    return []


def is_prompt(record: dict[str, Any]) -> bool:
    """Whether a line is a prompt the person typed (a slash command counts, its expansion not)."""
    if record.get("type") != "user":
        return False
    if any(record.get(flag) for flag in ("isMeta", "isCompactSummary", "isSidechain")):
        return False
    if record.get("isVisibleInTranscriptOnly"):
        return False
    content = _content(record)
    if isinstance(content, list):
        kinds = {b.get("type") for b in content if isinstance(b, dict)}
        if "tool_result" in kinds or not kinds & {"text", "image", "document"}:
            return False
    texts = [text.lstrip() for text in _texts(content)]
    if not texts:  # an image or document alone
        return isinstance(content, list)
    first = texts[0]
    return bool(first) and not (first.startswith(_INJECTED) or _INTERRUPTED.match(first))


def _request(message: dict[str, Any], at: datetime | None = None, key: str = "") -> Request | None:
    usage = message.get("usage")
    model = message.get("model")
    if not isinstance(usage, dict) or not isinstance(model, str) or model == _SYNTHETIC:
        return None
    creation = usage.get("cache_creation")
    write_total = as_int(usage.get("cache_creation_input_tokens"))
    write_1h = (
        as_int(creation.get("ephemeral_1h_input_tokens")) if isinstance(creation, dict) else 0
    )
    write_1h = min(write_1h, write_total)
    return Request(
        model=model,
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
        cache_write_5m_tokens=write_total - write_1h,
        cache_write_1h_tokens=write_1h,
        cache_read_tokens=as_int(usage.get("cache_read_input_tokens")),
        key=key,
        at=at,
    )


def _where(task: Task, record: dict[str, Any]) -> None:
    """The turn's working directory and git branch: the last its lines name (it may `cd`)."""
    cwd, branch = record.get("cwd"), record.get("gitBranch")
    if isinstance(cwd, str) and cwd:
        task.cwd = cwd
    if isinstance(branch, str) and branch:
        task.branch = branch


def _message_key(message: dict[str, Any], request_id: object) -> str:
    message_id = message.get("id")
    return f"{message_id}/{request_id}" if isinstance(message_id, str) else ""


@dataclass
class _Reader:
    """Walks a session's lines in order, building turns."""

    transcript: Transcript
    current: Task | None = None
    # (message id, request id) -> (task, index in task.requests): one count per API message.
    seen: dict[str, tuple[Task, int]] = field(default_factory=dict)
    # agentId -> the subagent's final usage, as the parent's tool result states it.
    agent_usage: dict[str, Request] = field(default_factory=dict)

    def task(self, key: str) -> Task:
        task = Task(HARNESS, PROVIDER, self.transcript.session_id, key, token_details=_DETAILS)
        self.transcript.tasks.append(task)
        self.current = task
        return task

    def read(self, record: dict[str, Any]) -> None:
        when = parse_time(record.get("timestamp"))
        kind = record.get("type")
        if kind == "user" and is_prompt(record):
            key = record.get("uuid")
            task = self.task(key if isinstance(key, str) else f"turn-{len(self.transcript.tasks)}")
            task.prompt_type = prompt_task_type("\n".join(_texts(_content(record))))
        task = self.current or self.task("session-start")
        if kind in ("user", "assistant", "system"):
            task.see(when)
            _where(task, record)
        if kind == "user":
            self.user(task, record)
        elif kind == "assistant":
            self.assistant(task, record)
        elif kind == "system" and record.get("subtype") == "compact_boundary":
            task.compactions += 1

    def user(self, task: Task, record: dict[str, Any]) -> None:
        if any(_INTERRUPTED.match(text.lstrip()) for text in _texts(_content(record))):
            task.interrupted = True
        result = record.get("toolUseResult")
        if isinstance(result, dict) and isinstance(result.get("agentId"), str):
            request = _request({"usage": result.get("usage"), "model": "subagent"})
            if request is not None:
                self.agent_usage[result["agentId"]] = request

    def assistant(self, task: Task, record: dict[str, Any]) -> None:
        message = record.get("message")
        if not isinstance(message, dict):
            return
        # Only an error that ends the turn makes it a failure: Claude Code retries the others.
        task.failed = bool(record.get("isApiErrorMessage"))
        key = _message_key(message, record.get("requestId"))
        request = _request(message, parse_time(record.get("timestamp")), key)
        if request is None:
            return
        self.count(task, request)

    def count(self, task: Task, request: Request) -> None:
        key = request.key
        if not key:  # no message id: nothing to deduplicate on
            task.requests.append(request)
            return
        known = self.seen.get(key)
        if known is None:
            self.seen[key] = (task, len(task.requests))
            task.requests.append(request)
            return
        owner, index = known
        if request.output_tokens > owner.requests[index].output_tokens:
            owner.requests[index] = request  # the later line of a stream has the final counts


def _owner(tasks: list[Task], when: datetime | None) -> Task | None:
    """The turn running at `when`: the last one started at or before it."""
    owner = tasks[0] if tasks else None
    for task in tasks:
        if when is not None and task.started is not None and task.started <= when:
            owner = task
    return owner


def _fold_subagent(reader: _Reader, lines: Iterable[str | bytes], agent_id: str) -> None:
    """Count a subagent's messages into the turn that started it."""
    records = json_objects(lines, reader.transcript.tally)
    first = None
    requests: list[Request] = []
    for record in records:
        when = parse_time(record.get("timestamp"))
        first = first or when
        message = record.get("message")
        if record.get("type") == "assistant" and isinstance(message, dict):
            key = _message_key(message, record.get("requestId"))
            request = _request(message, when, key)
            if request is not None:
                requests.append(request)
    owner = _owner(reader.transcript.tasks, first)
    if owner is None or not requests:
        return
    reader.transcript.subagents += 1
    final = reader.agent_usage.get(agent_id)
    for request in requests:
        reader.count(owner, _with_final_output(request, final))


def _with_final_output(request: Request, final: Request | None) -> Request:
    # The parent's result carries the subagent's last message with its true output count.
    if final is None or final.output_tokens <= request.output_tokens:
        return request
    same = (
        final.input_tokens,
        final.cache_read_tokens,
        final.cache_write_5m_tokens + final.cache_write_1h_tokens,
    ) == (
        request.input_tokens,
        request.cache_read_tokens,
        request.cache_write_5m_tokens + request.cache_write_1h_tokens,
    )
    return replace(request, output_tokens=final.output_tokens) if same else request


def parse_session(
    session_id: str,
    lines: Iterable[str | bytes],
    subagents: Iterable[tuple[str, Iterable[str | bytes]]] = (),
) -> Transcript:
    """The turns of one session: its transcript's lines, then each (agent id, lines) subagent."""
    reader = _Reader(Transcript(session_id))
    for record in json_objects(lines, reader.transcript.tally):
        reader.read(record)
    for agent_id, agent_lines in subagents:
        _fold_subagent(reader, agent_lines, agent_id)
    reader.transcript.tasks = [task for task in reader.transcript.tasks if task.requests]
    return reader.transcript


def session_files(transcript: Path) -> list[tuple[str, Path]]:
    """(agent id, path) of the subagent files of a transcript (`<session>/subagents/*.jsonl`)."""
    folder = transcript.with_suffix("") / "subagents"
    if not folder.is_dir():
        return []
    return [(path.stem.removeprefix("agent-"), path) for path in sorted(folder.glob("*.jsonl"))]


def read_session(transcript: Path) -> Transcript:
    """Parse a transcript file and its subagent files, streaming them line by line."""
    handles = []
    try:
        main = transcript.open("rb")
        handles.append(main)
        agents = []
        for agent_id, path in session_files(transcript):
            handle = path.open("rb")
            handles.append(handle)
            agents.append((agent_id, bounded_lines(handle)))
        return parse_session(transcript.stem, bounded_lines(main), agents)
    finally:
        for handle in handles:
            handle.close()
