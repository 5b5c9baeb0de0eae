"""Schema 1.1 filled without code: project, branch, cache and reasoning tokens from real logs.

A real Claude Code transcript is placed in a real git work tree (its `cwd` rewritten to it, in a
copy) whose origin carries credentials; a real Codex rollout names its own repository and
branch. The events the hook and the imports store carry what the logs say, the overrides win,
`user` is set only when configured, and the credentials are nowhere.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _agents_helpers import Env, Server, sample, stored

from mosaicstack_telemetry_agents.events import event_id, to_event
from mosaicstack_telemetry_agents.harnesses import aider, codex, opencode
from mosaicstack_telemetry_agents.harnesses.claude_code import read_session
from mosaicstack_telemetry_agents.settings import Profile
from mosaicstack_telemetry_agents.summary import Summary

SESSION = "5b7e2c1a-9d3f-4e8a-b6c2-1f0e9d8c7b6a"
SECRET = "s3cr3t-t0ken-never-stored"
GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="the git binary is not installed")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        [str(GIT), *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def _work_tree(folder: Path) -> Path:
    """A git work tree whose origin's URL carries a password."""
    folder.mkdir(parents=True)
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "remote", "add", "origin", f"https://user:{SECRET}@github.com/acme/widgets.git")
    return folder


def _placed(source: Path, cwd: Path, destination: Path) -> Path:
    """A copy of a transcript whose lines say they ran in `cwd`."""
    lines = []
    for line in source.read_text("utf-8").splitlines():
        record = json.loads(line)
        if "cwd" in record:
            record["cwd"] = str(cwd)
        lines.append(json.dumps(record))
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text("\n".join(lines) + "\n", "utf-8")
    return destination


def _claude_usages(path: Path) -> list[dict[str, Any]]:
    """Each API message's usage, once (streaming repeats a message's line)."""
    usages: dict[tuple[str, str], dict[str, Any]] = {}
    for line in path.read_text("utf-8").splitlines():
        record = json.loads(line)
        message = record.get("message")
        if (
            record.get("type") == "assistant"
            and isinstance(message, dict)
            and message.get("model") != "<synthetic>"
            and "usage" in message
        ):
            usages[(message["id"], record["requestId"])] = message["usage"]
    return list(usages.values())


def _branches(path: Path) -> set[str]:
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    return {r["gitBranch"] for r in lines if r.get("gitBranch")}


def _stored_turns(server: Server, transcript: Path, session: str) -> list[Any]:
    tasks = [replace(t, session_id=session) for t in read_session(transcript).tasks]
    events = stored(server, [event_id(task) for task in tasks])
    assert all(events), "every turn stored"
    return events


def _hook(env: Env, transcript: Path) -> None:
    payload = {
        "session_id": SESSION,
        "transcript_path": str(transcript),
        "cwd": str(transcript.parent),
        "hook_event_name": "SessionEnd",
    }
    result = env.run("claude-code", "hook", "--wait", stdin=json.dumps(payload))
    assert result.returncode == 0, result.stderr.decode()


@needs_git
def test_the_hook_reports_project_branch_and_cache_tokens_of_a_real_transcript_in_a_work_tree(
    env: Env, server: Server, tmp_path: Path
) -> None:
    source = sample("claude-code", "marot-spotter", "tool_heavy.jsonl")
    tree = _work_tree(tmp_path / "widgets-checkout")
    transcript = _placed(source, tree, tmp_path / "claude" / f"{SESSION}.jsonl")
    _hook(env, transcript)
    events = _stored_turns(server, transcript, SESSION)
    usages = _claude_usages(transcript)
    (branch,) = _branches(source)
    assert {e.project for e in events} == {"acme/widgets"}
    assert {e.branch for e in events} == {branch}
    assert {e.user for e in events} == {None}  # never guessed
    assert {e.reasoning_tokens for e in events} == {None}  # Anthropic does not break it out
    assert {e.schema_version for e in events} == {"1.1"}
    assert sum(e.cache_read_tokens for e in events) == sum(
        u["cache_read_input_tokens"] for u in usages
    )
    assert sum(e.cache_write_tokens for e in events) == sum(
        u["cache_creation_input_tokens"] for u in usages
    )
    # actual_input_tokens still counts everything read, cache included.
    assert sum(e.actual_input_tokens for e in events) == sum(
        u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
        for u in usages
    )
    _assert_no_secret(server, env)


def _assert_no_secret(server: Server, env: Env) -> None:
    database = Path(server.settings.database_url.removeprefix("sqlite:///"))
    for path in [*database.parent.glob(database.name + "*"), *env.home.rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


@needs_git
def test_variables_and_flags_override_what_the_log_says_and_set_the_user(
    env: Env, server: Server, tmp_path: Path
) -> None:
    source = sample("claude-code", "marot-spotter", "short.jsonl")
    tree = _work_tree(tmp_path / "checkout")
    projects = tmp_path / "projects"
    transcript = _placed(source, tree, projects / "widgets" / "short.jsonl")
    env.variables.update(
        MOSAIC_TELEMETRY_PROJECT="platform/monorepo", MOSAIC_TELEMETRY_USER="ada@example.com"
    )
    result = env.run("import", "claude-code", "--projects", str(projects), "--branch", "release")
    assert result.returncode == 0, result.stderr.decode()
    (event,) = _stored_turns(server, transcript, "short")
    assert (event.project, event.branch, event.user) == (
        "platform/monorepo",
        "release",
        "ada@example.com",
    )
    bad = env.run("import", "claude-code", "--projects", str(projects), "--user", "a\x07b")
    assert bad.returncode == 1
    assert b"user (from --user or $MOSAIC_TELEMETRY_USER) must be 1-200" in bad.stderr


def _codex_facts(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The rollout's `git` and its final cumulative usage (checked never to start over)."""
    git: dict[str, Any] = {}
    total = {"cached_input_tokens": 0, "reasoning_output_tokens": 0}
    for line in path.read_text("utf-8").splitlines():
        record = json.loads(line)
        payload = record.get("payload") or {}
        if record.get("type") == "session_meta":
            git = payload["git"]
        info = payload.get("info") if payload.get("type") == "token_count" else None
        if info and info.get("total_token_usage"):
            now = info["total_token_usage"]
            assert all(now[name] >= total[name] for name in total)
            total = {name: now[name] for name in total}
    return git, total


def test_a_real_codex_rollout_gives_project_branch_cached_and_reasoning_tokens(
    env: Env, server: Server, tmp_path: Path
) -> None:
    sessions = sample("codex", "madshn-localpush", "sessions")
    rollout = sorted(sessions.glob("rollout-*.jsonl"))[-1]
    folder = tmp_path / "sessions" / "2026" / "02" / "23"
    folder.mkdir(parents=True)
    shutil.copy(rollout, folder)
    result = env.run("import", "codex", "--sessions", str(tmp_path / "sessions"))
    assert result.returncode == 0, result.stderr.decode()
    tasks = codex.read_rollout(rollout).tasks
    events = stored(server, [event_id(task) for task in tasks])
    assert all(events)
    git, total = _codex_facts(rollout)
    # "redacted://url/<name>": the path after the host is the project.
    assert {e.project for e in events} == {git["repository_url"].split("://")[1].split("/", 1)[1]}
    assert {e.branch for e in events} == {git["branch"]}
    assert sum(e.cache_read_tokens for e in events) == total["cached_input_tokens"]
    assert sum(e.reasoning_tokens for e in events) == total["reasoning_output_tokens"] > 0
    assert {e.cache_write_tokens for e in events} == {None}  # the log has no cache writes
    assert {e.user for e in events} == {None}
    table = result.stderr.decode()
    for name, count in (
        ("reasoning", "reasoning_output_tokens"),
        ("cache read", "cached_input_tokens"),
    ):
        assert re.search(rf"of which {name}\s*│\s*{total[count]:,}\s*│", table), table
    assert "cache write" not in table


def test_an_aider_log_holds_no_attribution_and_its_events_stay_schema_1_0() -> None:
    log = aider.read_log(sample("aider", "aider-ai-aider", "sample-analytics.jsonl"))
    summary = Summary(warn=lambda _: None)
    events = [to_event(task, SESSION, Profile(), summary) for task in log.tasks]
    assert events
    assert {e.schema_version for e in events} == {"1.0"}
    assert "project" not in events[0].model_dump_json()


def test_opencode_messages_give_cache_reasoning_and_the_project_of_their_folder(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "my-service"
    folder.mkdir()
    answer = {
        "id": "m1",
        "role": "assistant",
        "parentID": "m0",
        "modelID": "claude-sonnet-4-5",
        "providerID": "anthropic",
        "time": {"created": 1_770_000_001_000},
        "path": {"cwd": str(folder), "root": str(folder)},
        "tokens": {"input": 10, "output": 5, "reasoning": 7, "cache": {"read": 300, "write": 40}},
    }
    prompt = {"id": "m0", "role": "user", "time": {"created": 1_770_000_000_000}}
    (task,) = opencode.tasks_from_messages("ses", [prompt, answer])
    event = to_event(task, SESSION, Profile(), Summary(warn=lambda _: None))
    assert (event.cache_read_tokens, event.cache_write_tokens) == (300, 40)
    assert (event.reasoning_tokens, event.actual_output_tokens) == (7, 12)
    assert event.actual_input_tokens == 350
    assert (event.project, event.branch) == ("my-service", None)


def test_a_detached_head_or_an_overlong_branch_never_fails_the_event(tmp_path: Path) -> None:
    source = sample("claude-code", "marot-spotter", "short.jsonl")
    records = [json.loads(line) for line in source.read_text("utf-8").splitlines()]
    summary = Summary(warn=lambda _: None)
    for branch, expected in (("HEAD", None), ("b" * 300 + "\x1b", "b" * 200), ("", None)):
        for record in records:
            record["gitBranch"] = branch
        path = tmp_path / "short.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
        (task,) = read_session(path).tasks
        assert to_event(task, SESSION, Profile(), summary).branch == expected


@needs_git
def test_the_hooks_reporter_takes_the_variables_over_the_transcript(
    env: Env, server: Server, tmp_path: Path
) -> None:
    source = sample("claude-code", "marot-spotter", "short.jsonl")
    tree = _work_tree(tmp_path / "checkout")
    transcript = _placed(source, tree, tmp_path / "claude" / f"{SESSION}.jsonl")
    env.variables.update(MOSAIC_TELEMETRY_BRANCH="hotfix/42", MOSAIC_TELEMETRY_USER="ci-bot")
    _hook(env, transcript)
    (event,) = _stored_turns(server, transcript, SESSION)
    assert (event.project, event.branch, event.user) == ("acme/widgets", "hotfix/42", "ci-bot")


def test_a_rollout_without_a_repository_url_takes_its_folders_name(tmp_path: Path) -> None:
    folder = tmp_path / "service-a"
    folder.mkdir()
    meta = {"id": "r1", "cwd": str(folder), "git": {"branch": "HEAD"}}
    lines = [
        {"type": "session_meta", "payload": meta},
        {"type": "turn_context", "payload": {"model": "gpt-5"}},
        {"type": "event_msg", "payload": {"type": "user_message"}},
        {
            "type": "event_msg",
            "timestamp": "2026-02-23T11:40:29Z",
            "payload": {
                "type": "token_count",
                "info": {"total_token_usage": {"input_tokens": 100, "cached_input_tokens": 60,
                                               "output_tokens": 20, "reasoning_output_tokens": 5}},
            },
        },
    ]  # fmt: skip
    (task,) = codex.parse_rollout("r1", [json.dumps(line) for line in lines]).tasks
    event = to_event(task, SESSION, Profile(), Summary(warn=lambda _: None))
    assert (event.project, event.branch) == ("service-a", None)  # a detached head: no branch
    assert (event.cache_read_tokens, event.reasoning_tokens) == (60, 5)
    assert event.actual_input_tokens == 100
