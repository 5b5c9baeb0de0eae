"""Gemini CLI's OTLP log records (its telemetry documentation, "Logs and metrics").

- `gemini_cli.api_response`: one API call. `input_token_count` (the prompt, the cache
  included, as Gemini counts it), `output_token_count` (without thoughts),
  `cached_content_token_count`, `thoughts_token_count`, `tool_token_count`, `duration_ms`,
  `model`, `session.id`, `prompt_id`, `status_code`, `error`. No cost is sent: it is priced.
- `gemini_cli.api_error`: a failed call.
- `gemini_cli.user_prompt`: the user sent a prompt (`prompt_id`).
"""

from __future__ import annotations

from decimal import Decimal

from mosaicstack_telemetry_server.otlp.calls import Prompt, Usage, count, label
from mosaicstack_telemetry_server.otlp.records import Record

__all__ = ["AGENT", "NAMES", "read"]

AGENT = "gemini_cli"
# The record names this module reads.
NAMES = frozenset({"gemini_cli.api_response", "gemini_cli.api_error", "gemini_cli.user_prompt"})


def read(record: Record) -> Usage | Prompt | None:
    """The call or prompt `record` is, or None for Gemini CLI's other records."""
    attributes = record.attributes
    session = label(attributes, "session.id") or ""
    prompt = label(attributes, "prompt_id")
    if record.name == "gemini_cli.user_prompt":
        return Prompt(AGENT, session, prompt)
    if record.name == "gemini_cli.api_error":
        model = label(attributes, "model") or "unknown"
        duration = count(attributes, "duration_ms")
        return Usage(
            AGENT, session, prompt, model, cost_usd=Decimal(0), duration_ms=duration, failed=True
        )
    if record.name != "gemini_cli.api_response":
        return None
    thoughts = count(attributes, "thoughts_token_count")
    status = count(attributes, "status_code")
    return Usage(
        agent=AGENT,
        session=session,
        prompt=prompt,
        model=label(attributes, "model") or "unknown",
        input_tokens=count(attributes, "input_token_count") + count(attributes, "tool_token_count"),
        output_tokens=count(attributes, "output_token_count") + thoughts,
        cache_read_tokens=count(attributes, "cached_content_token_count"),
        reasoning_tokens=thoughts,
        duration_ms=count(attributes, "duration_ms"),
        failed=status >= 400 or bool(label(attributes, "error")),
    )
