"""Claude Code's OTLP log records (its monitoring documentation, "Events").

- `claude_code.api_request`: one API call. `model`, `cost_usd` (or `cost_usd_micros`),
  `input_tokens` (without the cache), `output_tokens`, `cache_read_tokens`,
  `cache_creation_tokens`, `duration_ms`, `session.id`, `prompt.id` (newer clients). Older
  clients send the numbers as strings.
- `claude_code.api_error`: a failed call (`model`, `duration_ms`, `session.id`, `prompt.id`).
- `claude_code.user_prompt`: the user sent a prompt; a new task starts.

The name is the record's body, its `event.name` attribute (with or without the prefix) or its
`event_name` field. A task's input is uncached + cache creation + cache read, as the hook
counts it.
"""

from __future__ import annotations

from decimal import Decimal

from mosaicstack_telemetry_server.otlp.calls import Prompt, Usage, count, label, usd
from mosaicstack_telemetry_server.otlp.records import Record

__all__ = ["AGENT", "NAMES", "read"]

AGENT = "claude_code"
_PREFIX = "claude_code."
_READ = ("api_request", "api_error", "user_prompt")
# The record names this module reads (`event.name` may lack the prefix).
NAMES = frozenset({*_READ, *(_PREFIX + name for name in _READ)})


def read(record: Record) -> Usage | Prompt | None:
    """The call or prompt `record` is, or None for Claude Code's other records."""
    name = record.name.removeprefix(_PREFIX)
    if name not in _READ:
        return None
    attributes = record.attributes
    session = label(attributes, "session.id") or ""
    prompt = label(attributes, "prompt.id")
    if name == "user_prompt":
        return Prompt(AGENT, session, prompt)
    cache_read = count(attributes, "cache_read_tokens")
    cache_write = count(attributes, "cache_creation_tokens")
    cost = usd(attributes, "cost_usd")
    if cost is None and "cost_usd_micros" in attributes:
        cost = Decimal(count(attributes, "cost_usd_micros")) / 1_000_000
    return Usage(
        agent=AGENT,
        session=session,
        prompt=prompt,
        model=label(attributes, "model") or "unknown",
        input_tokens=count(attributes, "input_tokens") + cache_read + cache_write,
        output_tokens=count(attributes, "output_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cost_usd=cost if cost is not None else (Decimal(0) if name == "api_error" else None),
        duration_ms=count(attributes, "duration_ms"),
        failed=name == "api_error",
    )
