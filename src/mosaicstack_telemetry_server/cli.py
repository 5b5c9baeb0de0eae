"""`mosaic-telemetry`: serve the API, manage API keys, migrate, run the demo.

Exit codes: 0 success, 1 failure (e.g. database unreachable), 2 invalid arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from mosaicstack_telemetry_server import __version__, reporting
from mosaicstack_telemetry_server.auth import MAX_LABEL_CHARS, issue_api_key
from mosaicstack_telemetry_server.serve_command import (
    add_serve_arguments,
    database_help,
    effective_config,
    run_serve,
    settings_from_args,
    uvicorn_options,
)
from mosaicstack_telemetry_server.storage import Storage, StorageError, open_storage, redact_url

__all__ = [
    "build_parser",
    "effective_config",
    "main",
    "register",
    "settings_from_args",
    "uvicorn_options",
]


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


def _add_database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        help=database_help(),
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
    add_serve_arguments(serve)
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
    from mosaicstack_telemetry_server.budgets import cli as budgets_cli

    budgets_cli.register(commands)


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


def _serve(args: argparse.Namespace) -> int:
    return run_serve(args, _reachable)


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
