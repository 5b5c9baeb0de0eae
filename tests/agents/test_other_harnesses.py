"""Codex rollouts, Aider's analytics log and OpenCode's storage read as tasks.

Codex figures come from ccusage 20.0.24 run offline on copies of the samples:

    HOME=$T/home CODEX_HOME=$T/codex ccusage codex session --json --offline

with `$T/codex/sessions/2026/02/23/` holding `codex/madshn-localpush/sessions/*`. ccusage's
inputTokens are the uncached input; ours add the cached input (`actual_input_tokens`).
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from _agents_helpers import sample, write_lines
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry_agents.harnesses.aider import parse_log, provider_and_model, read_log
from mosaicstack_telemetry_agents.harnesses.codex import parse_rollout, read_rollout, rollout_files
from mosaicstack_telemetry_agents.harnesses.opencode import read_storage, tasks_from_messages
from mosaicstack_telemetry_agents.pricing import price_usd

# rollout id: (uncached input, cached input, output, cost USD)
CODEX_CCUSAGE = {
    "019c8a4c-ed82-79a1-aa28-7738fc5ab61a": (367673, 6836352, 36075, 2.34483935),
    "019c8a4d-8f45-7010-8b5d-7fad920aa6f9": (99460, 1651968, 14600, 0.6675494),
    "019c8a53-a0dd-7130-bcd7-95445d84846a": (403949, 6337024, 36950, 2.33318995),
    "019c8a59-e9dd-71f0-9ae3-4079fe9726a9": (2188981, 31621504, 133999, 11.24046595),
    "019c8a70-dda7-7f33-98ea-f30553347322": (31013, 3456, 431, 0.06091155),
    "019c8bfe-ec25-79e0-97d7-bda6a9c575ff": (59525, 238848, 1123, 0.16168915),
}


def test_codex_turns_add_up_to_ccusage_on_every_real_rollout() -> None:
    files = rollout_files(sample("codex"))
    assert len(files) == len(CODEX_CCUSAGE)
    for path in files:
        rollout = read_rollout(path)
        requests = [r for task in rollout.tasks for r in task.requests]
        cost = sum((price_usd(r, "openai") or Decimal(0) for r in requests), Decimal(0))
        expected = CODEX_CCUSAGE[path.stem[-36:]]
        got = (
            sum(r.input_tokens for r in requests),
            sum(r.cache_read_tokens for r in requests),
            sum(r.output_tokens for r in requests),
        )
        assert got == expected[:3], path.stem
        assert float(cost) == pytest.approx(expected[3], rel=0.01)
        assert all(task.harness == "custom" and task.provider == "openai" for task in rollout.tasks)
        assert rollout.session_id == path.stem[-36:]


def _codex(kind: str, payload: dict[str, Any], second: int = 0) -> dict[str, Any]:
    return {"timestamp": f"2026-02-23T12:00:{second:02}Z", "type": kind, "payload": payload}


def _tokens(total_in: int, cached: int, out: int) -> dict[str, Any]:
    usage = {"input_tokens": total_in, "cached_input_tokens": cached, "output_tokens": out}
    return {"type": "token_count", "info": {"total_token_usage": usage, "last_token_usage": usage}}


def test_codex_repeated_counts_add_nothing_and_aborted_turns_are_partial() -> None:
    lines = [
        _codex("session_meta", {"id": "s-1"}),
        _codex("turn_context", {"model": "gpt-5-codex"}),
        _codex("event_msg", {"type": "task_started", "turn_id": "t1"}, 1),
        _codex("event_msg", _tokens(100, 20, 10), 2),
        _codex("event_msg", _tokens(100, 20, 10), 3),
        _codex("event_msg", _tokens(250, 120, 30), 4),
        _codex("event_msg", {"type": "task_complete", "turn_id": "t1"}, 5),
        _codex("event_msg", {"type": "task_started", "turn_id": "t2"}, 6),
        _codex("event_msg", _tokens(300, 120, 35), 7),
        _codex("event_msg", {"type": "turn_aborted", "reason": "interrupted"}, 8),
    ]
    rollout = parse_rollout("file", [json.dumps(line) for line in lines] + ["{broken"])
    first, second = rollout.tasks
    assert rollout.session_id == "s-1"
    assert sum(r.total_input_tokens for r in first.requests) == 250
    assert sum(r.output_tokens for r in first.requests) == 30
    assert (first.outcome, second.outcome) == ("success", "partial")
    assert first.model == "gpt-5-codex"
    assert rollout.tally.broken == 1


def test_aider_counts_every_call_including_those_outside_a_launch() -> None:
    path = sample("aider", "aider-ai-aider", "sample-analytics.jsonl")
    log = read_log(path)
    calls = [json.loads(line) for line in path.open() if '"message_send"' in line]
    requests = [r for task in log.tasks for r in task.requests]
    assert len(requests) == len(calls) == 107
    assert sum(r.input_tokens for r in requests) == sum(
        c["properties"]["prompt_tokens"] for c in calls
    )
    assert sum(r.output_tokens for r in requests) == sum(
        c["properties"]["completion_tokens"] for c in calls
    )
    assert sum(r.cost_usd or 0 for r in requests) == pytest.approx(
        sum(c["properties"]["cost"] for c in calls)
    )
    assert log.orphan_sessions > 0


def test_aider_sessions_run_from_launch_to_exit() -> None:
    def event(name: str, time: int, **properties: Any) -> str:
        return json.dumps({"event": name, "time": time, "user_id": "u", "properties": properties})

    send = {"main_model": "anthropic/claude-sonnet-4-5", "prompt_tokens": 10,
            "completion_tokens": 2, "cost": 0.01}  # fmt: skip
    log = parse_log(
        [
            event("message_send", 90, **send),  # before any launch: a session of its own
            event("launched", 100),
            event("message_send", 110, **send),
            event("message_send", 120, **send),
            event("exit", 130),
            event("message_send", 140, **send),
        ]
    )
    assert [len(task.requests) for task in log.tasks] == [1, 2, 1]
    assert log.orphan_sessions == 2
    assert log.tasks[1].duration_ms == 30_000
    assert log.tasks[1].provider == "anthropic"
    assert log.tasks[1].model == "claude-sonnet-4-5"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gemini/gemini-2.5-pro", ("google", "gemini-2.5-pro")),
        ("openrouter/anthropic/claude-3.5", ("openrouter", "anthropic/claude-3.5")),
        ("gpt-5", ("openai", "gpt-5")),
        ("my-local-model", ("custom", "my-local-model")),
    ],
)
def test_aider_model_names_give_their_provider(name: str, expected: tuple[str, str]) -> None:
    assert provider_and_model(name) == expected


def _assistant_info(parent: str, created: int, **extra: Any) -> dict[str, Any]:
    info = {
        "role": "assistant",
        "parentID": parent,
        "modelID": "claude-sonnet-4-5",
        "providerID": "anthropic",
        "time": {"created": created, "completed": created + 4000},
        "cost": 0.02,
        "tokens": {"input": 50, "output": 20, "reasoning": 5, "cache": {"read": 400, "write": 30}},
    }
    info.update(extra)
    return info


def _opencode_messages() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("msg_1", {"role": "user", "time": {"created": 1_770_000_000_000}}),
        ("msg_2", _assistant_info("msg_1", 1_770_000_001_000)),
        ("msg_3", _assistant_info("msg_1", 1_770_000_006_000)),
        ("msg_4", {"role": "user", "time": {"created": 1_770_000_060_000}}),
        ("msg_5", _assistant_info("msg_4", 1_770_000_061_000,
                                  error={"name": "MessageAbortedError"})),
    ]  # fmt: skip


def test_opencode_sqlite_database_gives_a_task_per_user_message(tmp_path: Path) -> None:
    # The tables as OpenCode's session.sql.ts defines them (only the columns read here).
    database = sqlite3.connect(tmp_path / "opencode.db")
    database.executescript(
        "CREATE TABLE session (id TEXT PRIMARY KEY, parent_id TEXT, time_created INTEGER);"
        "CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT, time_created INTEGER,"
        " data TEXT NOT NULL);"
    )
    database.execute("INSERT INTO session VALUES ('ses_a', NULL, 1)")
    database.execute("INSERT INTO session VALUES ('ses_child', 'ses_a', 2)")
    for message_id, info in _opencode_messages():
        database.execute(
            "INSERT INTO message VALUES (?, 'ses_a', ?, ?)",
            (message_id, info["time"]["created"], json.dumps(info)),
        )
    child = _assistant_info("msg_c0", 1_770_000_002_000)
    database.execute(
        "INSERT INTO message VALUES ('msg_c1', 'ses_child', 1, ?)",
        (json.dumps({"role": "user", "time": {"created": 1_770_000_001_500}}),),
    )
    database.execute(
        "INSERT INTO message VALUES ('msg_c2', 'ses_child', 2, ?)",
        (json.dumps({**child, "parentID": "msg_c1"}),),
    )
    database.execute("INSERT INTO message VALUES ('msg_bad', 'ses_a', 9, 'not json')")
    database.commit()
    database.close()
    storage = read_storage(tmp_path)
    first, second = storage.tasks
    assert storage.sessions == 2
    assert storage.tally.broken == 1
    assert len(first.requests) == 3  # two answers and the subagent's one
    assert first.requests[0].total_input_tokens == 480
    assert first.requests[0].output_tokens == 25
    assert first.duration_ms == 10_000
    assert (first.outcome, second.outcome) == ("success", "partial")
    assert first.provider == "anthropic"


def test_opencode_json_files_of_older_versions(tmp_path: Path) -> None:
    storage_dir = tmp_path / "storage"
    (storage_dir / "session" / "proj").mkdir(parents=True)
    (storage_dir / "session" / "proj" / "ses_a.json").write_text(json.dumps({"id": "ses_a"}))
    for message_id, info in _opencode_messages():
        path = storage_dir / "message" / "ses_a" / f"{message_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**info, "id": message_id, "sessionID": "ses_a"}))
    (storage_dir / "message" / "ses_a" / "broken.json").write_text("{")
    storage = read_storage(tmp_path)
    assert [len(task.requests) for task in storage.tasks] == [2, 1]
    assert storage.tally.broken == 1


_infos = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.text(max_size=5),
            "role": st.sampled_from(["user", "assistant", "system", 3]),
            "parentID": st.text(max_size=5),
        },
        optional={
            "tokens": st.dictionaries(
                st.sampled_from(["input", "output", "reasoning", "cache"]),
                st.one_of(st.integers(-5, 10**6), st.text(max_size=3), st.none()),
            ),
            "time": st.dictionaries(st.sampled_from(["created", "completed"]), st.integers()),
            "error": st.one_of(st.none(), st.dictionaries(st.just("name"), st.text(max_size=8))),
        },
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(_infos)
def test_opencode_messages_never_fail_whatever_they_hold(infos: list[dict[str, Any]]) -> None:
    tasks = tasks_from_messages("s", infos)
    assert all(r.output_tokens >= 0 for task in tasks for r in task.requests)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=60), st.text(max_size=60)), max_size=20))
def test_codex_and_aider_parsers_never_fail_on_garbage(lines: list[str | bytes]) -> None:
    parse_rollout("s", lines)
    parse_log(lines)


def test_codex_files_are_found_under_dated_folders(tmp_path: Path) -> None:
    path = tmp_path / "2026" / "02" / "23" / "rollout-2026-02-23T12-00-00-abc.jsonl"
    write_lines(path, [_codex("event_msg", _tokens(10, 0, 1))])
    assert rollout_files(tmp_path) == [path]
    assert len(read_rollout(path).tasks) == 1
