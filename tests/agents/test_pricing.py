"""Prices to the last cache bucket: 1-hour writes at their own rate, unknown models unpriced.

The rates below are Anthropic's published prices per million tokens for Claude Opus 4.6 and 4.5
(the same in genai-prices): input $5, 5-minute cache write $6.25, 1-hour cache write $10, cache
read $0.50, output $25.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from _agents_helpers import Env, sample

from mosaicstack_telemetry_agents.events import to_event
from mosaicstack_telemetry_agents.harnesses.claude_code import read_session
from mosaicstack_telemetry_agents.settings import Profile
from mosaicstack_telemetry_agents.summary import Summary
from mosaicstack_telemetry_agents.tasks import Request, Task

INSTANCE = str(uuid.uuid4())
OPUS = {"input": "5", "write_5m": "6.25", "write_1h": "10", "read": "0.50", "output": "25"}


def _usages(path: Path) -> list[dict[str, Any]]:
    usages = {}
    for line in path.read_text("utf-8").splitlines():
        record = json.loads(line)
        message = record.get("message")
        if record.get("type") == "assistant" and isinstance(message, dict):
            usages[(message["id"], record["requestId"])] = message["usage"]
    return list(usages.values())


def _by_hand(usage: dict[str, Any], write_1h_rate: str) -> Decimal:
    """The usage's cost in micro-dollars, from the table above."""
    creation = usage["cache_creation"]
    return (
        usage["input_tokens"] * Decimal(OPUS["input"])
        + creation["ephemeral_5m_input_tokens"] * Decimal(OPUS["write_5m"])
        + creation["ephemeral_1h_input_tokens"] * Decimal(write_1h_rate)
        + usage["cache_read_input_tokens"] * Decimal(OPUS["read"])
        + usage["output_tokens"] * Decimal(OPUS["output"])
    )


def test_one_hour_cache_writes_of_a_real_transcript_are_priced_at_their_own_rate() -> None:
    path = sample("claude-code", "marot-spotter", "short.jsonl")
    usages = _usages(path)
    assert sum(u["cache_creation"]["ephemeral_1h_input_tokens"] for u in usages) > 0
    (task,) = read_session(path).tasks
    event = to_event(task, INSTANCE, Profile(), Summary(warn=lambda _: None))
    right = sum(_by_hand(u, OPUS["write_1h"]) for u in usages)
    wrong = sum(_by_hand(u, OPUS["write_5m"]) for u in usages)  # the 5-minute rate
    assert event.actual_cost_usd_micros == int(right.to_integral_value()) == 144_448
    assert abs(event.actual_cost_usd_micros - wrong) > 50_000
    assert event.cache_write_tokens == sum(u["cache_creation_input_tokens"] for u in usages)


def test_five_minute_cache_writes_of_a_real_transcript_match_the_table() -> None:
    path = sample("claude-code", "drmaciver-claude-reliability", "hello-world-script.jsonl")
    usages = _usages(path)
    summary = Summary(warn=lambda _: None)
    events = [to_event(t, INSTANCE, Profile(), summary) for t in read_session(path).tasks]
    right = sum(_by_hand(u, OPUS["write_1h"]) for u in usages)
    assert abs(sum(e.actual_cost_usd_micros for e in events) - right) <= len(events)


def _task(*models: str) -> Task:
    requests = [Request(model, input_tokens=1000, output_tokens=100) for model in models]
    return Task("claude_code", "anthropic", "s", "k", requests=requests)


def test_a_model_with_no_price_is_said_unpriced_never_a_plain_zero() -> None:
    warnings: list[str] = []
    summary = Summary(warn=warnings.append)
    assert summary.cost_text() == "$0.00"  # nothing priced, nothing unpriced: truly 0
    event = to_event(_task("no-such-model", "no-such-model"), INSTANCE, Profile(), summary)
    assert event.actual_cost_usd_micros == 0
    assert summary.cost_text() == "unpriced (2 requests)"
    to_event(_task("claude-opus-4-6", "no-such-model"), INSTANCE, Profile(), summary)
    assert summary.cost_text() == "$0.01 + unpriced (3 requests)"
    assert len(warnings) == 1
    assert "unpriced" in warnings[0]


def test_the_import_table_names_unpriced_models(env: Env, tmp_path: Path) -> None:
    source = sample("claude-code", "marot-spotter", "short.jsonl")
    records = [json.loads(line) for line in source.read_text("utf-8").splitlines()]
    for record in records:
        if isinstance(record.get("message"), dict) and "model" in record["message"]:
            record["message"]["model"] = "claude-from-the-future-9"
    path = tmp_path / "projects" / "p" / "short.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
    result = env.run("import", "claude-code", "--projects", str(path.parent.parent), "--dry-run")
    table = result.stderr.decode()
    assert result.returncode == 0, table
    assert "unpriced (1 request)" in table
    assert "unpriced: claude-from-the-future-9" in table
    assert "$0.00" not in table
