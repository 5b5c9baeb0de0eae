"""Agents' OTLP log records, sent by the OpenTelemetry Python SDK's own OTLP/HTTP exporter.

Record shapes, per agent, as their documentation and published fixtures show them:
- Claude Code: code.claude.com/docs/en/monitoring-usage ("Events": `claude_code.api_request`,
  `claude_code.api_error`, `claude_code.user_prompt`; the name in the body, `event.name`
  without the prefix; numbers as strings in clients before 1.0, per the lainra/
  claude-code-telemetry fixtures in docs/TELEMETRY_GUIDE.md), resource `service.name`
  `claude-code`.
- Codex: openai/codex docs/config.md `[otel]` and codex-rs/otel (`codex.sse_event` with
  `event.kind`, `input_token_count`, `output_token_count`, `cached_token_count`,
  `reasoning_token_count`, `conversation.id`; `codex.user_prompt`), `service.name`
  `codex_cli_rs`.
- Gemini CLI: google-gemini/gemini-cli docs/telemetry.md (`gemini_cli.api_response` with
  `input_token_count`, `output_token_count`, `cached_content_token_count`,
  `thoughts_token_count`, `tool_token_count`, `duration_ms`, `model`, `prompt_id`;
  `gemini_cli.user_prompt`), `service.name` `gemini-cli`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

__all__ = [
    "AgentExporter",
    "claude_prompt",
    "claude_request",
    "codex_completed",
    "codex_prompt",
    "exporter",
    "gemini_prompt",
    "gemini_response",
]

NS = 1_000_000_000


@dataclass(frozen=True)
class Emitted:
    """One record to emit: body, attributes, time."""

    body: str
    attributes: dict[str, Any]
    time_ns: int
    event_name: str | None = None


class _Recording(OTLPLogExporter):
    """The SDK's exporter, keeping the result of each export."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results: list[LogRecordExportResult] = []

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        result = super().export(batch)
        self.results.append(result)
        return result


@dataclass
class AgentExporter:
    """A logger provider with the SDK's OTLP/HTTP exporter, as an agent would run it."""

    provider: LoggerProvider
    exporter: _Recording
    sent: list[Emitted] = field(default_factory=list)

    def emit(self, *records: Emitted) -> None:
        """Emit the records (exported at the next `flush`)."""
        logger = self.provider.get_logger("agent.events")
        for record in records:
            logger.emit(
                timestamp=record.time_ns,
                observed_timestamp=record.time_ns,
                body=record.body,
                attributes=record.attributes,
                event_name=record.event_name,
            )
            self.sent.append(record)

    def flush(self) -> LogRecordExportResult:
        """Export everything emitted; the result of the last export."""
        assert self.provider.force_flush(10_000)
        return self.exporter.results[-1]


@contextmanager
def exporter(
    resource: Mapping[str, str], *, endpoint: str | None = None, headers: Mapping[str, str] | None
) -> Iterator[AgentExporter]:
    """The SDK's exporter (gzip); endpoint and headers from the environment when None."""
    kwargs: dict[str, Any] = {"compression": Compression.Gzip}
    if endpoint is not None:
        kwargs["endpoint"] = endpoint
    if headers is not None:
        kwargs["headers"] = dict(headers)
    recording = _Recording(**kwargs)
    provider = LoggerProvider(resource=Resource.create(dict(resource)))
    provider.add_log_record_processor(BatchLogRecordProcessor(recording, max_export_batch_size=512))
    try:
        yield AgentExporter(provider, recording)
    finally:
        provider.shutdown()


def now_ns() -> int:
    """The current time in nanoseconds."""
    return time.time_ns()


def claude_prompt(session: str, prompt: str | None, at: int) -> Emitted:
    """`claude_code.user_prompt`."""
    attributes: dict[str, Any] = {
        "event.name": "user_prompt",
        "event.timestamp": "2026-12-07T10:00:00.000Z",
        "session.id": session,
        "prompt_length": "42",
        "terminal.type": "vscode",
    }
    if prompt is not None:
        attributes["prompt.id"] = prompt
    return Emitted("claude_code.user_prompt", attributes, at)


def claude_request(
    session: str,
    prompt: str | None,
    at: int,
    *,
    model: str = "claude-sonnet-4-5-20250929",
    cost: float = 0.0123,
    tokens: tuple[int, int, int, int] = (12, 340, 20_000, 1_500),
    duration_ms: int = 4_000,
    as_strings: bool = False,
) -> Emitted:
    """`claude_code.api_request`: tokens are (input, output, cache read, cache creation)."""
    numbers: dict[str, Any] = {
        "cost_usd": cost,
        "duration_ms": duration_ms,
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "cache_read_tokens": tokens[2],
        "cache_creation_tokens": tokens[3],
    }
    if as_strings:  # older clients
        numbers = {name: str(value) for name, value in numbers.items()}
    attributes: dict[str, Any] = {
        "event.name": "api_request",
        "event.timestamp": "2026-12-07T10:00:05.000Z",
        "session.id": session,
        "user.account_uuid": str(uuid.UUID(int=7)),
        "organization.id": str(uuid.UUID(int=8)),
        "terminal.type": "vscode",
        "model": model,
        **numbers,
    }
    if prompt is not None:
        attributes["prompt.id"] = prompt
    return Emitted("claude_code.api_request", attributes, at)


def codex_prompt(conversation: str, at: int) -> Emitted:
    """`codex.user_prompt`."""
    attributes = {
        "event.name": "codex.user_prompt",
        "event.timestamp": "2026-12-07T10:00:00.000Z",
        "conversation.id": conversation,
        "app.version": "0.63.0",
        "prompt_length": 120,
        "prompt": "[REDACTED]",
    }
    return Emitted("codex.user_prompt", attributes, at, "codex.user_prompt")


def codex_completed(
    conversation: str, at: int, *, model: str = "gpt-4o", tokens: tuple[int, ...] = (0, 0, 0, 0)
) -> Emitted:
    """`codex.sse_event` of kind `response.completed`: (input, output, cached, reasoning)."""
    attributes: dict[str, Any] = {
        "event.name": "codex.sse_event",
        "event.timestamp": "2026-12-07T10:00:05.000Z",
        "event.kind": "response.completed",
        "conversation.id": conversation,
        "app.version": "0.63.0",
        "auth_mode": "ApiKey",
        "model": model,
        "slug": model,
        "duration_ms": 2_500,
        "input_token_count": tokens[0],
        "output_token_count": tokens[1],
        "cached_token_count": tokens[2],
        "reasoning_token_count": tokens[3],
        "tool_token_count": 0,
    }
    return Emitted("codex.sse_event", attributes, at, "codex.sse_event")


def gemini_prompt(session: str, prompt: str, at: int) -> Emitted:
    """`gemini_cli.user_prompt`."""
    attributes = {
        "event.name": "gemini_cli.user_prompt",
        "event.timestamp": "2026-12-07T10:00:00.000Z",
        "session.id": session,
        "prompt_id": prompt,
        "prompt_length": 64,
        "auth_type": "gemini-api-key",
    }
    return Emitted("User prompt. Length: 64.", attributes, at)


def gemini_response(
    session: str,
    prompt: str,
    at: int,
    *,
    model: str = "gemini-2.5-pro",
    tokens: tuple[int, ...] = (0, 0, 0, 0, 0),
    status_code: int = 200,
) -> Emitted:
    """`gemini_cli.api_response`: (input, output, cached content, thoughts, tool) tokens."""
    attributes: dict[str, Any] = {
        "event.name": "gemini_cli.api_response",
        "event.timestamp": "2026-12-07T10:00:05.000Z",
        "session.id": session,
        "prompt_id": prompt,
        "model": model,
        "status_code": status_code,
        "duration_ms": 3_000,
        "input_token_count": tokens[0],
        "output_token_count": tokens[1],
        "cached_content_token_count": tokens[2],
        "thoughts_token_count": tokens[3],
        "tool_token_count": tokens[4],
        "total_token_count": sum(tokens),
        "auth_type": "gemini-api-key",
    }
    return Emitted(f"API response from {model}. Status: {status_code}.", attributes, at)
