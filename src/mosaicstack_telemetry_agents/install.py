"""`claude-code install` / `uninstall`: our hook entries merged into a Claude Code settings.json.

Every existing hook is kept; a backup is written before a change; running it twice changes
nothing; uninstall removes exactly what install added (and containers it left empty), so
install then uninstall leaves the settings as they were.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["EVENTS", "hook_command", "install", "settings_path", "uninstall"]

# The hook events we need: an estimate before each task, a report after it.
EVENTS = ("SessionStart", "UserPromptSubmit", "Stop", "SessionEnd")
_MARKER = "claude-code hook"
# Claude Code's default is 60 s; ours answers in well under 1 s, so a stuck one is cut early.
_TIMEOUT_SECONDS = 10


def settings_path(project: Path | None) -> Path:
    """`DIR/.claude/settings.json` for a project, else the user's (`$CLAUDE_CONFIG_DIR` aware)."""
    if project is not None:
        return project / ".claude" / "settings.json"
    base = os.environ.get("CLAUDE_CONFIG_DIR")
    return (Path(base) if base else Path.home() / ".claude") / "settings.json"


def hook_command() -> str:
    """The command line the hooks run: this installation's `mosaic-telemetry`, by full path."""
    beside = Path(sys.executable).with_name("mosaic-telemetry")
    found = str(beside) if beside.exists() else shutil.which("mosaic-telemetry")
    return f"{shlex.quote(found or 'mosaic-telemetry')} claude-code hook"


def _ours(entry: object) -> bool:
    return isinstance(entry, dict) and _MARKER in str(entry.get("command", ""))


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text("utf-8") or "{}")
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); nothing was changed") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object; nothing was changed")
    return data


def _save(path: Path, before: dict[str, Any], after: dict[str, Any]) -> bool:
    if before == after:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        shutil.copy2(path, path.with_name(f"{path.name}.{stamp}.bak"))
    if after:
        path.write_text(json.dumps(after, indent=2) + "\n", "utf-8")
    else:  # nothing left: the file did not exist before install
        path.unlink()
    return True


def install(path: Path, command: str) -> bool:
    """Add our hook to each event that lacks it; whether the file changed."""
    before = _load(path)
    after = json.loads(json.dumps(before))
    hooks = after.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ValueError(f"{path}: 'hooks' is not an object; nothing was changed")
    for event in EVENTS:
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise ValueError(f"{path}: hooks.{event} is not a list; nothing was changed")
        present = any(
            _ours(entry)
            for group in groups
            if isinstance(group, dict)
            for entry in group.get("hooks", [])
        )
        if not present:
            entry = {"type": "command", "command": command, "timeout": _TIMEOUT_SECONDS}
            groups.append({"hooks": [entry]})
    return _save(path, before, after)


def uninstall(path: Path) -> bool:
    """Remove our hook entries, and the groups and lists they leave empty."""
    before = _load(path)
    after = json.loads(json.dumps(before))
    hooks = after.get("hooks")
    if not isinstance(hooks, dict):
        return False
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        kept = []
        for group in groups:
            if isinstance(group, dict) and isinstance(group.get("hooks"), list):
                entries = [entry for entry in group["hooks"] if not _ours(entry)]
                if not entries and len(entries) != len(group["hooks"]):
                    continue  # a group that held only our hook
                group = {**group, "hooks": entries}
            kept.append(group)
        hooks[event] = kept
        if not kept and before.get("hooks", {}).get(event) != []:
            del hooks[event]
    if not hooks and before.get("hooks") != {}:
        del after["hooks"]
    return _save(path, before, after)
