"""`claude-code install` / `uninstall`: merged into settings.json, existing hooks kept, undone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _agents_helpers import Env

from mosaicstack_telemetry_agents.install import EVENTS

EXISTING: dict[str, Any] = {
    "model": "opus",
    "permissions": {"allow": ["Bash(git status)"]},
    "hooks": {
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}],
    },
}


def _settings(env: Env) -> Path:
    return env.home / ".claude" / "settings.json"


def test_install_keeps_every_hook_and_uninstall_restores_the_file(env: Env) -> None:
    path = _settings(env)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(EXISTING, indent=2))
    assert env.run("claude-code", "install", "--user").returncode == 0
    installed = json.loads(path.read_text())
    assert installed["hooks"]["Stop"][0] == EXISTING["hooks"]["Stop"][0]
    assert installed["hooks"]["PreToolUse"] == EXISTING["hooks"]["PreToolUse"]
    for event in EVENTS:
        commands = [h["command"] for g in installed["hooks"][event] for h in g["hooks"]]
        assert any(c.endswith("claude-code hook") for c in commands), event
    assert list(path.parent.glob("settings.json.*.bak"))
    assert env.run("claude-code", "uninstall").returncode == 0
    assert json.loads(path.read_text()) == EXISTING


def test_installing_twice_changes_nothing(env: Env) -> None:
    path = _settings(env)
    assert env.run("claude-code", "install").returncode == 0
    first = path.read_bytes()
    again = env.run("claude-code", "install")
    assert again.returncode == 0
    assert b"already installed" in again.stderr
    assert path.read_bytes() == first


def test_install_then_uninstall_without_a_settings_file_leaves_none(env: Env) -> None:
    assert env.run("claude-code", "install").returncode == 0
    assert env.run("claude-code", "uninstall").returncode == 0
    assert not _settings(env).exists()


def test_project_settings_go_under_the_projects_claude_folder(env: Env, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    assert env.run("claude-code", "install", "--project", str(project)).returncode == 0
    assert (project / ".claude" / "settings.json").exists()
    assert not _settings(env).exists()


def test_a_broken_settings_file_is_left_alone_with_a_clear_error(env: Env) -> None:
    path = _settings(env)
    path.parent.mkdir(parents=True)
    path.write_text("{ not json")
    result = env.run("claude-code", "install")
    assert result.returncode == 1
    assert b"is not valid JSON" in result.stderr
    assert path.read_text() == "{ not json"
