"""`mosaic-telemetry send`: events in their JSON form, from a file or stdin, to the server.

Input is one JSON object, a JSON array, or JSON lines. Each invalid event gets an error naming
its position and field; the valid ones are still sent (and the exit status is 1). An event with
no `instance_id` takes the configured one; one with no `project`, `branch` or `user` takes the
configured one (flag or variable) when there is one, and becomes a schema 1.1 event.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pydantic import ValidationError

from mosaicstack_telemetry import TaskCompletionEvent

__all__ = ["MAX_EVENTS", "MAX_INPUT_BYTES", "Parsed", "parse_events"]

# Bounds on what one run reads: far above any real batch of task events, far below memory limits.
MAX_INPUT_BYTES = 64 * 1024 * 1024
MAX_EVENTS = 100_000


@dataclass
class Parsed:
    """The valid events and one message per invalid one."""

    events: list[TaskCompletionEvent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def read_input(stream: BinaryIO) -> str:
    """The whole input, refused past `MAX_INPUT_BYTES`."""
    data = stream.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise ValueError(f"input is over {MAX_INPUT_BYTES // (1024 * 1024)} MiB")
    return data.decode("utf-8", errors="replace")


def _items(text: str) -> Iterator[tuple[str, Any]]:
    """(position, value) of each event: `#n` in an array or object, `line n` in JSON lines."""
    stripped = text.strip()
    try:
        whole = json.loads(stripped) if stripped else []
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        for index, item in enumerate(whole, 1):
            yield f"event #{index}", item
        return
    if whole is not None:
        yield "event #1", whole
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"line {number}", exc


def _describe(error: ValidationError) -> str:
    parts = []
    for detail in error.errors()[:5]:
        where = ".".join(str(part) for part in detail["loc"]) or "event"
        parts.append(f"{where}: {detail['msg']}")
    return "; ".join(parts)


def _filled(item: dict[str, Any], defaults: Mapping[str, str]) -> dict[str, Any]:
    """The event with the configured value of each attribution field it lacks."""
    missing = {name: value for name, value in defaults.items() if item.get(name) is None}
    if not missing:
        return item
    filled = {**item, **missing}
    # A 1.0 producer's event that gains a 1.1 field becomes a 1.1 event, not an invalid one.
    if filled.get("schema_version") == "1.0":
        filled["schema_version"] = "1.1"
    return filled


def parse_events(text: str, instance_id: str, defaults: Mapping[str, str] | None = None) -> Parsed:
    """Validate every event of `text`; the invalid ones become messages, the rest events.

    `defaults` (project, branch, user) fill the events that do not carry them.
    """
    parsed = Parsed()
    for count, (position, item) in enumerate(_items(text), 1):
        if count > MAX_EVENTS:
            parsed.errors.append(f"more than {MAX_EVENTS:,} events: the rest were not read")
            break
        if isinstance(item, json.JSONDecodeError):
            parsed.errors.append(f"{position}: not JSON ({item.msg})")
            continue
        if not isinstance(item, dict):
            parsed.errors.append(f"{position}: expected a JSON object, got {type(item).__name__}")
            continue
        if "instance_id" not in item and instance_id:
            item = {**item, "instance_id": instance_id}
        item = _filled(item, defaults or {})
        try:
            parsed.events.append(TaskCompletionEvent.model_validate(item))
        except ValidationError as exc:
            parsed.errors.append(f"{position}: {_describe(exc)}")
    return parsed


def print_errors(errors: list[str]) -> None:
    """Each problem on its own line of stderr."""
    for error in errors:
        print(f"mosaic-telemetry: {error}", file=sys.stderr)
