"""`mosaic-telemetry`: the one command line, light enough for a hook run per agent event.

Claude Code starts a new process for every hook, so this entry looks at the command name in
argv and imports only that command's group: the client commands (send, flush, claude-code,
import) never import the server's dependencies, and the server commands (serve, keys, migrate,
demo, ...) say in one line how to install them when they are missing.
"""

from __future__ import annotations

import time

# When this process began its work: `send` must return within 1 s of it, imports included.
STARTED = time.monotonic()

import argparse  # noqa: E402 - after the clock, so the clock sees their cost
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

__all__ = ["CLIENT_COMMANDS", "SERVER_COMMANDS", "SERVER_MISSING", "STARTED", "main"]

# Name -> one-line help, shown by `--help` without importing either group.
CLIENT_COMMANDS = {
    "send": "send task events (JSON, JSON array or JSON lines) to the server",
    "flush": "deliver the events waiting in the local spool",
    "claude-code": "Claude Code hook, and its install/uninstall",
    "import": "import past tasks of Claude Code, Codex, Aider or OpenCode",
}
SERVER_COMMANDS = {
    "serve": "serve the API",
    "keys": "manage API keys",
    "migrate": "create or upgrade the database schema",
    "demo": "run the whole loop on this machine",
    "report": "usage report from the database",
    "export": "export stored events",
    "prune": "delete the events stamped before a UTC day",
    "budgets": "manage budgets and see their spend, what is left and the forecast",
}
SERVER_MISSING = "the server needs: pip install 'mosaicstack-telemetry[server]'"
AGENTS_MISSING = "this command needs: pip install 'mosaicstack-telemetry[agents]'"
# What the `[agents]` extra adds to the SDK; `send` and `flush` work without it.
_AGENTS_DEPENDENCIES = frozenset({"genai_prices", "platformdirs", "rich"})


def _command(args: Sequence[str]) -> str | None:
    """The first argument that is not an option: the subcommand's name."""
    return next((arg for arg in args if not arg.startswith("-")), None)


def _run_server(args: list[str]) -> int:
    try:
        from mosaicstack_telemetry_server import cli as server_cli
    except ImportError:
        # The `[server]` extra is not installed: one friendly line, no traceback.
        print(SERVER_MISSING, file=sys.stderr)
        return 1
    try:
        return server_cli.main(args)
    except ImportError:  # a dependency imported lazily by one command (uvicorn in `serve`)
        print(SERVER_MISSING, file=sys.stderr)
        return 1


def _run_client(args: list[str]) -> int:
    from mosaicstack_telemetry_agents.cli import main as client_main

    try:
        return client_main(args, started=STARTED)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _AGENTS_DEPENDENCIES:
            raise
        print(AGENTS_MISSING, file=sys.stderr)
        # The hook is never in the agent's way, even when it cannot run.
        return 0 if args[:2] == ["claude-code", "hook"] else 1


def _overview(args: list[str]) -> int:
    from importlib.metadata import version

    parser = argparse.ArgumentParser(
        prog="mosaic-telemetry",
        description="Mosaic Stack Telemetry: report agent tasks, and serve the Telemetry API v1.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('mosaicstack-telemetry')}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in {**CLIENT_COMMANDS, **SERVER_COMMANDS}.items():
        commands.add_parser(name, help=text, add_help=False)
    parser.parse_args(args)  # exits: --help, --version, a missing or unknown command
    return 2  # pragma: no cover - parse_args exits for every argv that gets here


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = _command(args)
    if command in CLIENT_COMMANDS:
        return _run_client(args)
    if command in SERVER_COMMANDS:
        return _run_server(args)
    return _overview(args)
