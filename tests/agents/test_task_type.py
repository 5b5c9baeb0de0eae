"""The task type: configured wins; else the hook and the imports take it from the typed prompt."""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _agents_helpers import Env, Server, sample, stored, wait_until, write_lines
from _claude_lines import assistant, user

from mosaicstack_telemetry_agents.events import event_id, to_event
from mosaicstack_telemetry_agents.harnesses.claude_code import read_session
from mosaicstack_telemetry_agents.harnesses.codex import parse_rollout
from mosaicstack_telemetry_agents.harnesses.opencode import read_storage
from mosaicstack_telemetry_agents.settings import ENV_TASK_TYPE, Profile
from mosaicstack_telemetry_agents.summary import Summary

SESSION = "5b0e6a52-8c1f-4e0a-9d3b-7a2f1c9e4d11"
TESTS_PROMPT = "Write unit tests for the date parser, cover leap years"


def _projects(tmp_path: Path) -> Path:
    projects = tmp_path / "projects" / "reliability"
    shutil.copytree(sample("claude-code", "drmaciver-claude-reliability"), projects)
    return projects.parent


def _imported_types(env: Env, server: Server, projects: Path) -> dict[str, str]:
    result = env.run("import", "claude-code", "--projects", str(projects))
    assert result.returncode == 0, result.stderr.decode()
    types = {}
    for path in sorted(projects.glob("*/*.jsonl")):
        (task,) = read_session(path).tasks
        (event,) = stored(server, [event_id(task)])
        types[path.stem] = event.task_type.value
    return types


def test_import_takes_each_turns_task_type_from_its_prompt_on_real_transcripts(
    env: Env, server: Server, tmp_path: Path
) -> None:
    types = _imported_types(env, server, _projects(tmp_path))
    # "Read src/main.py and add a docstring to the top. Then stop."
    assert types["stop-hook-uncommitted-changes"] == "documentation"
    # "Write a shell script called hello.sh that prints "Hello world" and run it."
    assert types["hello-world-script"] == "implementation"
    # "I've reviewed my work and it's complete. Stop now.": a person could not say either.
    assert types["stop-hook-reflection-second-stop"] == "unknown"


def test_a_configured_task_type_wins_over_the_prompt_in_the_import(
    env: Env, server: Server, tmp_path: Path
) -> None:
    env.variables[ENV_TASK_TYPE] = "testing"
    types = _imported_types(env, server, _projects(tmp_path))
    assert set(types.values()) == {"testing"}


def test_configured_unknown_turns_the_classification_off(monkeypatch: pytest.MonkeyPatch) -> None:
    (task,) = read_session(sample("claude-code", "marot-spotter", "short.jsonl")).tasks
    summary = Summary(warn=lambda message: None)
    assert to_event(task, str(uuid.uuid4()), Profile.from_env(), summary).task_type == "debugging"
    monkeypatch.setenv(ENV_TASK_TYPE, "unknown")
    assert to_event(task, str(uuid.uuid4()), Profile.from_env(), summary).task_type == "unknown"
    flagged = Profile.from_env(task_type="refactoring")
    assert to_event(task, str(uuid.uuid4()), flagged, summary).task_type == "refactoring"


def _seed(server: Server, env: Env, task_type: str, cost_micros: int) -> None:
    event = {
        "instance_id": str(server.instance_id),
        "task_duration_ms": 60_000,
        "task_type": task_type,
        "complexity": "medium",
        "harness": "claude_code",
        "model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "estimated_input_tokens": 0,
        "estimated_output_tokens": 0,
        "actual_input_tokens": 20_000,
        "actual_output_tokens": 3_000,
        "estimated_cost_usd_micros": 0,
        "actual_cost_usd_micros": cost_micros,
        "quality_gate_passed": True,
        "context_compactions": 0,
        "context_rotations": 0,
        "context_utilization_final": 0.2,
        "outcome": "success",
        "retry_count": 0,
    }
    events = [{**event, "event_id": str(uuid.uuid4())} for _ in range(8)]
    assert env.run("send", stdin=json.dumps(events)).returncode == 0


def _prompt_submit(env: Env, transcript: Path, prompt: str) -> Any:
    payload = {
        "session_id": SESSION,
        "transcript_path": str(transcript),
        "hook_event_name": "UserPromptSubmit",
        "model": "claude-sonnet-4-5",
        "prompt": prompt,
    }
    return env.run("claude-code", "hook", stdin=json.dumps(payload))


def _cached_types(env: Env) -> set[str]:
    cache = env.state_dir / "predictions.json"
    if not cache.exists():
        return set()
    return {key.split("|")[0] for key in json.loads(cache.read_text())}


def test_the_hook_asks_the_estimate_for_the_prompts_task_type_and_its_event_carries_it(
    env: Env, server: Server, tmp_path: Path
) -> None:
    _seed(server, env, "testing", 420_000)
    _seed(server, env, "unknown", 170_000)
    transcript = write_lines(tmp_path / f"{SESSION}.jsonl", [])
    assert _prompt_submit(env, transcript, TESTS_PROMPT).stdout == b""  # nothing cached yet
    wait_until(lambda: "testing" in _cached_types(env), "the refreshed testing estimate")
    shown = _prompt_submit(env, transcript, TESTS_PROMPT)
    assert json.loads(shown.stdout)["systemMessage"].startswith("Tasks like this: median $0.42")
    now = datetime.now(UTC).isoformat()
    write_lines(
        transcript, [user(TESTS_PROMPT, uuid="p1", timestamp=now), assistant("m1", 40, now)]
    )
    stop = {"session_id": SESSION, "transcript_path": str(transcript), "hook_event_name": "Stop"}
    assert env.run("claude-code", "hook", "--wait", stdin=json.dumps(stop)).returncode == 0
    (task,) = read_session(transcript).tasks
    task.session_id = SESSION
    (event,) = stored(server, [event_id(task)])
    assert event.task_type.value == "testing"
    assert event.estimated_cost_usd_micros == 420_000


def test_with_a_configured_task_type_the_hook_asks_about_that_one(
    env: Env, server: Server, tmp_path: Path
) -> None:
    env.variables[ENV_TASK_TYPE] = "documentation"
    transcript = write_lines(tmp_path / f"{SESSION}.jsonl", [])
    assert _prompt_submit(env, transcript, TESTS_PROMPT).returncode == 0
    wait_until(lambda: bool(_cached_types(env)), "the refreshed estimate")
    assert _cached_types(env) == {"documentation"}


def test_a_codex_turn_takes_the_task_type_of_its_first_prompt_that_says_one() -> None:
    def line(payload: dict[str, Any], second: int) -> str:
        return json.dumps(
            {"timestamp": f"2026-02-23T12:00:{second:02}Z", "type": "event_msg", "payload": payload}
        )

    usage = {"input_tokens": 100, "cached_input_tokens": 0, "output_tokens": 10}
    tokens = {"type": "token_count", "info": {"total_token_usage": usage}}
    rollout = parse_rollout(
        "s",
        [
            line({"type": "task_started", "turn_id": "t1"}, 1),
            line({"type": "user_message", "message": "ok"}, 2),
            line({"type": "user_message", "message": "write unit tests for the config loader"}, 3),
            line({"type": "user_message", "message": "and fix the failing test"}, 4),
            line(tokens, 5),
        ],
    )
    (task,) = rollout.tasks
    assert task.prompt_type == "testing"


def test_opencode_turns_take_the_task_type_of_their_text_parts(tmp_path: Path) -> None:
    database = sqlite3.connect(tmp_path / "opencode.db")
    database.executescript(
        "CREATE TABLE session (id TEXT PRIMARY KEY, parent_id TEXT, time_created INTEGER);"
        "CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT, time_created INTEGER,"
        " data TEXT NOT NULL);"
        "CREATE TABLE part (id TEXT PRIMARY KEY, message_id TEXT, session_id TEXT,"
        " data TEXT NOT NULL);"
        "INSERT INTO session VALUES ('ses_a', NULL, 1);"
    )
    answer = {"role": "assistant", "parentID": "msg_1", "modelID": "claude-sonnet-4-5"}
    answer |= {"tokens": {"input": 10, "output": 5}, "time": {"created": 1_770_000_001_000}}
    messages = [
        ("msg_1", {"role": "user", "time": {"created": 1_770_000_000_000}}),
        ("msg_2", answer),
    ]
    for number, (message_id, info) in enumerate(messages):
        database.execute(
            "INSERT INTO message VALUES (?, 'ses_a', ?, ?)", (message_id, number, json.dumps(info))
        )
    parts = [
        ("prt_1", {"type": "text", "text": "Set up GitHub Actions to run the tests on every PR"}),
        ("prt_2", {"type": "text", "text": "security audit of everything", "synthetic": True}),
        ("prt_3", {"type": "file", "text": "write docs"}),
    ]
    for part_id, data in parts:
        database.execute(
            "INSERT INTO part VALUES (?, 'msg_1', 'ses_a', ?)", (part_id, json.dumps(data))
        )
    database.commit()
    database.close()
    (task,) = read_storage(tmp_path).tasks
    assert task.prompt_type == "configuration"


def test_opencode_json_storage_reads_the_prompt_from_its_part_files(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    messages = storage / "message" / "ses_a"
    messages.mkdir(parents=True)
    (messages / "msg_1.json").write_text(
        json.dumps({"id": "msg_1", "role": "user", "time": {"created": 1_770_000_000_000}})
    )
    answer = {"id": "msg_2", "role": "assistant", "parentID": "msg_1", "modelID": "gpt-5"}
    answer |= {"tokens": {"input": 10, "output": 5}, "time": {"created": 1_770_000_001_000}}
    (messages / "msg_2.json").write_text(json.dumps(answer))
    # An id that names a path out of the folder is never followed: `part/..` is `storage/`.
    (messages / "msg_3.json").write_text(
        json.dumps({"id": "..", "role": "user", "time": {"created": 1_770_000_002_000}})
    )
    later = {**answer, "id": "msg_4", "parentID": "..", "time": {"created": 1_770_000_003_000}}
    (messages / "msg_4.json").write_text(json.dumps(later))
    (storage / "outside.json").write_text(json.dumps({"type": "text", "text": "security audit"}))
    part = storage / "part" / "msg_1" / "prt_1.json"
    part.parent.mkdir(parents=True)
    part.write_text(json.dumps({"type": "text", "text": "write a README for utils.py"}))
    first, second = read_storage(tmp_path).tasks
    assert (first.prompt_type, second.prompt_type) == ("documentation", "unknown")
