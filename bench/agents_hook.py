"""The Claude Code hook and `send` as Claude Code runs them: a new process each, server up.

Measured beside the floor of any Python hook (an interpreter that reads the JSON and exits), so
the figures travel between machines as ratios. `python -m bench --only agents_hook`.

The reporter finds the project of the turn's `cwd` (a git work tree here) by reading its git
config file; that read is timed on its own beside asking `git remote get-url`, the process it
replaces.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench._timing import Result, percentile
from mosaicstack_telemetry_agents.project import project_of_directory
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.runner import serve_in_thread
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import open_storage
from mosaicstack_telemetry_server.storage._budgets import BudgetRecord, budgets_of

__all__ = ["run"]

EXE = str(Path(sys.executable).with_name("mosaic-telemetry"))
_FLOOR = [sys.executable, "-c", "import json, sys; json.load(sys.stdin)"]
# A long typed prompt: a request, then a pasted traceback.
_PROMPT = "The nightly export fails, please fix it:\n" + 'File "export.py", line 9\nKeyError\n' * 80


def _work_tree(top: Path) -> Path:
    """A work tree as git leaves it, for the reporter to find the project of."""
    (top / ".git").mkdir(parents=True)
    (top / ".git" / "config").write_text(
        '[core]\n\tbare = false\n[remote "origin"]\n'
        "\turl = https://user:token@github.com/acme/widgets.git\n"
        "\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
    )
    (top / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    for folder in ("objects", "refs/heads"):
        (top / ".git" / folder).mkdir(parents=True)
    (top / "src").mkdir()
    return top / "src"


def _transcript(path: Path, cwd: Path) -> Path:
    where = {"cwd": str(cwd), "gitBranch": "main"}
    lines = [
        {
            "type": "user",
            "uuid": "p1",
            "timestamp": "2026-02-01T10:00:00Z",
            "message": {"role": "user", "content": "go"},
            **where,
        },
        {
            "type": "assistant",
            "timestamp": "2026-02-01T10:00:05Z",
            "requestId": "r1",
            **where,
            "message": {
                "id": "m1",
                "model": "claude-sonnet-4-5",
                "role": "assistant",
                "usage": {
                    "input_tokens": 5,
                    "output_tokens": 300,
                    "cache_read_input_tokens": 20_000,
                    "cache_creation_input_tokens": 1_000,
                },
            },
        },
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _times(
    command: list[str], stdin: bytes, env: dict[str, str], rounds: int
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU ms of each run; CPU is what the wall clock is on an idle machine."""
    wall, cpu = [], []
    for _ in range(rounds):
        started, used = time.perf_counter(), _cpu()
        subprocess.run(command, input=stdin, env=env, capture_output=True, check=True)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((_cpu() - used) * 1000)
    return wall, cpu


def _row(name: str, times: tuple[list[float], list[float]], floor: float) -> list[Result]:
    wall, cpu = times
    median = percentile(wall, 50)
    note = (
        f"{median / floor:.1f}x the floor; p95 {percentile(wall, 95):.0f} ms; "
        f"CPU {percentile(cpu, 50):.0f} ms"
    )
    return [Result("agents_hook", name, median, "ms (median)", note)]


def run(quick: bool) -> list[Result]:
    """Time each command `rounds` times against a server on a temporary SQLite file."""
    rounds = 5 if quick else 20
    with tempfile.TemporaryDirectory(prefix="mosaic-bench-hook-") as directory:
        home = Path(directory)
        database = f"sqlite:///{home / 'telemetry.db'}"
        storage = open_storage(database)
        storage.migrate()
        instance = uuid.uuid4()
        key, _ = issue_api_key(storage, instance, "bench")
        # A budget of this instance already spent: the hook's budget check takes its longest
        # path (a status cached, a verdict, a note in the line) at every UserPromptSubmit.
        budgets_of(storage).put_budget(
            BudgetRecord("bench", 1, "month", instance, None, (1.0,), None, None, datetime.now(UTC))
        )
        try:
            with serve_in_thread(ServerSettings(database_url=database)) as url:
                return _measure(home, url, key, instance, rounds)
        finally:
            storage.close()


def _measure(home: Path, url: str, key: str, instance: uuid.UUID, rounds: int) -> list[Result]:
    env = {
        **os.environ,
        "HOME": str(home),
        "MOSAIC_TELEMETRY_SERVER_URL": url,
        "MOSAIC_TELEMETRY_API_KEY": key,
        "MOSAIC_TELEMETRY_INSTANCE_ID": str(instance),
        "MOSAIC_TELEMETRY_SPOOL_DIR": str(home / "spool"),
        "MOSAIC_TELEMETRY_STATE_DIR": str(home / "state"),
    }
    cwd = _work_tree(home / "widgets")
    transcript = _transcript(home / "session.jsonl", cwd)

    def payload(event: str) -> bytes:
        return json.dumps(
            {
                "session_id": "bench",
                "transcript_path": str(transcript),
                "hook_event_name": event,
                "model": "claude-sonnet-4-5",
                # Classified at UserPromptSubmit (the task type of the estimate asked for).
                "prompt": _PROMPT,
            }
        ).encode()

    floor_wall, floor_cpu = _times(_FLOOR, payload("Stop"), env, rounds)
    floor = percentile(floor_wall, 50)
    hook = [EXE, "claude-code", "hook"]
    note = f"CPU {percentile(floor_cpu, 50):.0f} ms"
    results = [
        Result("agents_hook", "python floor (read the hook JSON)", floor, "ms (median)", note)
    ]
    results += _row(
        "hook UserPromptSubmit (estimate and budget shown)",
        _times(hook, payload("UserPromptSubmit"), env, rounds),
        floor,
    )
    results += _row(
        "hook Stop (reporter started)", _times(hook, payload("Stop"), env, rounds), floor
    )
    report = [*hook, "--wait"]
    results += _row(
        "hook Stop --wait (turn parsed, priced, sent)",
        _times(report, payload("Stop"), env, rounds),
        floor,
    )
    event = json.dumps(
        {
            "instance_id": str(instance),
            "task_duration_ms": 1,
            "task_type": "unknown",
            "complexity": "medium",
            "harness": "claude_code",
            "model": "m",
            "provider": "anthropic",
            "estimated_input_tokens": 0,
            "estimated_output_tokens": 0,
            "actual_input_tokens": 1,
            "actual_output_tokens": 1,
            "estimated_cost_usd_micros": 0,
            "actual_cost_usd_micros": 0,
            "quality_gate_passed": True,
            "context_compactions": 0,
            "context_rotations": 0,
            "context_utilization_final": 0.0,
            "outcome": "success",
            "retry_count": 0,
        }
    ).encode()
    results += _row("send (one event)", _times([EXE, "send"], event, env, rounds), floor)
    return results + _project_lookup(cwd, rounds)


def _project_lookup(cwd: Path, rounds: int) -> list[Result]:
    """The reporter's project lookup (a config file read) beside the git process it avoids."""
    read = project_of_directory.__wrapped__  # uncached: every call reads the file
    reads = []
    for _ in range(rounds * 20):
        started = time.perf_counter()
        read(str(cwd))
        reads.append((time.perf_counter() - started) * 1000)
    results = [
        Result("agents_hook", "project of cwd: read .git/config", percentile(reads, 50), "ms")
    ]
    git = shutil.which("git")
    if git is not None:
        runs = []
        for _ in range(rounds):
            started = time.perf_counter()
            command = [git, "-C", str(cwd), "remote", "get-url", "origin"]
            subprocess.run(command, capture_output=True, check=True)
            runs.append((time.perf_counter() - started) * 1000)
        results.append(
            Result("agents_hook", "project of cwd: git remote get-url", percentile(runs, 50), "ms")
        )
    return results
