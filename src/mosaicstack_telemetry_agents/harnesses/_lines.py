"""JSON lines read as a stream, broken ones skipped and counted: shared by the harness parsers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

__all__ = ["MAX_LINE_CHARS", "LineTally", "bounded_lines", "json_objects", "parse_time"]

# One transcript line holds at most a tool result or a pasted file: 16 MB is far over what a
# harness writes, and a longer line is counted broken instead of held in memory twice.
MAX_LINE_CHARS = 16 * 1024 * 1024


@dataclass
class LineTally:
    """How many lines were read and how many were not usable JSON objects."""

    lines: int = 0
    broken: int = 0


def bounded_lines(handle: BinaryIO) -> Iterator[bytes]:
    """The lines of a binary file, an overlong one cut to a marker that parses as broken.

    `readline` with a limit never holds more than one bounded piece, so a file with no newline
    at all (or a device) cannot fill memory.
    """
    while True:
        line = handle.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        if len(line) > MAX_LINE_CHARS and not line.endswith(b"\n"):
            while True:  # skip the rest of the overlong line
                rest = handle.readline(MAX_LINE_CHARS)
                if not rest or rest.endswith(b"\n"):
                    break
            yield b"\x00overlong"
            continue
        yield line


def json_objects(lines: Iterable[str | bytes], tally: LineTally) -> Iterator[dict[str, Any]]:
    """Each line that is a JSON object; the others are counted in `tally.broken`."""
    for line in lines:
        if not line.strip():
            continue
        tally.lines += 1
        if len(line) > MAX_LINE_CHARS:
            tally.broken += 1
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            tally.broken += 1
            continue
        if isinstance(value, dict):
            yield value
        else:
            tally.broken += 1


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 timestamp (`Z` or offset; naive is UTC), epoch seconds or ms; else None."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            seconds = value / 1000 if value > 1e11 else value
            return datetime.fromtimestamp(seconds, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def as_int(value: object) -> int:
    """A non-negative int from a count field; anything else is 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    try:
        return max(0, int(value))
    except (ValueError, OverflowError):
        return 0
