"""Where the client commands get their configuration: `MOSAIC_TELEMETRY_*` variables, then flags.

The server, key and instance come from the SDK's own variables (read by `TelemetryConfig`); the
task's dimensions come from variables an orchestrator can set around an agent run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ENV_BRANCH",
    "ENV_COMPLEXITY",
    "ENV_LANGUAGE",
    "ENV_OUTCOME",
    "ENV_PROJECT",
    "ENV_REPO_SIZE",
    "ENV_SPOOL_DIR",
    "ENV_STATE_DIR",
    "ENV_TASK_TYPE",
    "ENV_USER",
    "AgentSettings",
    "Profile",
]

ENV_TASK_TYPE = "MOSAIC_TELEMETRY_TASK_TYPE"
ENV_COMPLEXITY = "MOSAIC_TELEMETRY_COMPLEXITY"
ENV_OUTCOME = "MOSAIC_TELEMETRY_OUTCOME"
ENV_LANGUAGE = "MOSAIC_TELEMETRY_LANGUAGE"
ENV_REPO_SIZE = "MOSAIC_TELEMETRY_REPO_SIZE"
# Attribution (schema 1.1): over what the logs say; `user` is only ever set from here.
ENV_PROJECT = "MOSAIC_TELEMETRY_PROJECT"
ENV_BRANCH = "MOSAIC_TELEMETRY_BRANCH"
ENV_USER = "MOSAIC_TELEMETRY_USER"
ENV_SPOOL_DIR = "MOSAIC_TELEMETRY_SPOOL_DIR"
# Hook state (reported turns, estimates, the prediction cache) and the hook's log file.
ENV_STATE_DIR = "MOSAIC_TELEMETRY_STATE_DIR"
_APP = "mosaicstack-telemetry"


def _cache_dir() -> Path:
    """The user's cache directory for this application (platformdirs' choice per system).

    Without the `[agents]` extra, the XDG rule: `send` and `flush` need nothing but the SDK.
    """
    try:
        from platformdirs import user_cache_dir
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / _APP
    return Path(user_cache_dir(_APP, appauthor=False))


@dataclass(frozen=True)
class Profile:
    """What the logs do not say about a task: set by an orchestrator, else the builder's defaults.

    Values are the wire strings (`implementation`, `high`, ...); `outcome`, `project` and
    `branch` set here override what the log says. `user` is set only here, never guessed. A task
    type set here wins over the one classified from the prompt.
    """

    task_type: str = "unknown"
    complexity: str = "medium"
    outcome: str | None = None
    language: str | None = None
    repo_size: str | None = None
    project: str | None = None
    branch: str | None = None
    user: str | None = None
    # Set by a variable or flag, even to `unknown` (which turns the prompt's classification off).
    task_type_configured: bool = False

    def task_type_for(self, classified: str) -> str:
        """The configured task type; when none is, the one classified from the task's prompt."""
        configured = self.task_type_configured or self.task_type != "unknown"
        return self.task_type if configured else classified

    @classmethod
    def from_env(cls, **flags: str | None) -> Profile:
        """Variables first, flags (when given) over them."""
        values = {
            "task_type": os.environ.get(ENV_TASK_TYPE) or "unknown",
            "complexity": os.environ.get(ENV_COMPLEXITY) or "medium",
            "outcome": os.environ.get(ENV_OUTCOME) or None,
            "language": os.environ.get(ENV_LANGUAGE) or None,
            "repo_size": os.environ.get(ENV_REPO_SIZE) or None,
            "project": os.environ.get(ENV_PROJECT) or None,
            "branch": os.environ.get(ENV_BRANCH) or None,
            "user": os.environ.get(ENV_USER) or None,
        }
        values.update({name: value for name, value in flags.items() if value})
        configured = bool(os.environ.get(ENV_TASK_TYPE) or flags.get("task_type"))
        return cls(**values, task_type_configured=configured)  # type: ignore[arg-type]

    def problems(self) -> list[str]:
        """One message per value that is not one of its enum's wire values."""
        from mosaicstack_telemetry import Complexity, Outcome, RepoSizeCategory, TaskType

        checks: list[tuple[str, str, str | None, Any]] = [
            ("task type", ENV_TASK_TYPE, self.task_type, TaskType),
            ("complexity", ENV_COMPLEXITY, self.complexity, Complexity),
            ("outcome", ENV_OUTCOME, self.outcome, Outcome),
            ("repo size", ENV_REPO_SIZE, self.repo_size, RepoSizeCategory),
        ]
        problems = []
        for label, env, value, enum in checks:
            allowed = [member.value for member in enum]
            if value is not None and value not in allowed:
                problems.append(
                    f"{label} {value!r} (from --{label.replace(' ', '-')} or ${env}) "
                    f"must be one of: {', '.join(allowed)}"
                )
        if self.language is not None and len(self.language) > 30:
            problems.append(f"language must be at most 30 characters (${ENV_LANGUAGE})")
        for name, env, value in (
            ("project", ENV_PROJECT, self.project),
            ("branch", ENV_BRANCH, self.branch),
            ("user", ENV_USER, self.user),
        ):
            if value is not None and not _is_label(value):
                problems.append(
                    f"{name} (from --{name} or ${env}) must be 1-200 characters, "
                    "none of them a control character"
                )
        return problems


def _is_label(value: str) -> bool:
    return 0 < len(value) <= 200 and not any(ord(c) < 32 or ord(c) == 127 for c in value)


@dataclass(frozen=True)
class AgentSettings:
    """Connection and local directories; empty strings mean "take the SDK's variable"."""

    server_url: str = ""
    instance_id: str = ""
    spool_dir: Path = field(default_factory=lambda: _default_dir(ENV_SPOOL_DIR, "spool"))
    state_dir: Path = field(default_factory=lambda: _default_dir(ENV_STATE_DIR, "state"))

    @property
    def log_file(self) -> Path:
        """The file where the hook writes its problems (stderr gets one line each too)."""
        return self.state_dir / "hook.log"


def _default_dir(env: str, name: str) -> Path:
    configured = os.environ.get(env)
    return Path(configured) if configured else _cache_dir() / name
