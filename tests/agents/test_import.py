"""`mosaic-telemetry import` over a real server: totals, idempotency, --since, --dry-run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _agents_helpers import Env, Server, sample, stored

from mosaicstack_telemetry_agents.events import event_id
from mosaicstack_telemetry_agents.harnesses.claude_code import read_session


def _projects(tmp_path: Path) -> Path:
    projects = tmp_path / "projects" / "spotter"
    source = sample("claude-code", "marot-spotter")
    shutil.copytree(source, projects)
    return projects.parent


def test_import_claude_code_stores_every_turn_once(
    env: Env, server: Server, tmp_path: Path
) -> None:
    projects = _projects(tmp_path)
    first = env.run("import", "claude-code", "--projects", str(projects))
    assert first.returncode == 0, first.stderr.decode()
    summary = first.stderr.decode()
    assert "sessions" in summary
    assert "clamped: input_tokens" in summary  # turns over 10M input tokens (cache reads)
    tasks = [t for path in sorted(projects.glob("*/*.jsonl")) for t in read_session(path).tasks]
    events = stored(server, [event_id(task) for task in tasks])
    assert all(events)
    assert server.storage.count_events() == len(tasks)
    # Output is never near the limit: it adds up to the parser's totals exactly.
    assert sum(e.actual_output_tokens for e in events) == sum(
        r.output_tokens for t in tasks for r in t.requests
    )
    again = env.run("import", "claude-code", "--projects", str(projects))
    assert again.returncode == 0
    assert server.storage.count_events() == len(tasks)


def test_import_since_and_dry_run(env: Env, server: Server, tmp_path: Path) -> None:
    projects = _projects(tmp_path)
    dry = env.run("import", "claude-code", "--projects", str(projects), "--dry-run")
    assert dry.returncode == 0
    assert b"dry run" in dry.stderr
    assert server.storage.count_events() == 0
    later = env.run("import", "claude-code", "--projects", str(projects), "--since", "2026-02-12")
    assert later.returncode == 0
    assert b"before --since" in later.stderr
    count = server.storage.count_events()
    assert 0 < count < 9
    bad = env.run("import", "claude-code", "--projects", str(projects), "--since", "yesterday")
    assert bad.returncode == 1
    assert b"--since 'yesterday' is not a date" in bad.stderr


def test_import_codex_and_aider(env: Env, server: Server) -> None:
    sessions = sample("codex", "madshn-localpush", "sessions")
    codex = env.run("import", "codex", "--sessions", str(sessions))
    assert codex.returncode == 0, codex.stderr.decode()
    after_codex = server.storage.count_events()
    assert after_codex == 47
    log = sample("aider", "aider-ai-aider", "sample-analytics.jsonl")
    aider = env.run("import", "aider", "--analytics-log", str(log))
    assert aider.returncode == 0, aider.stderr.decode()
    assert b"sessions of calls outside a launch" in aider.stderr
    assert server.storage.count_events() == after_codex + 40


def test_import_opencode_json_storage(env: Env, server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "opencode" / "storage" / "message" / "ses_a"
    folder.mkdir(parents=True)
    for number, info in enumerate(
        [
            {"role": "user", "time": {"created": 1_770_000_000_000}},
            {
                "role": "assistant",
                "parentID": "m0",
                "modelID": "unknown-local-model",
                "providerID": "lmstudio",
                "cost": 0.5,
                "time": {"created": 1_770_000_001_000},
                "tokens": {"input": 10, "output": 5, "reasoning": 0, "cache": {}},
            },
        ]
    ):
        (folder / f"m{number}.json").write_text(json.dumps({**info, "id": f"m{number}"}))
    result = env.run("import", "opencode", "--storage", str(tmp_path / "opencode"))
    assert result.returncode == 0, result.stderr.decode()
    assert server.storage.count_events() == 1


def test_a_missing_folder_is_a_clear_error(env: Env, tmp_path: Path) -> None:
    result = env.run("import", "aider", "--analytics-log", str(tmp_path / "none.jsonl"))
    assert result.returncode == 1
    assert b"none.jsonl does not exist: nothing to import from aider" in result.stderr


@pytest.mark.parametrize("source", ["aider", "codex", "claude-code", "opencode"])
def test_a_name_the_system_cannot_look_up_is_the_same_clear_error(env: Env, source: str) -> None:
    flag = {"aider": "--analytics-log", "codex": "--sessions", "claude-code": "--projects"}
    name = "x" * 5000  # longer than any file name the system takes: ENAMETOOLONG, not ENOENT
    result = env.run("import", source, flag.get(source, "--storage"), name)
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert f"does not exist: nothing to import from {source}".encode() in result.stderr


def test_an_unreadable_file_is_skipped_and_counted(env: Env, tmp_path: Path) -> None:
    project = tmp_path / "projects" / "p"
    (project / "locked.jsonl").mkdir(parents=True)  # a folder where a file should be
    result = env.run("import", "claude-code", "--projects", str(tmp_path / "projects"))
    assert result.returncode == 0
    assert b"cannot be read" in result.stderr
