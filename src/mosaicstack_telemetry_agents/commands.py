"""The handlers of the client commands; each imports what it needs when it runs."""

from __future__ import annotations

import argparse
import contextlib
import sys

from mosaicstack_telemetry_agents.settings import AgentSettings, Profile

__all__ = [
    "run_flush",
    "run_hook",
    "run_import",
    "run_install",
    "run_refresh",
    "run_refresh_budgets",
    "run_report",
    "run_send",
    "run_uninstall",
]


def _settings(args: argparse.Namespace) -> AgentSettings:
    return AgentSettings(
        server_url=getattr(args, "server_url", ""), instance_id=getattr(args, "instance_id", "")
    )


def _profile(args: argparse.Namespace) -> Profile:
    profile = Profile.from_env(
        task_type=args.task_type,
        complexity=args.complexity,
        outcome=args.outcome,
        language=args.language,
        repo_size=args.repo_size,
        project=args.project,
        branch=args.branch,
        user=args.user,
    )
    problems = profile.problems()
    if problems:
        raise ValueError("; ".join(problems))
    return profile


def _send_budget(started: float) -> float:
    """What is left of `send`'s deadline after startup and reading (at least 0.1 s)."""
    import time

    from mosaicstack_telemetry_agents.cli import SEND_DEADLINE_SECONDS

    return max(0.1, SEND_DEADLINE_SECONDS - (time.monotonic() - started))


def run_send(args: argparse.Namespace) -> int:
    """`send [FILE|-]`: validate, send the valid events (the spool first), spool what is left."""
    from mosaicstack_telemetry_agents.delivery import deliver
    from mosaicstack_telemetry_agents.report import instance_id
    from mosaicstack_telemetry_agents.send import parse_events, print_errors, read_input

    settings = _settings(args)
    if args.file == "-":
        text = read_input(sys.stdin.buffer)
    else:
        with open(args.file, "rb") as handle:
            text = read_input(handle)
    try:
        default_instance = instance_id(settings)
    except ValueError:
        default_instance = ""
    configured = Profile.from_env(project=args.project, branch=args.branch, user=args.user)
    defaults = {
        name: value
        for name in ("project", "branch", "user")
        if (value := getattr(configured, name)) is not None
    }
    parsed = parse_events(text, default_instance, defaults)
    print_errors(parsed.errors)
    delivered = deliver(parsed.events, settings, timeout=_send_budget(args.started))
    print(
        f"mosaic-telemetry: {len(parsed.events)} valid, {len(parsed.errors)} invalid; "
        f"{delivered.sent} sent, {delivered.spooled} spooled, {delivered.rejected} rejected",
        file=sys.stderr,
    )
    return 0 if delivered.complete and not parsed.errors else 1


def run_flush(args: argparse.Namespace) -> int:
    """`flush`: deliver the spool (a client started on it sends it first)."""
    from mosaicstack_telemetry_agents.cli import FLUSH_TIMEOUT_SECONDS
    from mosaicstack_telemetry_agents.delivery import deliver

    delivered = deliver([], _settings(args), timeout=FLUSH_TIMEOUT_SECONDS)
    print(
        f"mosaic-telemetry: {delivered.sent} sent, {delivered.spooled} still spooled",
        file=sys.stderr,
    )
    return 0 if delivered.complete and delivered.spooled == 0 else 1


def run_hook(args: argparse.Namespace) -> int:
    """`claude-code hook`: always 0 (see hook.py)."""
    from mosaicstack_telemetry_agents.hook import run_hook

    # Not validated here: that imports the SDK (~0.2 s). The reporter and the prediction refresh
    # validate the profile and log what is wrong.
    try:
        profile = Profile.from_env()
        settings = AgentSettings()
    except Exception as exc:  # never in the agent's way: one line, exit 0
        with contextlib.suppress(OSError, ValueError):
            print(f"mosaic-telemetry: hook not run: {exc}"[:500], file=sys.stderr)
        return 0
    return run_hook(sys.stdin.buffer, sys.stdout, settings, profile, wait=args.wait)


def run_report(args: argparse.Namespace) -> int:
    """The hook's background reporter: report the session's unreported turns."""
    from mosaicstack_telemetry_agents.cli import REPORT_TIMEOUT_SECONDS
    from mosaicstack_telemetry_agents.harnesses._lines import parse_time
    from mosaicstack_telemetry_agents.hook import log_problem
    from mosaicstack_telemetry_agents.report import report_session
    from mosaicstack_telemetry_agents.summary import Summary

    settings = _settings(args)
    summary = Summary(warn=lambda message: log_problem(settings, message))
    try:
        delivered = report_session(
            args.session_id,
            args.transcript,
            settings,
            _profile(args),
            summary,
            REPORT_TIMEOUT_SECONDS,
            until=parse_time(args.until),
        )
    except (OSError, ValueError) as exc:
        log_problem(settings, f"report of session {args.session_id[:80]} failed: {exc}")
        return 1
    if delivered is not None and not delivered.complete:
        log_problem(settings, f"session {args.session_id[:80]}: not all delivered ({delivered})")
        return 1
    return 0


def run_refresh(args: argparse.Namespace) -> int:
    """The hook's background prediction refresh."""
    from mosaicstack_telemetry_agents.cli import REPORT_TIMEOUT_SECONDS
    from mosaicstack_telemetry_agents.estimate import Query, refresh_prediction

    settings = _settings(args)
    profile = _profile(args)
    query = Query(profile.task_type, args.model, "anthropic", profile.complexity)
    stored = refresh_prediction(
        settings.state_dir, query, settings.server_url, REPORT_TIMEOUT_SECONDS
    )
    return 0 if stored else 1


def run_refresh_budgets(args: argparse.Namespace) -> int:
    """The hook's background refresh of the budget status."""
    from mosaicstack_telemetry_agents.budgetcheck import refresh_budgets
    from mosaicstack_telemetry_agents.cli import REPORT_TIMEOUT_SECONDS

    settings = _settings(args)
    stored = refresh_budgets(settings.state_dir, settings.server_url, REPORT_TIMEOUT_SECONDS)
    return 0 if stored else 1


def run_install(args: argparse.Namespace) -> int:
    """`claude-code install`: merge our hooks into settings.json."""
    from mosaicstack_telemetry_agents.install import hook_command, install, settings_path

    path = settings_path(args.project)
    changed = install(path, hook_command())
    print(f"{'installed in' if changed else 'already installed in'} {path}", file=sys.stderr)
    return 0


def run_uninstall(args: argparse.Namespace) -> int:
    """`claude-code uninstall`: remove our hooks from settings.json."""
    from mosaicstack_telemetry_agents.install import settings_path, uninstall

    path = settings_path(args.project)
    changed = uninstall(path)
    print(f"{'removed from' if changed else 'not installed in'} {path}", file=sys.stderr)
    return 0


def run_import(args: argparse.Namespace) -> int:
    """`import HARNESS`: every task already on disk becomes an event."""
    from mosaicstack_telemetry_agents.importer import run_import

    return run_import(args, _settings(args), _profile(args))
