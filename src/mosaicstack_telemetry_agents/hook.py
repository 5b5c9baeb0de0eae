"""`mosaic-telemetry claude-code hook`: the one command Claude Code's hooks run.

It is a new process per hook event, in the agent's way, so it does only what takes
milliseconds and never fails: it reads the hook's JSON from stdin, and
- at `SessionStart` and `UserPromptSubmit` prints the cached estimate for the task (its configured
  task type, else the one classified from the prompt; JSON: `systemMessage` for the person,
  `additionalContext` for the model) and remembers it for the turn, starting a background
  refresh of the prediction when it is old; the estimate is checked against the cached budget
  status (`budgetcheck.py`): a p90 over what is left is said in the line, and in block mode a
  prompt over budget is blocked at `UserPromptSubmit`;
- at `Stop` and `SessionEnd` starts a background reporter (`claude-code report`) for the session.
It always exits 0; a problem is one line on stderr and in the log file.
"""

from __future__ import annotations

import contextlib
import json
import os

# Starts our own reporter (our interpreter, our module, no shell).
import subprocess  # nosec B404
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from mosaicstack_telemetry_agents.budgetcheck import budget_verdict
from mosaicstack_telemetry_agents.estimate import (
    Query,
    cached_prediction,
    estimate_line,
    estimated_fields,
)
from mosaicstack_telemetry_agents.hookstate import append_estimate, estimate_before
from mosaicstack_telemetry_agents.settings import ENV_PROJECT, AgentSettings, Profile

__all__ = ["MAX_HOOK_INPUT", "log_problem", "run_hook"]

# A hook's JSON is a few hundred bytes; more is not a hook's input.
MAX_HOOK_INPUT = 1024 * 1024
_BEFORE = ("SessionStart", "UserPromptSubmit")
_AFTER = ("Stop", "SessionEnd")
# How much of the transcript's end is read to find the model in use: a few messages.
_TAIL_BYTES = 256 * 1024


class HookInputError(Exception):
    """Input the hook cannot use; told in one line."""


def log_problem(settings: AgentSettings, message: str) -> None:
    """One line on stderr and in the log file; never raises."""
    line = " ".join(message.split())[:500]
    with contextlib.suppress(OSError, ValueError):  # stderr closed or a broken pipe
        print(f"mosaic-telemetry: {line}", file=sys.stderr)
    with contextlib.suppress(OSError):
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        with settings.log_file.open("a", encoding="utf-8") as handle:
            handle.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {line}\n")


def _payload(stdin: IO[bytes]) -> dict[str, Any]:
    data = stdin.read(MAX_HOOK_INPUT + 1)
    if len(data) > MAX_HOOK_INPUT:
        raise HookInputError("hook input over 1 MiB ignored")
    try:
        payload = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise HookInputError("hook input is not JSON") from None
    if not isinstance(payload, dict):
        raise HookInputError("hook input is not a JSON object")
    return payload


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value or len(value) > 4096 or "\x00" in value:
        raise HookInputError(f"hook input has no usable {name!r}")
    return value


def _model_in(transcript: Path) -> str | None:
    """The model of the last assistant message in the transcript's last lines."""
    try:
        with transcript.open("rb") as handle:
            handle.seek(max(0, transcript.stat().st_size - _TAIL_BYTES))
            tail = handle.read(_TAIL_BYTES)
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        with contextlib.suppress(ValueError, LookupError, TypeError, RecursionError):
            model = json.loads(line)["message"]["model"]
            if isinstance(model, str) and not model.startswith("<"):
                return model
    return None


def _model(payload: dict[str, Any], settings: AgentSettings, session_id: str) -> str:
    model = payload.get("model")
    if isinstance(model, str) and 0 < len(model) <= 100:
        return model
    path = payload.get("transcript_path")
    found = _model_in(Path(path)) if isinstance(path, str) and len(path) < 4096 else None
    if found:
        return found
    last = estimate_before(settings.state_dir, session_id, None)
    return str(last["model"]) if last and isinstance(last.get("model"), str) else "unknown"


def _project(payload: dict[str, Any]) -> str | None:
    """The task's project, for budgets narrowed to one: the variable, else the cwd's repository."""
    configured = os.environ.get(ENV_PROJECT)
    if configured:
        return configured
    cwd = payload.get("cwd")
    if not isinstance(cwd, str) or not cwd or len(cwd) > 4096:
        return None
    from mosaicstack_telemetry_agents.project import project_of_directory

    return project_of_directory(cwd)


def _spawn(arguments: list[str], settings: AgentSettings) -> None:
    """Start `mosaic-telemetry ARGS` detached: it outlives the hook, its stderr goes to the log."""
    settings.log_file.parent.mkdir(parents=True, exist_ok=True)
    with settings.log_file.open("a", encoding="utf-8") as log:
        subprocess.Popen(  # noqa: S603  # nosec B603
            [sys.executable, "-m", "mosaicstack_telemetry_cli", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )


def _task_type_of(prompt: str) -> str:
    # Imported here: compiling the cue table (a few ms) is paid only where there is a prompt.
    from mosaicstack_telemetry_agents.classify import prompt_task_type

    return prompt_task_type(prompt)


def _before_task(
    payload: dict[str, Any], event: str, out: IO[str], settings: AgentSettings, profile: Profile
) -> None:
    session_id = _text(payload, "session_id")
    prompt = payload.get("prompt")  # UserPromptSubmit's: classified here, never kept
    classified = _task_type_of(prompt) if isinstance(prompt, str) else "unknown"
    query = Query(
        profile.task_type_for(classified),
        _model(payload, settings, session_id),
        "anthropic",
        profile.complexity,
    )
    response, stale = cached_prediction(settings.state_dir, query)
    estimated_in, estimated_out, cost = estimated_fields(response)
    now = datetime.now(UTC).isoformat()
    append_estimate(
        settings.state_dir,
        session_id,
        {
            "at": now,
            "model": query.model,
            "input": estimated_in,
            "output": estimated_out,
            "cost": cost,
        },
    )
    verdict = budget_verdict(settings.state_dir, response, _project(payload))
    line = "; ".join(part for part in (estimate_line(response), verdict.note) if part)
    output: dict[str, Any] | None = None
    if verdict.block and event == "UserPromptSubmit":
        # Claude Code's documented UserPromptSubmit decision: the prompt is not processed and
        # the reason is shown to the person (https://docs.claude.com/en/docs/claude-code/hooks).
        output = {"decision": "block", "reason": verdict.block}
    elif line:
        output = {
            "systemMessage": line,
            "hookSpecificOutput": {"hookEventName": event, "additionalContext": line},
        }
    if output is not None:
        out.write(json.dumps(output, ensure_ascii=False) + "\n")
        out.flush()
    if verdict.refresh:
        _spawn(["claude-code", "refresh-budgets"], settings)
    if stale:
        _spawn(
            ["claude-code", "refresh", f"--model={query.model}", f"--task-type={query.task_type}"],
            settings,
        )


def _after_task(payload: dict[str, Any], settings: AgentSettings, wait: bool) -> None:
    session_id = _text(payload, "session_id")
    transcript = _text(payload, "transcript_path")
    if not Path(transcript).is_file():
        raise HookInputError(f"transcript_path is not a file: {transcript[:200]!r}")
    # `--name=value`: a value starting with "-" must not be read as an option.
    arguments = [
        "claude-code",
        "report",
        f"--session-id={session_id}",
        f"--transcript={transcript}",
    ]
    if payload.get("hook_event_name") == "Stop":
        # A turn the person starts while the reporter runs belongs to the next Stop: reported
        # now, it would be split in two parts.
        arguments += [f"--until={datetime.now(UTC).isoformat()}"]
    if not wait:
        _spawn(arguments, settings)
        return
    from mosaicstack_telemetry_agents.cli import main

    main(arguments)


def run_hook(
    stdin: IO[bytes], out: IO[str], settings: AgentSettings, profile: Profile, wait: bool = False
) -> int:
    """Handle one hook event; always 0. `wait` reports in this process (tests, debugging)."""
    try:
        payload = _payload(stdin)
        event = payload.get("hook_event_name")
        if event in _BEFORE:
            _before_task(payload, str(event), out, settings, profile)
        elif event in _AFTER:
            _after_task(payload, settings, wait)
    except HookInputError as problem:
        log_problem(settings, str(problem))
    except Exception as exc:  # the hook must never be in the agent's way
        log_problem(settings, f"hook failed: {type(exc).__name__}: {exc}")
    return 0
