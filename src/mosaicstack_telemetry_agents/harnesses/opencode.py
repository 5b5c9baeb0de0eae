"""OpenCode's stored sessions read as turns: today's SQLite database and the older JSON files.

The format is OpenCode's own (`packages/opencode/src/session/message-v2.ts`, `session.sql.ts`):
a message's `data` (or JSON file) holds `role`, `time.created`/`completed` (ms), and for an
assistant message `parentID` (the user message it answers), `modelID`, `providerID`, `cost`,
`tokens {input, output, reasoning, cache {read, write}}`, `path {cwd, root}` and `error`. A
turn is a user message and the assistant messages that answer it. Child sessions (subagents,
`parent_id`) fold into the parent's turn that was running when they started.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

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


def tasks_from_messages(session_id: str, messages: Iterable[dict[str, Any]]) -> list[Task]:
    """The turns of one session from its messages (each with `id`), in creation order."""
    turns: dict[str, Task] = {}
    providers: dict[int, str] = {}
    current: Task | None = None
    for info in messages:
        when = _created(info)
        if info.get("role") == "user":
            current = Task(
                HARNESS, "custom", session_id, str(info.get("id")), token_details=_DETAILS
            )
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


def _database(path: Path, storage: Storage) -> Iterator[tuple[str, str | None, list[Any]]]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        sessions = connection.execute("SELECT id, parent_id FROM session ORDER BY time_created")
        for session_id, parent in sessions.fetchall():
            rows = connection.execute(
                "SELECT id, data FROM message WHERE session_id = ? ORDER BY time_created, id",
                (session_id,),
            )
            yield session_id, parent, list(_rows(rows, storage))
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


def _json_files(root: Path, storage: Storage) -> Iterator[tuple[str, str | None, list[Any]]]:
    parents: dict[str, str | None] = {}
    for path in sorted((root / "session").glob("*/*.json")):
        info = _load(path, storage)
        if info is not None:
            parents[path.stem] = info.get("parentID")
    for folder in sorted(p for p in (root / "message").glob("*") if p.is_dir()):
        messages = [m for m in (_load(p, storage) for p in sorted(folder.glob("*.json"))) if m]
        messages.sort(key=lambda m: (as_int((m.get("time") or {}).get("created")), m.get("id", "")))
        yield folder.name, parents.get(folder.name), messages


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
    for session_id, parent, messages in sessions:
        storage.sessions += 1
        tasks = tasks_from_messages(session_id, messages)
        if parent:
            children.append((parent, tasks))
        else:
            storage.tasks.extend(tasks)
    _fold_children(storage, children)
    return storage
