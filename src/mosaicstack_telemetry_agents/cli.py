"""The client commands of `mosaic-telemetry`: send, flush, claude-code, import.

Only argparse is imported up front; each handler imports what it needs, so a hook run pays for
the hook alone. Exit codes: 0 done, 1 something was not delivered or not valid, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

__all__ = ["build_parser", "main", "register"]

# `send` returns within this long of the process start, whatever the server does: what it could
# not deliver by then is in the spool. The others wait longer: nobody waits on them.
SEND_DEADLINE_SECONDS = 0.7
FLUSH_TIMEOUT_SECONDS = 10.0
REPORT_TIMEOUT_SECONDS = 5.0
IMPORT_TIMEOUT_SECONDS = 30.0

if TYPE_CHECKING:  # subscriptable for the type checker only
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server-url", default="", help="API base URL (default: $MOSAIC_TELEMETRY_SERVER_URL)"
    )
    parser.add_argument(
        "--instance-id", default="", help="instance UUID (default: $MOSAIC_TELEMETRY_INSTANCE_ID)"
    )
    # No --api-key flag: a key on a command line is visible to every user of the machine.


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-type", help="task type (default: $MOSAIC_TELEMETRY_TASK_TYPE)")
    parser.add_argument("--complexity", help="complexity (default: $MOSAIC_TELEMETRY_COMPLEXITY)")
    parser.add_argument("--outcome", help="override the outcome read from the logs")
    parser.add_argument("--language", help="primary programming language")
    parser.add_argument("--repo-size", help="repository size category")
    _add_attribution(parser)


def _add_attribution(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project", help="project, over the one read from the logs ($MOSAIC_TELEMETRY_PROJECT)"
    )
    parser.add_argument(
        "--branch", help="git branch, over the one read from the logs ($MOSAIC_TELEMETRY_BRANCH)"
    )
    parser.add_argument(
        "--user", help="who ran the tasks; none unless set ($MOSAIC_TELEMETRY_USER)"
    )


def _register_claude_code(commands: Commands) -> None:
    group = commands.add_parser("claude-code", help="Claude Code hook, install and uninstall")
    actions = group.add_subparsers(dest="claude_command", required=True, metavar="ACTION")
    hook = actions.add_parser("hook", help="run by Claude Code's hooks (JSON on stdin)")
    hook.add_argument("--wait", action="store_true", help="report in this process")
    hook.set_defaults(handler="hook")
    for name, text in (("install", "add the hooks"), ("uninstall", "remove the hooks")):
        action = actions.add_parser(name, help=f"{text} in a Claude Code settings.json")
        where = action.add_mutually_exclusive_group()
        where.add_argument("--user", action="store_true", help="~/.claude/settings.json (default)")
        where.add_argument("--project", type=Path, metavar="DIR", help="DIR/.claude/settings.json")
        action.set_defaults(handler=name)
    report = actions.add_parser("report", help=argparse.SUPPRESS)
    report.add_argument("--session-id", required=True)
    report.add_argument("--transcript", required=True, type=Path)
    report.add_argument("--until", help="leave turns started after this ISO time for later")
    _add_connection(report)
    _add_profile(report)
    report.set_defaults(handler="report")
    refresh = actions.add_parser("refresh", help=argparse.SUPPRESS)
    refresh.add_argument("--model", required=True)
    _add_connection(refresh)
    _add_profile(refresh)
    refresh.set_defaults(handler="refresh")
    budgets = actions.add_parser("refresh-budgets", help=argparse.SUPPRESS)
    _add_connection(budgets)
    budgets.set_defaults(handler="refresh_budgets")


def _register_import(commands: Commands) -> None:
    group = commands.add_parser("import", help="import past tasks from a harness's logs")
    sources = group.add_subparsers(dest="source", required=True, metavar="HARNESS")
    options = {
        "claude-code": ("--projects", "~/.claude/projects"),
        "codex": ("--sessions", "$CODEX_HOME/sessions, else ~/.codex/sessions"),
        "aider": ("--analytics-log", None),
        "opencode": ("--storage", "~/.local/share/opencode"),
    }
    for name, (flag, default) in options.items():
        source = sources.add_parser(name, help=f"import {name} history")
        if default is None:
            source.add_argument(flag, type=Path, required=True, metavar="FILE")
        else:
            source.add_argument(flag, type=Path, metavar="DIR", help=f"default: {default}")
        if name == "aider":
            source.add_argument(
                "--chat-history",
                type=Path,
                action="append",
                metavar="FILE",
                help="Aider's chat history, to type tasks by their prompts (repeatable; default: "
                "$AIDER_CHAT_HISTORY_FILE, else ./.aider.chat.history.md or the git top's)",
            )
        source.add_argument("--since", metavar="DATE", help="only tasks from DATE (YYYY-MM-DD)")
        source.add_argument("--dry-run", action="store_true", help="read and summarize, send none")
        _add_connection(source)
        _add_profile(source)
        source.set_defaults(handler="import")


def register(commands: Commands) -> None:
    """Add the client commands to `commands`."""
    send = commands.add_parser("send", help="send task events to the server")
    send.add_argument("file", nargs="?", default="-", metavar="FILE", help="a file, or - (stdin)")
    _add_connection(send)
    _add_attribution(send)
    send.set_defaults(handler="send")
    flush = commands.add_parser("flush", help="deliver the events waiting in the local spool")
    _add_connection(flush)
    flush.set_defaults(handler="flush")
    _register_claude_code(commands)
    _register_import(commands)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the client commands."""
    parser = argparse.ArgumentParser(prog="mosaic-telemetry")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: Sequence[str], *, started: float | None = None) -> int:
    """Run a client command; returns the exit status.

    `started` is when the process began its work (`time.monotonic()`): the entry point passes
    the clock it read before its imports, which `send`'s deadline counts from (default: now).
    """
    args = build_parser().parse_args(argv)
    args.started = time.monotonic() if started is None else started
    from mosaicstack_telemetry_agents import commands

    try:
        status: int = getattr(commands, f"run_{args.handler}")(args)
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:  # bad configuration or input, said in one line
        print(f"mosaic-telemetry: error: {exc}", file=sys.stderr)
        return 1 if args.handler != "hook" else 0
    return status
