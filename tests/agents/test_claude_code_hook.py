"""`mosaic-telemetry claude-code hook` over a real server, run as Claude Code runs it.

Each hook event is a new process fed the hook's JSON on stdin, in a temporary HOME.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _agents_helpers import Env, Server, make_env, served_database, stored, wait_until, write_lines
from _claude_lines import assistant, user
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry_agents.events import event_id
from mosaicstack_telemetry_agents.harnesses.claude_code import read_session
from mosaicstack_telemetry_agents.tasks import Task

SESSION = "0f8c3a1e-4b6d-4e8e-9a57-3f2e2b8c7a10"
# The issue's bound is 1 s (the measured figure is in docs/integrations.md); room for CI load
# and coverage, which slows every process start.
HOOK_BOUND_SECONDS = 2.0


def _hook(env: Env, event: str, transcript: Path, *flags: str, **extra: Any) -> Any:
    payload = {
        "session_id": SESSION,
        "transcript_path": str(transcript),
        "cwd": str(env.home),
        "hook_event_name": event,
        **extra,
    }
    return env.run("claude-code", "hook", *flags, stdin=json.dumps(payload))


def _turn(
    prompt_id: str, minute: int, *messages: tuple[str, int], day: datetime | None = None
) -> list[dict[str, Any]]:
    start = (day or datetime(2026, 2, 1, 10, tzinfo=UTC)) + timedelta(minutes=minute)
    lines = [user(f"task {prompt_id}", uuid=prompt_id, timestamp=start.isoformat())]
    for second, (message_id, output) in enumerate(messages, 1):
        when = (start + timedelta(seconds=second)).isoformat()
        lines.append(assistant(message_id, output, when, input=5, write=100, read=1000))
    return lines


def _tokens(server: Server, transcript: Path) -> tuple[int, int]:
    """Input and output tokens stored for the session's turns (every part)."""
    total_in = total_out = 0
    for task in read_session(transcript).tasks:
        for part in range(4):
            probe = Task(task.harness, task.provider, SESSION, task.key, part=part)
            event = server.storage.get_event(server.instance_id, event_id(probe))
            if event is not None:
                total_in += event.actual_input_tokens
                total_out += event.actual_output_tokens
    return total_in, total_out


def test_stop_reports_the_turn_and_a_rerun_stores_nothing_new(
    env: Env, server: Server, tmp_path: Path
) -> None:
    transcript = write_lines(tmp_path / f"{SESSION}.jsonl", _turn("p1", 0, ("m1", 40)))
    assert _hook(env, "Stop", transcript, "--wait").returncode == 0
    assert server.storage.count_events() == 1
    (task,) = read_session(transcript).tasks
    task.session_id = SESSION
    (event,) = stored(server, [event_id(task)])
    assert (event.actual_input_tokens, event.actual_output_tokens) == (1105, 40)
    assert (event.harness.value, event.provider.value, event.outcome.value) == (
        "claude_code",
        "anthropic",
        "success",
    )
    assert (event.task_type.value, event.complexity.value) == ("unknown", "medium")
    assert event.task_duration_ms == 1000
    for again in ("Stop", "SessionEnd"):
        assert _hook(env, again, transcript, "--wait").returncode == 0
    assert server.storage.count_events() == 1


def test_a_session_id_that_looks_like_an_option_is_still_reported(
    env: Env, server: Server, tmp_path: Path
) -> None:
    # The hook hands values to its reporter as `--name=value`: a leading "-" is not an option.
    transcript = write_lines(tmp_path / "odd.jsonl", _turn("p1", 0, ("m1", 40)))
    payload = {
        "session_id": "--server-url=http://127.0.0.1:9",
        "transcript_path": str(transcript),
        "hook_event_name": "Stop",
    }
    result = env.run("claude-code", "hook", "--wait", stdin=json.dumps(payload))
    assert result.returncode == 0, result.stderr
    assert server.storage.count_events() == 1


def test_work_that_goes_on_after_a_stop_is_reported_once_and_in_full(
    env: Env, server: Server, tmp_path: Path
) -> None:
    path = tmp_path / f"{SESSION}.jsonl"
    first = _turn("p1", 0, ("m1", 40))
    transcript = write_lines(path, first)
    assert _hook(env, "Stop", transcript, "--wait").returncode == 0
    # A Stop hook's feedback made the agent go on in the same turn, then a second prompt.
    feedback = user("Stop hook feedback: tests fail", isMeta=True)
    more = assistant("m2", 70, "2026-02-01T10:00:30Z", input=5, write=100, read=1000)
    write_lines(path, [*first, feedback, more, *_turn("p2", 5, ("m3", 9))])
    assert _hook(env, "SessionEnd", transcript, "--wait").returncode == 0
    assert server.storage.count_events() == 3  # turn 1, the rest of turn 1, turn 2
    assert _tokens(server, transcript) == (3 * 1105, 40 + 70 + 9)


def test_the_hook_reports_in_the_background_and_returns_at_once(
    env: Env, server: Server, tmp_path: Path
) -> None:
    transcript = write_lines(tmp_path / f"{SESSION}.jsonl", _turn("p1", 0, ("m1", 40)))
    started = time.monotonic()
    result = _hook(env, "Stop", transcript)
    elapsed = time.monotonic() - started
    assert result.returncode == 0
    assert elapsed < HOOK_BOUND_SECONDS
    wait_until(lambda: server.storage.count_events() == 1, "the background report")


def test_a_server_that_is_down_then_up_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / f"{SESSION}.jsonl"
    transcript = write_lines(path, _turn("p1", 0, ("m1", 40)))
    instance = uuid.uuid4()
    home = tmp_path / "home"
    down = make_env(home, "http://127.0.0.1:9", "0" * 64, instance)
    assert _hook(down, "Stop", transcript, "--wait").returncode == 0
    write_lines(path, [*_turn("p1", 0, ("m1", 40)), *_turn("p2", 3, ("m2", 8))])
    with served_database(tmp_path / "telemetry.db") as server:
        from mosaicstack_telemetry_server.auth import issue_api_key

        key, _ = issue_api_key(server.storage, instance, "hook")
        server.instance_id = instance
        up = make_env(home, server.url, key, instance)
        assert _hook(up, "SessionEnd", transcript, "--wait").returncode == 0
        assert server.storage.count_events() == 2
        assert _tokens(server, transcript) == (2 * 1105, 48)


def _seed_predictions(server: Server, env: Env) -> None:
    events = []
    for number in range(8):
        events.append(
            {
                "instance_id": str(server.instance_id),
                "event_id": str(uuid.uuid4()),
                "task_duration_ms": 60_000,
                "task_type": "unknown",
                "complexity": "medium",
                "harness": "claude_code",
                "model": "claude-sonnet-4-5",
                "provider": "anthropic",
                "estimated_input_tokens": 0,
                "estimated_output_tokens": 0,
                "actual_input_tokens": 10_000 + 1000 * number,
                "actual_output_tokens": 2_000,
                "estimated_cost_usd_micros": 0,
                "actual_cost_usd_micros": 170_000,
                "quality_gate_passed": True,
                "context_compactions": 0,
                "context_rotations": 0,
                "context_utilization_final": 0.2,
                "outcome": "success",
                "retry_count": 0,
            }
        )
    assert env.run("send", stdin=json.dumps(events)).returncode == 0


def test_the_estimate_is_shown_before_the_turn_and_carried_by_its_event(
    env: Env, server: Server, tmp_path: Path
) -> None:
    _seed_predictions(server, env)
    transcript = write_lines(tmp_path / f"{SESSION}.jsonl", [])
    # No prediction cached yet: nothing is shown, a background refresh is started.
    started = _hook(env, "SessionStart", transcript, model="claude-sonnet-4-5")
    assert started.returncode == 0
    assert started.stdout == b""
    cache = env.state_dir / "predictions.json"
    wait_until(lambda: cache.exists() and "median" in cache.read_text(), "the refreshed estimate")
    shown = _hook(env, "UserPromptSubmit", transcript, model="claude-sonnet-4-5", prompt="go")
    output = json.loads(shown.stdout)
    line = output["systemMessage"]
    assert line.startswith("Tasks like this: median $0.17, ")
    assert "input tokens (" in line
    assert "8 tasks)" in line
    assert output["hookSpecificOutput"] == {
        "hookEventName": "UserPromptSubmit",
        "additionalContext": line,
    }
    # The prompt's line is written as the hook runs: stamped now, like the estimate.
    write_lines(transcript, _turn("p1", 0, ("m1", 40), day=datetime.now(UTC)))
    assert _hook(env, "Stop", transcript, "--wait").returncode == 0
    (task,) = read_session(transcript).tasks
    task.session_id = SESSION
    (event,) = stored(server, [event_id(task)])
    assert event.estimated_cost_usd_micros == 170_000
    assert event.estimated_output_tokens == 2_000
    assert 10_000 <= event.estimated_input_tokens <= 17_000


def test_the_orchestrators_variables_set_the_task_and_override_the_outcome(
    env: Env, server: Server, tmp_path: Path
) -> None:
    env.variables.update(
        MOSAIC_TELEMETRY_TASK_TYPE="testing",
        MOSAIC_TELEMETRY_COMPLEXITY="high",
        MOSAIC_TELEMETRY_OUTCOME="timeout",
    )
    transcript = write_lines(tmp_path / f"{SESSION}.jsonl", _turn("p1", 0, ("m1", 40)))
    assert _hook(env, "Stop", transcript, "--wait").returncode == 0
    (task,) = read_session(transcript).tasks
    task.session_id = SESSION
    (event,) = stored(server, [event_id(task)])
    assert (event.task_type.value, event.complexity.value, event.outcome.value) == (
        "testing",
        "high",
        "timeout",
    )


def test_a_bad_variable_is_logged_in_one_line_and_the_hook_still_exits_0(
    env: Env, tmp_path: Path
) -> None:
    env.variables["MOSAIC_TELEMETRY_TASK_TYPE"] = "gardening"
    transcript = write_lines(tmp_path / f"{SESSION}.jsonl", _turn("p1", 0, ("m1", 40)))
    result = _hook(env, "Stop", transcript, "--wait")
    assert result.returncode == 0
    assert "gardening" in (env.state_dir / "hook.log").read_text()


@pytest.mark.parametrize(
    "stdin",
    [
        b"",
        b"\xff\xfe\x00binary",
        b'{"session_id": "s", "hook_event_name": "Stop", "transcript_pa',
        b"[1, 2, 3]",
        b'{"hook_event_name": "Stop", "session_id": "s", "transcript_path": "/dev/zero"}',
        b'{"hook_event_name": "Stop", "session_id": 5}',
        b'{"hook_event_name": "UserPromptSubmit"}',
        b"[" * 100_000,
        b'{"x": "' + b"a" * 3_000_000 + b'"}',
    ],
    ids=["empty", "binary", "truncated", "array", "device", "bad-id", "no-id", "deep", "huge"],
)
def test_bad_input_never_fails_and_never_takes_a_second(env: Env, stdin: bytes) -> None:
    started = time.monotonic()
    result = env.run("claude-code", "hook", stdin=stdin)
    assert result.returncode == 0
    assert time.monotonic() - started < HOOK_BOUND_SECONDS
    assert result.stderr.count(b"\n") <= 1  # one line, no traceback


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.dictionaries(
            st.sampled_from(["session_id", "transcript_path", "hook_event_name", "model"]),
            st.one_of(
                st.sampled_from(["SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"]),
                st.text(max_size=50),
                st.integers(),
                st.none(),
            ),
        ).map(lambda payload: json.dumps(payload).encode()),
    )
)
def test_whatever_the_hook_is_given_it_exits_0_within_the_bound(env: Env, stdin: bytes) -> None:
    started = time.monotonic()
    result = env.run("claude-code", "hook", stdin=stdin)
    assert result.returncode == 0
    assert time.monotonic() - started < HOOK_BOUND_SECONDS


def test_without_a_model_in_the_input_the_transcripts_last_model_is_asked_about(
    env: Env, tmp_path: Path
) -> None:
    lines = _turn("p1", 0, ("m1", 40))
    lines[-1]["message"]["model"] = "claude-haiku-4-5"
    transcript = write_lines(tmp_path / f"{SESSION}.jsonl", [*lines, {"type": "summary"}])
    assert _hook(env, "UserPromptSubmit", transcript).returncode == 0
    recorded = (env.state_dir / "sessions" / f"{SESSION}.estimates.jsonl").read_text()
    assert json.loads(recorded.splitlines()[-1])["model"] == "claude-haiku-4-5"


def test_a_turn_started_after_the_stop_is_left_whole_for_the_next_report(
    env: Env, server: Server, tmp_path: Path
) -> None:
    # The person typed the next prompt while the Stop's reporter was still reading.
    lines = [*_turn("p1", 0, ("m1", 40)), *_turn("p2", 2, ("m2", 8))]
    transcript = write_lines(tmp_path / f"{SESSION}.jsonl", lines)
    stop_time = "2026-02-01T10:01:00+00:00"
    report = env.run(
        "claude-code",
        "report",
        "--session-id",
        SESSION,
        "--transcript",
        str(transcript),
        "--until",
        stop_time,
    )
    assert report.returncode == 0, report.stderr.decode()
    assert server.storage.count_events() == 1
    write_lines(transcript, [*lines, assistant("m3", 5, "2026-02-01T10:02:09Z", input=5)])
    assert _hook(env, "SessionEnd", transcript, "--wait").returncode == 0
    assert server.storage.count_events() == 2  # turn 2 reported once, whole
    assert _tokens(server, transcript) == (2 * 1105 + 5, 53)
