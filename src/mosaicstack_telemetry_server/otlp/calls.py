"""What an agent's record means for tasks: a call (`Usage`), a prompt (`Prompt`), or nothing.

Each agent's module (`claude_code.py`, `codex.py`, `gemini_cli.py`) reads its own records into
these; the readers here turn attribute values into numbers and labels the same way for all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

__all__ = ["MAX_COUNT", "Prompt", "Usage", "count", "label", "usd"]

# A count beyond this in one call is not a count (the schema's cap per task is 10M anyway).
MAX_COUNT: Final = 1_000_000_000
# Ids and model names are cut to this many characters.
_MAX_LABEL: Final = 200
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Usage:
    """One API call: tokens as the task counts them (input with the cache, output with the
    reasoning), its cost when the agent sends one, and where it belongs."""

    agent: str
    session: str
    prompt: str | None
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal | None = None
    duration_ms: int = 0
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Prompt:
    """A user prompt: a new task starts in `session` (`prompt`: its id, if the agent sends one)."""

    agent: str
    session: str
    prompt: str | None


def count(attributes: dict[str, Any], name: str) -> int:
    """A non-negative count from an integer, a double or a string (older clients send strings)."""
    value = attributes.get(name)
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return 0
    if not isinstance(value, int | float) or value != value:  # NaN
        return 0
    return int(min(max(value, 0), MAX_COUNT))


def usd(attributes: dict[str, Any], name: str) -> Decimal | None:
    """A cost in USD (number or string), None when absent or unreadable; at least 0."""
    value = attributes.get(name)
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not amount.is_finite():
        return None
    return min(max(amount, Decimal(0)), Decimal(MAX_COUNT))


def label(attributes: dict[str, Any], *names: str) -> str | None:
    """The first of `names` holding a non-empty value, as text of at most 200 characters."""
    for name in names:
        value = attributes.get(name)
        if value is not None and not isinstance(value, bool):
            # The event schema refuses control characters in labels.
            text = _CONTROL.sub("", str(value)[: _MAX_LABEL * 2]).strip()[:_MAX_LABEL]
            if text:
                return text
    return None
