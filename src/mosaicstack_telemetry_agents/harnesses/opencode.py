"""OpenCode's stored sessions read as turns: today's SQLite database and the older JSON files.

The format is OpenCode's own (`packages/opencode/src/session/message-v2.ts`, `session.sql.ts`):
a message's `data` (or JSON file) holds `role`, `time.created`/`completed` (ms), and for an
assistant message `parentID` (the user message it answers), `modelID`, `providerID`, `cost`,
`tokens {input, output, reasoning, cache {read, write}}`, `path {cwd, root}` and `error`; a user
message's typed text is in its `text` parts (table `part`, or `part/<message>/*.json`). A turn is
a user message and the assistant messages that answer it. Child sessions (subagents,
`parent_id`) fold into the parent's turn that was running when they started.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mosaicstack_telemetry_agents.classify import prompt_task_type
from mosaicstack_telemetry_agents.harnesses._lines import LineTally, as_int, parse_time
from mosaicstack_telemetry_agents.project import label
from mosaicstack_telemetry_agents.tasks import CACHE_READ, CACHE_WRITE, REASONING, Request, Task

__all__ = ["Storage", "read_storage", "tasks_from_messages"]

HARNESS = "opencode"
_PROVIDERS = {
    "anthropic": "anthropic",
    "openai": "openai",
    "google": "google",
    "google-vertex": "google",
    "openrouter": "openrouter",
    "ollama": "ollama",
    "mistral": "mistral",
}
# OpenCode's tokens break out cache reads, cache writes and reasoning; it logs no git branch.
_DETAILS = frozenset({CACHE_READ, CACHE_WRITE, REASONING})
# A message file is a few KB; a bigger one is not OpenCode's and is counted broken.
_MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass
class Storage:
    """The turns of every session found, the sessions, and the records that were broken."""

    tasks: list[Task] = field(default_factory=list)
    sessions: int = 0
    tally: LineTally = field(default_factory=LineTally)


def _request(info: dict[str, Any], when: datetime | None) -> Request | None:
    tokens = info.get("tokens")
    if not isinstance(tokens, dict):
        return None
    cache = tokens.get("cache") if isinstance(tokens.get("cache"), dict) else {}
    cost = info.get("cost")
    return Request(
        model=str(info.get("modelID") or "unknown")[:100],
        input_tokens=as_int(tokens.get("input")),
        # OpenCode counts reasoning apart from output; both are billed as output.
        output_tokens=as_int(tokens.get("output")) + as_int(tokens.get("reasoning")),
        reasoning_tokens=as_int(tokens.get("reasoning")),
        cache_write_5m_tokens=as_int(cache.get("write")),  # type: ignore[union-attr]
        cache_read_tokens=as_int(cache.get("read")),  # type: ignore[union-attr]
        fallback_cost_usd=float(cost) if isinstance(cost, int | float) and cost >= 0 else None,
        key=str(info.get("id", "")),
        at=when,
    )


def _created(info: dict[str, Any]) -> datetime | None:
    time = info.get("time")
    return parse_time(time.get("created")) if isinstance(time, dict) else None


def tasks_from_messages(
    session_id: str,
    messages: Iterable[dict[str, Any]],
    prompt_types: Mapping[str, str] | None = None,
) -> list[Task]:
    """The turns of one session from its messages (each with `id`), in creation order.

    `prompt_types` holds the task type classified from each user message's text, by message id.
    """
    prompt_types = prompt_types or {}
    turns: dict[str, Task] = {}
    providers: dict[int, str] = {}
    current: Task | None = None
    for info in messages:
        when = _created(info)
        if info.get("role") == "user":
            current = Task(
                HARNESS, "custom", session_id, str(info.get("id")), token_details=_DETAILS
            )
            current.prompt_type = prompt_types.get(current.key, "unknown")
            turns[current.key] = current
            current.see(when)
            continue
        if info.get("role") != "assistant":
            continue
        task = turns.get(str(info.get("parentID"))) or current
        if task is None:
            task = current = Task(
                HARNESS, "custom", session_id, "session-start", token_details=_DETAILS
            )
            turns[task.key] = task
        _answer(task, info, when)
        providers[id(task)] = _PROVIDERS.get(str(info.get("providerID")), "custom")
    for task in turns.values():
        task.provider = providers.get(id(task), "custom")
    return [task for task in turns.values() if task.requests]


def _answer(task: Task, info: dict[str, Any], when: datetime | None) -> None:
    task.see(when)
    time = info.get("time")
    if isinstance(time, dict):
        task.see(parse_time(time.get("completed")))
    path = info.get("path")
    if isinstance(path, dict):
        task.cwd = label(path.get("cwd")) or task.cwd
    request = _request(info, when)
    if request is not None and (request.total_input_tokens or request.output_tokens):
        task.requests.append(request)
    if info.get("summary") is True or info.get("mode") == "compaction":
        task.compactions += 1
    error = info.get("error")
    if isinstance(error, dict):
        if error.get("name") == "MessageAbortedError":
            task.interrupted = True
        else:
            task.failed = True


def _fold_children(storage: Storage, children: list[tuple[str, list[Task]]]) -> None:
    # A subagent's session is part of the parent's turn that started it.
    by_session: dict[str, list[Task]] = {}
    for task in storage.tasks:
        by_session.setdefault(task.session_id, []).append(task)
    for parent, tasks in children:
        owners = by_session.get(parent)
        for task in tasks:
            owner = None
            for candidate in owners or []:
                if candidate.started and task.started and candidate.started <= task.started:
                    owner = candidate
            if owner is None:
                storage.tasks.append(task)
                continue
            owner.requests.extend(task.requests)
            owner.see(task.ended)


_Session = tuple[str, str | None, list[Any], dict[str, str]]
# The text parts of a session's user messages: what the person typed.
_PROMPT_PARTS = (
    "SELECT part.message_id, part.data FROM part JOIN message ON message.id = part.message_id"
    " WHERE part.session_id = ? AND json_extract(message.data, '$.role') = 'user'"
    " AND json_extract(part.data, '$.type') = 'text' ORDER BY part.id"
)


def _prompt_types(parts: Iterable[tuple[str, object]]) -> dict[str, str]:
    """The task type of each message's typed text (its non-synthetic text parts), by message id."""
    texts: dict[str, list[str]] = {}
    for message_id, part in parts:
        if not isinstance(part, dict) or part.get("synthetic"):
            continue
        text = part.get("text")
        if isinstance(text, str):
            texts.setdefault(message_id, []).append(text)
    return {message_id: prompt_task_type("\n".join(text)) for message_id, text in texts.items()}


def _database_prompts(connection: sqlite3.Connection, session_id: str) -> dict[str, str]:
    try:
        rows = connection.execute(_PROMPT_PARTS, (session_id,)).fetchall()
    except sqlite3.Error:  # no part table, or not JSON: the turns stay unclassified
        return {}
    return _prompt_types((str(message_id), _json(data)) for message_id, data in rows)


def _json(data: object) -> object:
    try:
        return json.loads(data) if isinstance(data, str | bytes) else None
    except (ValueError, RecursionError):
        return None


def _database(path: Path, storage: Storage) -> Iterator[_Session]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        sessions = connection.execute("SELECT id, parent_id FROM session ORDER BY time_created")
        for session_id, parent in sessions.fetchall():
            rows = connection.execute(
                "SELECT id, data FROM message WHERE session_id = ? ORDER BY time_created, id",
                (session_id,),
            )
            messages = list(_rows(rows, storage))
            yield session_id, parent, messages, _database_prompts(connection, session_id)
    finally:
        connection.close()


def _rows(rows: Iterable[tuple[str, str]], storage: Storage) -> Iterator[dict[str, Any]]:
    for message_id, data in rows:
        storage.tally.lines += 1
        try:
            info = json.loads(data)
        except (TypeError, ValueError):
            storage.tally.broken += 1
            continue
        if isinstance(info, dict):
            yield {**info, "id": message_id}
        else:
            storage.tally.broken += 1


def _json_files(root: Path, storage: Storage) -> Iterator[_Session]:
    parents: dict[str, str | None] = {}
    for path in sorted((root / "session").glob("*/*.json")):
        info = _load(path, storage)
        if info is not None:
            parents[path.stem] = info.get("parentID")
    for folder in sorted(p for p in (root / "message").glob("*") if p.is_dir()):
        messages = [m for m in (_load(p, storage) for p in sorted(folder.glob("*.json"))) if m]
        messages.sort(key=lambda m: (as_int((m.get("time") or {}).get("created")), m.get("id", "")))
        prompts = _json_prompts(root, messages, storage)
        yield folder.name, parents.get(folder.name), messages, prompts


def _json_prompts(root: Path, messages: list[dict[str, Any]], storage: Storage) -> dict[str, str]:
    parts = []
    for message in messages:
        message_id = message.get("id")
        # A plain name only: an id is never a path out of the folder.
        if message.get("role") != "user" or not isinstance(message_id, str):
            continue
        if message_id and message_id == Path(message_id).name and message_id not in (".", ".."):
            for path in sorted((root / "part" / message_id).glob("*.json")):
                parts.append((message_id, _load(path, storage)))
    return _prompt_types(parts)


def _load(path: Path, storage: Storage) -> dict[str, Any] | None:
    storage.tally.lines += 1
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise ValueError("too big")
        info = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        storage.tally.broken += 1
        return None
    if not isinstance(info, dict):
        storage.tally.broken += 1
        return None
    return info


def read_storage(root: Path) -> Storage:
    """Every session under OpenCode's data folder: `opencode.db`, else `storage/` JSON files."""
    storage = Storage()
    database = root / "opencode.db"
    json_root = root / "storage" if (root / "storage").is_dir() else root
    sessions = (
        _database(database, storage) if database.is_file() else _json_files(json_root, storage)
    )
    children: list[tuple[str, list[Task]]] = []
    for session_id, parent, messages, prompt_types in sessions:
        storage.sessions += 1
        tasks = tasks_from_messages(session_id, messages, prompt_types)
        if parent:
            children.append((parent, tasks))
        else:
            storage.tasks.extend(tasks)
    _fold_children(storage, children)
    return storage
