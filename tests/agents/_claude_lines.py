"""Claude Code transcript lines for tests, in the shape Claude Code 2.1 writes them."""

from __future__ import annotations

from typing import Any

__all__ = ["assistant", "user"]


def user(text: Any, **extra: Any) -> dict[str, Any]:
    """A user line (a prompt, a tool result, a meta line...)."""
    return {
        "type": "user",
        "uuid": extra.pop("uuid", f"u-{abs(hash(str(text))) % 10**8}"),
        "timestamp": extra.pop("timestamp", "2026-02-01T10:00:00Z"),
        "message": {"role": "user", "content": text},
        **extra,
    }


def assistant(message_id: str, output: int, when: str, **usage: Any) -> dict[str, Any]:
    """An assistant line with its usage (`input`, `write`, `write_1h`, `read`, `model`)."""
    return {
        "type": "assistant",
        "timestamp": when,
        "requestId": f"req-{message_id}",
        "message": {
            "id": message_id,
            "model": usage.pop("model", "claude-sonnet-4-5"),
            "role": "assistant",
            "usage": {
                "input_tokens": usage.get("input", 10),
                "output_tokens": output,
                "cache_creation_input_tokens": usage.get("write", 0),
                "cache_read_input_tokens": usage.get("read", 0),
                "cache_creation": {
                    "ephemeral_5m_input_tokens": usage.get("write", 0) - usage.get("write_1h", 0),
                    "ephemeral_1h_input_tokens": usage.get("write_1h", 0),
                },
            },
        },
    }
