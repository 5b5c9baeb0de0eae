"""The command groups never import the `mosaic-telemetry` entry: the dependency runs one way."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from _agents_helpers import REPO, Env

AGENTS = REPO / "src" / "mosaicstack_telemetry_agents"
ENTRY = "mosaicstack_telemetry_cli"


def _imported_modules(source: Path) -> set[str]:
    """Every module `source` imports, at any depth (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_no_agents_module_imports_the_cli_entry_even_inside_a_function() -> None:
    offenders = {
        str(path.relative_to(AGENTS)): sorted(
            name for name in _imported_modules(path) if name.split(".")[0] == ENTRY
        )
        for path in AGENTS.rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_send_and_the_waiting_hook_run_without_loading_the_cli_entry(
    env: Env, tmp_path: Path
) -> None:
    transcript = tmp_path / "transcript.jsonl"
    transcript.write_text("")
    hook = json.dumps(
        {"hook_event_name": "Stop", "session_id": "s", "transcript_path": str(transcript)}
    )
    code = f"""
import io, json, sys
from mosaicstack_telemetry_agents.cli import main
for argv, given in ((["send", "-"], "[]"), (["claude-code", "hook", "--wait"], {hook!r})):
    sys.stdin = io.TextIOWrapper(io.BytesIO(given.encode()))
    try:
        main(argv)
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == {ENTRY!r})))
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        timeout=60,
        env=env.variables,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
