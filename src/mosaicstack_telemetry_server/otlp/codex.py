"""Codex CLI's OTLP log records (its `[otel]` documentation, docs/config.md "otel").

- `codex.sse_event` with `event.kind` = `response.completed`: one API call.
  `input_token_count` (all input, the cache included, as OpenAI counts it),
  `output_token_count` (reasoning included), `cached_token_count`, `reasoning_token_count`,
  `model`, `conversation.id`, `duration_ms`. No cost is sent: the call is priced.
- `codex.user_prompt`: the user sent a prompt (no prompt id: the session is split there).
"""

from __future__ import annotations

from mosaicstack_telemetry_server.otlp.calls import Prompt, Usage, count, label
from mosaicstack_telemetry_server.otlp.records import Record

__all__ = ["AGENT", "NAMES", "read"]

AGENT = "codex"
# The record names this module reads.
NAMES = frozenset({"codex.sse_event", "codex.user_prompt"})


def read(record: Record) -> Usage | Prompt | None:
    """The call or prompt `record` is, or None for Codex's other records."""
    attributes = record.attributes
    if record.name == "codex.user_prompt":
        return Prompt(AGENT, label(attributes, "conversation.id") or "", None)
    if record.name != "codex.sse_event" or attributes.get("event.kind") != "response.completed":
        return None
    return Usage(
        agent=AGENT,
        session=label(attributes, "conversation.id") or "",
        prompt=None,
        model=label(attributes, "model") or "unknown",
        input_tokens=count(attributes, "input_token_count"),
        output_tokens=count(attributes, "output_token_count"),
        cache_read_tokens=count(attributes, "cached_token_count"),
        reasoning_tokens=count(attributes, "reasoning_token_count"),
        duration_ms=count(attributes, "duration_ms"),
    )
