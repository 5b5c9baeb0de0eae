"""`mosaic-telemetry import HARNESS`: every task already on disk becomes an event.

The same rules as the hook (turns where the log has them, sessions where it does not); ids are
deterministic, so importing twice stores once. A progress bar runs over the files, and a summary
table tells sessions, tasks, tokens, cost, delivery, and what was skipped and why.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_agents.delivery import Delivered, deliver
from mosaicstack_telemetry_agents.events import to_event
from mosaicstack_telemetry_agents.harnesses import aider, aider_chat, claude_code, codex, opencode
from mosaicstack_telemetry_agents.report import instance_id
from mosaicstack_telemetry_agents.settings import AgentSettings, Profile
from mosaicstack_telemetry_agents.summary import Summary
from mosaicstack_telemetry_agents.tasks import Task

__all__ = ["Read", "read_source", "run_import", "source_units"]

# Seconds the delivery may take per 100 events before the rest is left in the spool.
_SECONDS_PER_BATCH = 2.0
# Aider's own variable for its chat history file (`--chat-history-file`), honoured here too.
ENV_AIDER_CHAT_HISTORY = "AIDER_CHAT_HISTORY_FILE"
# What `Profile.task_type_for` returns as it is when no task type is configured.
_CLASSIFIED = "classified"


@dataclass
class Read:
    """What one unit (a file, a database) held: its tasks, sessions and broken records.

    `notes` are counts the summary shows as they are; `warnings` are told once each.
    """

    tasks: list[Task]
    sessions: int
    broken: int
    orphan_sessions: int = 0
    notes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _claude(path: Path) -> Read:
    transcript = claude_code.read_session(path)
    return Read(transcript.tasks, 1, transcript.tally.broken)


def _codex(path: Path) -> Read:
    rollout = codex.read_rollout(path)
    return Read(rollout.tasks, 1, rollout.tally.broken)


def _aider(path: Path, histories: Sequence[Path] = (), warnings: Sequence[str] = ()) -> Read:
    """The analytics log's sessions, typed from the chat histories (see `aider.type_tasks`)."""
    log = aider.read_log(path)
    read = Read(log.tasks, log.sessions, log.tally.broken, log.orphan_sessions)
    read.warnings.extend(warnings)
    sessions: list[aider_chat.ChatSession] = []
    for history in histories:
        try:
            sessions.extend(aider_chat.read_chat_history(history))
        except OSError as exc:
            read.warnings.append(f"{history}: cannot be read ({type(exc).__name__})")
    if sessions:
        read.notes["sessions matched in the chat history"] = aider.type_tasks(log, sessions)
    return read


def _is_file(path: Path) -> bool:
    """Whether `path` is a file; a name this system cannot look up (too long) is not one."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _chat_histories(args: argparse.Namespace) -> tuple[list[Path], list[str]]:
    """The Aider chat histories to read, and what to warn about; none when a type is configured.

    `--chat-history` (one or more; each must exist), else `$AIDER_CHAT_HISTORY_FILE`, else
    Aider's default file where the import runs (`aider_chat.default_history`).
    """
    given: list[Path] = args.__dict__.get("chat_history") or []
    for path in given:
        if not _is_file(path):
            raise ValueError(f"{path} does not exist: no Aider chat history to read")
    if given:
        return given, []
    unknown = "Aider task types stay unknown (--chat-history FILE)"
    named = os.environ.get(ENV_AIDER_CHAT_HISTORY)
    if named:
        path = Path(named)
        with contextlib.suppress(RuntimeError):  # `~user` of no known user: taken as written
            path = path.expanduser()
        if _is_file(path):
            return [path], []
        return [], [f"${ENV_AIDER_CHAT_HISTORY} names {path}, which does not exist: {unknown}"]
    here = Path.cwd()
    found = aider_chat.default_history(here)
    if found is None:
        return [], [f"no {aider_chat.FILE_NAME} in {here} or its git work tree: {unknown}"]
    return [found], []


def _opencode(path: Path) -> Read:
    storage = opencode.read_storage(path)
    return Read(storage.tasks, storage.sessions, storage.tally.broken)


def _default_codex() -> Path:
    home = os.environ.get("CODEX_HOME")
    return (Path(home) if home else Path.home() / ".codex") / "sessions"


def _root(args: argparse.Namespace) -> Path:
    defaults = {
        "claude-code": (args.__dict__.get("projects"), Path.home() / ".claude" / "projects"),
        "codex": (args.__dict__.get("sessions"), None),
        "aider": (args.__dict__.get("analytics_log"), None),
        "opencode": (args.__dict__.get("storage"), Path.home() / ".local" / "share" / "opencode"),
    }
    given, default = defaults[args.source]
    root: Path = given or default or _default_codex()
    try:
        exists = root.exists()
    except (OSError, ValueError):  # a name this system cannot look up (too long, a NUL)
        exists = False
    if not exists:
        raise ValueError(f"{root} does not exist: nothing to import from {args.source}")
    return root


def source_units(
    args: argparse.Namespace, profile: Profile | None = None
) -> tuple[list[Path], Callable[[Path], Read]]:
    """The files (or folders) to read for `args.source`, and the reader of one.

    With a task type configured in `profile`, no prompt is read: the configured type wins.
    """
    _root(args)
    if args.source == "claude-code":
        root = args.projects or Path.home() / ".claude" / "projects"
        # Top-level transcripts only: subagent files are read with their session.
        return sorted(root.glob("*/*.jsonl")), _claude
    if args.source == "codex":
        return codex.rollout_files(args.sessions or _default_codex()), _codex
    if args.source == "aider":
        configured = profile is not None and profile.task_type_for(_CLASSIFIED) != _CLASSIFIED
        histories, warnings = ([], []) if configured else _chat_histories(args)
        return [args.analytics_log], partial(_aider, histories=histories, warnings=warnings)
    root = args.storage or Path.home() / ".local" / "share" / "opencode"
    return [root], _opencode


def read_source(
    units: Sequence[Path],
    reader: Callable[[Path], Read],
    summary: Summary,
    advance: Callable[[], None] = lambda: None,
) -> list[Task]:
    """Every task of the units; an unreadable unit is skipped and counted, never fatal."""
    tasks: list[Task] = []
    for unit in units:
        try:
            read = reader(unit)
        except (OSError, ValueError) as exc:
            summary.skip(f"unreadable ({type(exc).__name__})")
            summary.warn_once(f"unreadable:{unit}", f"{unit}: cannot be read ({exc})")
        else:
            summary.sessions += read.sessions
            summary.skip("broken lines", read.broken)
            if read.orphan_sessions:
                summary.notes["sessions of calls outside a launch"] += read.orphan_sessions
            for note, count in read.notes.items():
                summary.notes[note] += count
            for warning in read.warnings:
                summary.warn_once(warning, warning)
            tasks.extend(read.tasks)
        advance()
    return tasks


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r} is not a date (YYYY-MM-DD)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _events(
    tasks: list[Task], since: datetime | None, instance: str, profile: Profile, summary: Summary
) -> list[TaskCompletionEvent]:
    events = []
    for task in tasks:
        if since is not None and (task.ended is None or task.ended < since):
            summary.skip("before --since")
            continue
        events.append(to_event(task, instance, profile, summary))
    return events


def run_import(args: argparse.Namespace, settings: AgentSettings, profile: Profile) -> int:
    """Read, convert, deliver (unless --dry-run) and summarize; 1 when not all was delivered."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    summary = Summary(
        warn=lambda message: console.print(f"[yellow]warning:[/] {message}", soft_wrap=True)
    )
    since = _since(args.since)
    instance = instance_id(settings)
    units, reader = source_units(args, profile)
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task(f"reading {args.source}", total=len(units))
        tasks = read_source(units, reader, summary, lambda: progress.advance(bar))
    events = _events(tasks, since, instance, profile, summary)
    delivered = None
    if events and not args.dry_run:
        timeout = 10.0 + _SECONDS_PER_BATCH * (len(events) / 100)
        delivered = deliver(events, settings, timeout=timeout)
    console.print(_table(args.source, summary, delivered, args.dry_run))
    return 0 if delivered is None or delivered.complete else 1


def _details(summary: Summary, *names: str) -> list[tuple[str, str]]:
    """Rows of the token details the logs held (a log without them shows none)."""
    return [
        (f"  of which {name}", f"{summary.details[name]:,}")
        for name in names
        if name in summary.details
    ]


def _table(source: str, summary: Summary, delivered: Delivered | None, dry_run: bool) -> object:
    from rich.table import Table

    table = Table(title=f"import {source}" + (" (dry run: nothing sent)" if dry_run else ""))
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("sessions", f"{summary.sessions:,}"),
        ("tasks", f"{summary.tasks:,}"),
        ("input tokens", f"{summary.input_tokens:,}"),
        *_details(summary, "cache read", "cache write"),
        ("output tokens", f"{summary.output_tokens:,}"),
        *_details(summary, "reasoning"),
        ("cost", summary.cost_text()),
    ]
    if delivered is not None:
        rows += [("sent", f"{delivered.sent:,}"), ("spooled", f"{delivered.spooled:,}")]
        rows += [("rejected", f"{delivered.rejected:,}")] if delivered.rejected else []
    rows += [(f"skipped: {reason}", f"{count:,}") for reason, count in summary.skipped.items()]
    rows += [(f"clamped: {name}", f"{count:,}") for name, count in summary.clamped.items()]
    rows += [(f"unpriced: {model}", f"{n:,} requests") for model, n in summary.unpriced.items()]
    rows += [(f"of which: {note}", f"{count:,}") for note, count in summary.notes.items()]
    for row in rows:
        table.add_row(*row)
    return table
