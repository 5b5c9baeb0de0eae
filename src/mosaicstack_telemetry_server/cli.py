"""`mosaic-telemetry`: serve the API, manage API keys, migrate, run the demo.

Exit codes: 0 success, 1 failure (e.g. database unreachable), 2 invalid arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from mosaicstack_telemetry_server import __version__, reporting
from mosaicstack_telemetry_server.auth import MAX_LABEL_CHARS, issue_api_key
from mosaicstack_telemetry_server.process_settings import (
    DEFAULT_GRACEFUL_SECONDS,
    LOG_LEVELS,
    MAX_WORKERS,
    ProcessSettings,
    process_settings,
)
from mosaicstack_telemetry_server.proxies import parse_trusted_proxies
from mosaicstack_telemetry_server.runner import (
    ENV_LOG_LEVEL,
    ENV_SETTINGS,
    settings_from_env,
    settings_to_env,
)
from mosaicstack_telemetry_server.settings import LIMITS, ServerSettings, format_number
from mosaicstack_telemetry_server.storage import Storage, StorageError, open_storage, redact_url

__all__ = [
    "build_parser",
    "effective_config",
    "main",
    "register",
    "settings_from_args",
    "uvicorn_options",
]

# A token file larger than this is not a token (and is not read whole).
_MAX_TOKEN_BYTES = 4096


def _bounded(kind: Callable[[str], Any], low: float, high: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be between {format_number(low)} and {format_number(high)}"
            )
        return value

    return parse


def _uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid UUID") from None


def _label(text: str) -> str:
    if len(text) > MAX_LABEL_CHARS or not text.isprintable():
        # Printable only: a label is shown in terminals by `keys list`.
        raise argparse.ArgumentTypeError(f"must be at most {MAX_LABEL_CHARS} printable characters")
    return text


def _trusted_proxy(text: str) -> str:
    try:
        return ",".join(parse_trusted_proxies(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        help=f"database URL (default: ${ENV_SETTINGS['database_url']}, else a SQLite file in "
        "the user data directory)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mosaic-telemetry", description="Mosaic Stack Telemetry API v1 server."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register(commands)
    return parser


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the server's subcommands (serve, keys, migrate, prune, demo...) to `commands`.

    The light `mosaic-telemetry` entry (`mosaicstack_telemetry_cli`) calls this only when a
    server command is asked for, so the client commands never import the server's dependencies.
    """
    serve = commands.add_parser("serve", help="serve the API")
    serve.add_argument("--host", help="interface (default 127.0.0.1, $MOSAIC_TELEMETRY_HOST)")
    serve.add_argument(
        "--port",
        type=_bounded(int, 0, 65535),
        help="default 8000, $MOSAIC_TELEMETRY_PORT, else $PORT",
    )
    _add_database(serve)
    _add_limit_flags(serve)
    serve.add_argument(
        "--workers",
        type=_bounded(int, 1, MAX_WORKERS),
        help="worker processes (default 1, $MOSAIC_TELEMETRY_WORKERS); each is stateless "
        "apart from its rate limiter",
    )
    serve.add_argument(
        "--graceful-timeout",
        metavar="SECONDS",
        type=_bounded(int, 0, 3600),
        help="how long in-flight requests may finish on shutdown "
        f"(default {DEFAULT_GRACEFUL_SECONDS}, $MOSAIC_TELEMETRY_GRACEFUL_TIMEOUT)",
    )
    serve.add_argument(
        "--log-level", choices=LOG_LEVELS, help="default info, $MOSAIC_TELEMETRY_LOG_LEVEL"
    )
    serve.add_argument(
        "--header-timeout",
        metavar="SECONDS",
        type=_bounded(float, 0.1, 3600),
        help="time a connection has to send a request's head (default 10, "
        "$MOSAIC_TELEMETRY_HEADER_TIMEOUT)",
    )
    serve.add_argument(
        "--body-timeout",
        metavar="SECONDS",
        type=_bounded(float, 0.1, 3600),
        help="time a request has to send its body (default 30, $MOSAIC_TELEMETRY_BODY_TIMEOUT)",
    )
    serve.add_argument(
        "--max-connections",
        metavar="N",
        type=_bounded(int, 0, 1_000_000),
        help="open connections per worker process; 0: the descriptor limit less a reserve "
        "(default 0, $MOSAIC_TELEMETRY_MAX_CONNECTIONS)",
    )
    serve.add_argument(
        "--trusted-proxy",
        metavar="CIDR",
        action="append",
        type=_trusted_proxy,
        help="a reverse proxy whose X-Forwarded-For names the client (repeatable; default "
        f"${ENV_SETTINGS['trusted_proxies']}, comma-separated; none)",
    )
    serve.add_argument(
        "--metrics-token-file",
        metavar="PATH",
        help="file holding the bearer token GET /metrics requires (default "
        f"${ENV_SETTINGS['metrics_token']}; none: /metrics is open). A file, not a flag: "
        "a flag's value shows in the process list",
    )
    serve.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings as JSON, secrets masked, and exit",
    )
    serve.set_defaults(handler=_serve)

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser(
        "create", help="create a key; prints the key alone on stdout (shown once)"
    )
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--instance-id", type=_uuid, metavar="UUID", help="an instance key")
    owner.add_argument(
        "--admin",
        action="store_true",
        help="an admin key: no instance; reads every instance's usage, submits nothing",
    )
    create.add_argument("--label", type=_label, help=f"at most {MAX_LABEL_CHARS} characters")
    _add_database(create)
    create.set_defaults(handler=_keys_create)
    listing = key_commands.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    _add_database(listing)
    listing.set_defaults(handler=_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its key id")
    revoke.add_argument("key_id", metavar="KEY_ID")
    _add_database(revoke)
    revoke.set_defaults(handler=_keys_revoke)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    _add_database(migrate)
    migrate.set_defaults(handler=_migrate)

    prune = commands.add_parser(
        "prune", help="delete the events stamped before a UTC day, and their days' summaries"
    )
    prune.add_argument(
        "--before",
        metavar="DATE",
        type=_prune_day,
        required=True,
        help="first UTC day kept (YYYY-MM-DD): events stamped before its midnight go",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="only print how many events and days would go"
    )
    _add_database(prune)
    prune.set_defaults(handler=_prune)

    demo = commands.add_parser("demo", help="run the whole loop on this machine")
    # Imported here, not at the top: only the parser needs it before the demo runs.
    from mosaicstack_telemetry_server import demo as demo_module

    demo_module.add_demo_arguments(demo)
    demo.set_defaults(handler=demo_module.run_demo)
    reporting.register(commands)


# Settings with a range (LIMITS) and a flag: (setting, flag's dest, metavar, help). The parser
# bounds each flag with the setting's LIMITS; `settings_from_args` applies them over the
# environment (`runner.ENV_SETTINGS`, named in each help).
_LIMIT_FLAGS: tuple[tuple[str, str, str, str], ...] = (
    ("min_sample_size", "min_sample_size", "N", "fewest events a fallback level needs (default 5"),
    (
        "stats_max_age_seconds",
        "stats_max_age",
        "SECONDS",
        "oldest precomputed statistics may be (default 300",
    ),
    (
        "stats_window_days",
        "stats_window_days",
        "DAYS",
        "days of events a prediction stands on, 0 for all (default 14",
    ),
    (
        "rate_limit_per_second",
        "rate_limit_per_second",
        "R",
        "requests per second per API key, sustained (default 50",
    ),
    ("rate_limit_burst", "rate_limit_burst", "N", "requests per API key in a burst (default 100"),
    (
        "max_body_bytes",
        "max_body_bytes",
        "N",
        "largest request body, decompressed (default 1048576",
    ),
    (
        "auth_failure_rate_per_second",
        "auth_failure_rate_per_second",
        "R",
        "failed authentications per second per client address (default 1",
    ),
    (
        "auth_failure_burst",
        "auth_failure_burst",
        "N",
        "failed authentications per client address in a burst (default 20",
    ),
    (
        "retention_days",
        "retention_days",
        "N",
        "delete events older than N days, in the background; 0 keeps them forever (default 0",
    ),
)


def _add_limit_flags(serve: argparse.ArgumentParser) -> None:
    for name, dest, metavar, text in _LIMIT_FLAGS:
        kind = (
            float if isinstance(ServerSettings.__dataclass_fields__[name].default, float) else int
        )
        serve.add_argument(
            "--" + dest.replace("_", "-"),
            metavar=metavar,
            type=_bounded(kind, *LIMITS[name]),
            help=f"{text}, ${ENV_SETTINGS[name]})",
        )


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """Settings from the environment (`settings_from_env`), overridden by the flags given."""
    settings = settings_from_env()
    if args.database:
        settings.database_url = args.database
    if getattr(args, "trusted_proxy", None):
        settings.trusted_proxies = ",".join(args.trusted_proxy)
    else:
        try:  # here, not in each worker process: a bad value stops the command at once
            parse_trusted_proxies(settings.trusted_proxies)
        except ValueError as exc:
            raise ValueError(f"{ENV_SETTINGS['trusted_proxies']}: {exc}") from None
    token_file = getattr(args, "metrics_token_file", None)
    if token_file:
        settings.metrics_token = _read_token(token_file)
    for name, dest, *_ in _LIMIT_FLAGS:
        value = getattr(args, dest, None)
        if value is not None:
            setattr(settings, name, value)
    # The parser bounds the flags with the same LIMITS, but a rate's low is exclusive (0
    # would refuse everything) and a Namespace may be built by hand.
    given = [
        (name, dest) for name, dest, *_ in _LIMIT_FLAGS if getattr(args, dest, None) is not None
    ]
    settings.validate({name: "--" + dest.replace("_", "-") for name, dest in given})
    return settings


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _reachable(url: str) -> Storage:
    """The storage at `url`, opened and pinged, or StorageError naming the (redacted) URL."""
    # One clear line, not the pool's raw warning per reconnection attempt: a command has no
    # log configured yet, so Python's last-resort handler would print each of them.
    psycopg_logger = logging.getLogger("psycopg")
    psycopg_logger.addHandler(logging.NullHandler())
    psycopg_logger.propagate = False
    storage = open_storage(url)
    try:
        # A ping fails within seconds where a migration would wait out the pool's timeout.
        if not storage.ping():
            raise StorageError(f"the database at {redact_url(url)} cannot be reached")
    except BaseException:
        storage.close()
        raise
    return storage


def _open(args: argparse.Namespace) -> Storage:
    storage = _reachable(settings_from_args(args).database_url)
    try:
        storage.migrate()
    except BaseException:
        storage.close()
        raise
    return storage


def uvicorn_options(
    args: argparse.Namespace, settings: ServerSettings
) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """What `serve` hands to `uvicorn.run`: (app or import string, keyword arguments, and the
    environment variables worker processes need). Reads the environment, no other I/O."""
    process = _process(args)
    options: dict[str, Any] = {
        "host": process.host,
        "port": process.port,
        "log_config": None,
        "log_level": process.log_level,
        "access_log": False,  # ours is structured (logging_config.py)
        "timeout_graceful_shutdown": process.graceful_timeout,
        "proxy_headers": False,  # the app decides whom to believe (proxies.py)
        # uvicorn's h11 protocol plus request deadlines and a connection cap (guard.py).
        "http": "mosaicstack_telemetry_server.guard:GuardedH11Protocol",
    }
    if process.workers == 1:
        from mosaicstack_telemetry_server.app import create_app

        return create_app(settings), options, {}
    # Each worker process builds its own app from the environment: stateless processes
    # sharing the database.
    environment = {**settings_to_env(settings), ENV_LOG_LEVEL: process.log_level}
    options.update(factory=True, workers=process.workers)
    return "mosaicstack_telemetry_server.runner:app_from_env", options, environment


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mosaicstack_telemetry_server.logging_config import configure_logging
    from mosaicstack_telemetry_server.metrics import multiprocess_folder

    settings = settings_from_args(args)
    process = _process(args)
    guard = _guard_settings(args)
    if args.print_config:
        print(json.dumps(effective_config(process, settings, guard), indent=2))
        return 0
    # A database that cannot be reached at start is one clear line and exit 1, before any
    # worker starts (a server already running rides out an outage: runtime.py).
    _reachable(settings.database_url).close()
    # Through the environment, so that every worker process applies the same limits.
    os.environ.update(guard)
    configure_logging(process.log_level)
    address = f"http://{process.host}:{process.port}"
    _err(f"serving {redact_url(settings.database_url)} on {address}")
    app, options, environment = uvicorn_options(args, settings)
    os.environ.update(environment)
    with multiprocess_folder(process.workers):
        uvicorn.run(app, **options)
    return 0


def _process(args: argparse.Namespace) -> ProcessSettings:
    return process_settings(
        {name: getattr(args, name, None) for name in ProcessSettings.model_fields}
    )


def _read_token(path: str) -> str:
    """The token in the file at `path` (surrounding whitespace removed)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"--metrics-token-file: cannot read {path}: {exc.strerror}") from None
    token = raw.decode("utf-8", errors="replace").strip()
    if len(raw) > _MAX_TOKEN_BYTES or not token or not token.isprintable():
        raise ValueError(
            f"--metrics-token-file: {path} must hold one printable token of at most "
            f"{_MAX_TOKEN_BYTES} bytes"
        )
    return token


def effective_config(
    process: ProcessSettings, settings: ServerSettings, guard: dict[str, str]
) -> dict[str, Any]:
    """Every `serve` setting's effective value, by setting name; secrets masked."""
    from mosaicstack_telemetry_server.guard import ENV_GUARD, GuardSettings

    guard_settings = GuardSettings.from_env(guard)
    config: dict[str, Any] = process.model_dump()
    config.update(dataclasses.asdict(settings))
    config.update({name: getattr(guard_settings, name) for name in ENV_GUARD})
    config["database_url"] = redact_url(settings.database_url)
    config["metrics_token"] = "***" if settings.metrics_token else ""
    return config


def _guard_settings(args: argparse.Namespace) -> dict[str, str]:
    """The guard's settings (environment, overridden by the flags given), as variables."""
    from mosaicstack_telemetry_server.guard import ENV_GUARD, GuardSettings

    settings = GuardSettings.from_env()
    flags = {name: getattr(args, name) for name in ENV_GUARD if getattr(args, name) is not None}
    return dataclasses.replace(settings, **flags).to_env()


def _keys_create(args: argparse.Namespace) -> int:
    storage = _open(args)
    try:
        key, record = issue_api_key(storage, args.instance_id, args.label, admin=args.admin)
    finally:
        storage.close()
    owner = (
        ", an admin key (reads every instance's usage, cannot submit events)"
        if record.is_admin
        else f" for instance {record.instance_id}"
    )
    _err(
        f"created {record.key_id}{owner}; "
        "the key is printed once, below, and cannot be shown again:"
    )
    print(key, flush=True)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    storage = _open(args)
    try:
        records = storage.list_api_keys()
    finally:
        storage.close()
    rows = [
        {
            "key_id": record.key_id,
            "role": record.role,
            "instance_id": None if record.instance_id is None else str(record.instance_id),
            "label": record.label,
            "created": record.created_at.isoformat(timespec="seconds"),
            "revoked": record.revoked_at.isoformat(timespec="seconds")
            if record.revoked_at
            else None,
        }
        for record in records
    ]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    header = ("KEY_ID", "INSTANCE_ID", "ROLE", "CREATED", "REVOKED", "LABEL")
    table: list[tuple[str, ...]] = [header]
    table += [
        (
            r["key_id"] or "",
            r["instance_id"] or "-",
            r["role"] or "",
            r["created"] or "",
            r["revoked"] or "-",
            r["label"] or "",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        print("  ".join([*cells, line[-1]]).rstrip())
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    storage = _open(args)
    try:
        revoked = storage.revoke_api_key(args.key_id)
    finally:
        storage.close()
    if not revoked:
        _err(f"no active key with id {args.key_id!r}")
        return 1
    _err(f"revoked {args.key_id} (running servers stop accepting it within seconds)")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    storage = _open(args)
    try:
        _err(f"schema version {storage.schema_version()}")
    finally:
        storage.close()
    return 0


def _prune_day(text: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    # A typo in the year must not wipe the database: tomorrow already deletes every event.
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    if day > tomorrow:
        raise argparse.ArgumentTypeError(f"{day} is after tomorrow ({tomorrow}, UTC)")
    return day


def _prune(args: argparse.Namespace) -> int:
    from mosaicstack_telemetry_server.retention import prune

    storage = _open(args)
    try:
        count = storage.count_prunable(args.before)
        if args.dry_run:
            span = f" ({count.first_day} to {count.last_day})" if count.events else ""
            print(
                f"would delete {count.events} events on {count.days} UTC days{span}, "
                f"those stamped before {args.before}T00:00Z; nothing changed (dry run)"
            )
            return 0
        report = prune(storage, args.before)
    finally:
        storage.close()
    print(
        f"deleted {report.events} events on {count.days} UTC days before {args.before}, "
        f"{report.rollup_rows} usage rollup rows and {report.buckets} prediction buckets, "
        f"in {report.transactions} transactions"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except ValueError as exc:  # settings from the environment, database URLs
        _err(f"mosaic-telemetry: error: {exc}")
        return 2
    except StorageError as exc:
        _err(f"mosaic-telemetry: database error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
