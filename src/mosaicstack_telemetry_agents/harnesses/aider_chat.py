"""Aider's chat history (`.aider.chat.history.md`) read as sessions of typed prompts.

The analytics log holds no prompts; this file does. Aider appends to it as it runs (`aider/io.py`):
a `# aider chat started at YYYY-MM-DD HH:MM:SS` header (local time, no zone) each time it starts,
every input as `#### ` lines (one per line of the input, each ending in two spaces, so a
multi-line input is a run of them), its own messages as `> ` lines, and the model's answers as
plain Markdown. Read here: each session's start and its prompts, in order. A `#### ` heading in a
model's answer reads as a prompt: the format cannot tell the two apart (the import uses a
session's first request, typed before any answer).

Nothing here logs, stores or sends a prompt: the import classifies it in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mosaicstack_telemetry_agents.classify import MAX_PROMPT_CHARS
from mosaicstack_telemetry_agents.harnesses._lines import bounded_lines

__all__ = [
    "FILE_NAME",
    "HEADER",
    "MAX_KEPT_CHARS",
    "ChatSession",
    "default_history",
    "opening_request",
    "parse_chat_history",
    "read_chat_history",
]

# Aider's default name, in the git work tree's top folder (else the current one).
FILE_NAME = ".aider.chat.history.md"
HEADER = "# aider chat started at "
_STARTED = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
# What Aider writes for an input that was empty.
_BLANK = "<blank>"
# The classifier reads a prompt's first 2,000 characters; the rest of a long paste is dropped
# while reading, so a history of pasted logs does not sit in memory.
MAX_KEPT_CHARS = 4 * MAX_PROMPT_CHARS
# A confirmation Aider logged as an input: its question, then the answer given for the group.
_CONFIRMATION = re.compile(r"\(Y\)es/\(N\)o\b")
# What Aider writes as an input itself opens with a Markdown heading.
_HEADING = re.compile(r"#+ ")


@dataclass(frozen=True)
class ChatSession:
    """One run of Aider: its start as written (local time, None when unreadable), its prompts."""

    started: datetime | None
    prompts: tuple[str, ...] = ()


@dataclass
class _Reader:
    sessions: list[ChatSession] = field(default_factory=list)
    opened: bool = False
    started: datetime | None = None
    prompts: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    size: int = 0

    def read(self, line: str) -> None:
        if line.startswith(HEADER):
            self.close()
            self.opened, self.started = True, _start_time(line.removeprefix(HEADER))
        elif line.startswith("####") and line[4:5] in ("", " "):
            self.add(line[5:].rstrip())
        else:
            self.end_prompt()

    def add(self, text: str) -> None:
        if self.size < MAX_KEPT_CHARS:
            self.lines.append(text)
            self.size += len(text) + 1

    def end_prompt(self) -> None:
        if self.lines:
            self.prompts.append("\n".join(self.lines).strip()[:MAX_KEPT_CHARS])
            self.lines, self.size = [], 0

    def close(self) -> None:
        """End the session read so far (text before any header is one only if it holds prompts)."""
        self.end_prompt()
        if self.opened or self.prompts:
            self.sessions.append(ChatSession(self.started, tuple(self.prompts)))
        self.prompts = []


def _start_time(text: str) -> datetime | None:
    stamp = text.strip()
    if not _STARTED.fullmatch(stamp):
        return None
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        return None


def _texts(lines: Iterable[str | bytes]) -> Iterator[str]:
    for line in lines:
        text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
        yield text.rstrip("\r\n")


def parse_chat_history(lines: Iterable[str | bytes]) -> list[ChatSession]:
    """The sessions of a chat history, in file order; any text parses (unknown lines are skipped).

    Text before the first header (a history Aider started before it wrote headers, or a cut
    file) is a session of unknown start when it holds prompts.
    """
    reader = _Reader()
    for text in _texts(lines):
        reader.read(text)
    reader.close()
    return reader.sessions


def read_chat_history(path: Path) -> list[ChatSession]:
    """Parse a chat history file, streaming it."""
    with path.open("rb") as handle:
        return parse_chat_history(bounded_lines(handle))


def opening_request(session: ChatSession) -> str | None:
    """The prompt that began the session's work: its first prompt that asks for some.

    Not requests: an empty input; a slash command (`/add`, `/run`, `/undo`; `/code TEXT` and
    `/ask TEXT` are followed by TEXT as a prompt of its own, which counts); a shell line (`!ls`);
    an answer to a confirmation that Aider logged as an input; and what Aider writes as an input
    itself, which opens with a Markdown heading (`# Fix any errors below` for `/lint`,
    `# Question:` for `/help`).
    """
    for prompt in session.prompts:
        aiders_own = _HEADING.match(prompt) or _CONFIRMATION.search(prompt)
        if prompt and prompt != _BLANK and prompt[0] not in "/!" and not aiders_own:
            return prompt
    return None


def default_history(directory: Path) -> Path | None:
    """Where Aider run in `directory` wrote its history by default, if the file is there.

    Aider writes `.aider.chat.history.md` in the git work tree's top folder, or in the current
    folder outside a work tree (or with `--no-git`): both are looked at, the folder first.
    """
    try:
        candidates = [directory]
        for top in (directory, *directory.parents):
            if (top / ".git").exists():
                candidates.append(top)
                break
        return next((f / FILE_NAME for f in candidates if (f / FILE_NAME).is_file()), None)
    except OSError:  # a folder this user may not look into
        return None
