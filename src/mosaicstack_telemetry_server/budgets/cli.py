"""`mosaic-telemetry budgets set|list|delete`: manage budgets on the database, like `keys`.

`set` validates with the API's own model (`BudgetIn`), so the CLI and `PUT /v1/budgets/{name}`
accept exactly the same budgets; `list` prints each budget's current period with its spend,
what is left and the forecast (the figures of `GET /v1/budgets`). A webhook secret is read
from standard input (`--webhook-secret-stdin`), never from a flag, which `ps` would show.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from mosaicstack_telemetry_server.budgets.alerts import usd
from mosaicstack_telemetry_server.budgets.model import MAX_BUDGETS, NAME_PATTERN, BudgetIn
from mosaicstack_telemetry_server.budgets.periods import PERIODS
from mosaicstack_telemetry_server.budgets.spend import budget_status
from mosaicstack_telemetry_server.storage import Storage, StorageError, open_storage
from mosaicstack_telemetry_server.storage._budgets import BudgetRecord, budgets_of

__all__ = ["register"]


def _name(text: str) -> str:
    if not re.fullmatch(NAME_PATTERN, text):
        raise argparse.ArgumentTypeError("a name is 1 to 64 of A-Z a-z 0-9 _ . -")
    return text


def _usd(text: str) -> int:
    try:
        micros = round(float(text) * 1_000_000)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in USD") from None
    if micros <= 0:
        raise argparse.ArgumentTypeError("the amount must be above 0")
    return micros


def register(commands: Any) -> None:
    """Add `budgets` and its actions to the CLI's subparsers."""
    budgets = commands.add_parser("budgets", help="manage budgets and see their status")
    actions = budgets.add_subparsers(dest="budgets_command", required=True, metavar="ACTION")
    put = actions.add_parser("set", help="create or replace a budget")
    put.add_argument("name", type=_name, metavar="NAME")
    put.add_argument("--usd", type=_usd, required=True, help="the amount per period, in USD")
    put.add_argument("--period", choices=PERIODS, required=True)
    put.add_argument("--instance", metavar="UUID", help="one instance (default: every one)")
    put.add_argument("--project", metavar="P", help="only the events of this project")
    put.add_argument(
        "--thresholds", metavar="LIST", help="alert at these shares, e.g. 0.5,0.8,1 (default)"
    )
    put.add_argument("--webhook-url", metavar="URL", help="POST each alert here (http/https)")
    put.add_argument(
        "--webhook-secret-stdin",
        action="store_true",
        help="read the signing secret from the first line of standard input",
    )
    put.set_defaults(handler=_set)
    listing = actions.add_parser("list", help="each budget's spend, what is left, the forecast")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)
    delete = actions.add_parser("delete", help="delete a budget")
    delete.add_argument("name", type=_name, metavar="NAME")
    delete.set_defaults(handler=_delete)
    for parser in (put, listing, delete):
        parser.add_argument("--database", metavar="URL", help="the database (default: settings)")


def _open(args: argparse.Namespace) -> Storage:
    from mosaicstack_telemetry_server.runner import settings_from_env

    storage = open_storage(args.database or settings_from_env().database_url)
    try:
        if not storage.ping():
            raise StorageError("the database cannot be reached")
        storage.migrate()
    except BaseException:
        storage.close()
        raise
    return storage


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount_usd_micros": args.usd,
        "period": args.period,
        "instance_id": args.instance,
        "project": args.project,
        "webhook_url": args.webhook_url,
    }
    if args.thresholds:
        try:
            body["thresholds"] = [float(part) for part in args.thresholds.split(",")]
        except ValueError:
            raise ValueError("--thresholds takes numbers separated by commas") from None
    if args.webhook_secret_stdin:
        body["webhook_secret"] = sys.stdin.readline().strip() or None
    return body


def _set(args: argparse.Namespace) -> int:
    try:
        budget = BudgetIn.model_validate(_body(args))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(problems) from None
    record = BudgetRecord(
        name=args.name,
        amount_usd_micros=budget.amount_usd_micros,
        period=budget.period,
        instance_id=budget.instance_id,
        project=budget.project,
        thresholds=tuple(budget.thresholds),
        webhook_url=budget.webhook_url,
        webhook_secret=budget.webhook_secret,
        updated_at=datetime.now(UTC),
    )
    storage = _open(args)
    try:
        store = budgets_of(storage)
        names = {existing.name for existing in store.list_budgets()}
        if args.name not in names and len(names) >= MAX_BUDGETS:
            raise ValueError(f"at most {MAX_BUDGETS} budgets")
        store.put_budget(record)
    finally:
        storage.close()
    print(
        f"budget {args.name}: {usd(record.amount_usd_micros)} per {record.period}", file=sys.stderr
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    storage = _open(args)
    now = datetime.now(UTC)
    try:
        statuses = [budget_status(storage, b, now) for b in budgets_of(storage).list_budgets()]
    finally:
        storage.close()
    if args.json:
        for status in statuses:
            print(json.dumps(status.model_dump(mode="json")))
        return 0
    header = ("NAME", "PERIOD", "SCOPE", "AMOUNT", "SPENT", "LEFT", "FORECAST", "UNTIL")
    table: list[tuple[str, ...]] = [header]
    for s in statuses:
        scope = str(s.instance_id) if s.instance_id else "all instances"
        scope += f" / {s.project}" if s.project else ""
        table.append(
            (s.name, s.period, scope, usd(s.amount_usd_micros), usd(s.spent_usd_micros),
             usd(s.left_usd_micros), usd(s.forecast_usd_micros),
             f"{s.period_end:%Y-%m-%d %H:%M}Z")
        )  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _delete(args: argparse.Namespace) -> int:
    storage = _open(args)
    try:
        deleted = budgets_of(storage).delete_budget(args.name)
    finally:
        storage.close()
    if not deleted:
        print(f"no budget named {args.name!r}", file=sys.stderr)
        return 1
    print(f"deleted budget {args.name}", file=sys.stderr)
    return 0
