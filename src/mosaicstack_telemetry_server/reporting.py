"""`mosaic-telemetry report` and `mosaic-telemetry export`: what was spent, from a terminal.

`report` prints a table of tasks, tokens and spend with totals (the way `ccusage daily` shows
Claude Code spend), read from a server's `GET /v1/usage` with an API key, or straight from the
database with `--database`. A model no price was found for is written "unpriced", never $0.00
(the rule of `unpriced.py`): the range is read a second time by model and provider to tell
which. `export` writes every stored event as CSV or JSON lines, a page at a time (keyset
pagination: constant memory at any table size), with a progress bar on a terminal.

The API key is read from `MOSAIC_TELEMETRY_API_KEY` or, with `--api-key-stdin`, from standard
input: never from a flag, whose value would show in `ps` and in shell history.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any
from uuid import UUID

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server.storage import Storage, StorageError, open_storage
from mosaicstack_telemetry_server.unpriced import cost_text, unpriced_tasks
from mosaicstack_telemetry_server.usage import (
    DEFAULT_SPAN,
    UsageReport,
    UsageTotals,
    parse_time,
    query_usage,
)

__all__ = [
    "EXPORT_PAGE",
    "REPORT_BY",
    "UnpricedUsage",
    "export_rows",
    "register",
    "render_report",
    "unpriced_usage",
]

REPORT_BY = ("day", "week", "month", "model", "task_type", "harness", "project", "branch", "user")
# The row of events without the attribution grouped by (1.0 events, JSON null in the API).
_NO_VALUE = "(none)"
# Events read per page by `export`: memory stays bounded whatever the table's size.
EXPORT_PAGE = 1000
_ENV_SERVER = "MOSAIC_TELEMETRY_SERVER_URL"
_ENV_KEY = "MOSAIC_TELEMETRY_API_KEY"
_TIMEOUT = 60.0
# Every instant a stored event can have (export without --from/--to).
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or a date-time with an offset ({exc})"
        ) from None


def _uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid UUID") from None


def _add_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="start",
        type=_time,
        metavar="WHEN",
        help="ISO date or date-time with offset, inclusive",
    )
    parser.add_argument(
        "--to",
        dest="end",
        type=_time,
        metavar="WHEN",
        help="ISO date or date-time with offset, exclusive (default: now)",
    )
    parser.add_argument(
        "--database", metavar="URL", help="read this database directly instead of a server's API"
    )
    parser.add_argument(
        "--instance-id",
        type=_uuid,
        metavar="UUID",
        help="only this instance (with --database; a server scopes by key)",
    )


def register(commands: Any) -> None:
    """Add the `report` and `export` subcommands to the CLI's subparsers."""
    report = commands.add_parser("report", help="a table of tasks, tokens and spend, with totals")
    _add_source(report)
    report.add_argument("--by", choices=REPORT_BY, default="day", help="one row per (default day)")
    report.add_argument(
        "--server",
        metavar="URL",
        help=f"read GET /v1/usage of this server (default ${_ENV_SERVER}); the "
        f"key comes from ${_ENV_KEY} or --api-key-stdin",
    )
    report.add_argument(
        "--api-key-stdin",
        action="store_true",
        help="read the API key from the first line of standard input",
    )
    report.add_argument("--json", action="store_true", help="print the usage JSON instead")
    report.set_defaults(handler=run_report)
    export = commands.add_parser("export", help="every stored event as CSV or JSON lines")
    _add_source(export)
    export.add_argument("--format", choices=("csv", "jsonl"), required=True)
    export.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    export.set_defaults(handler=run_export)


def _open(database: str | None) -> Storage:
    from mosaicstack_telemetry_server.runner import settings_from_env

    settings = settings_from_env()
    storage = open_storage(database or settings.database_url)
    try:
        if not storage.ping():
            raise StorageError("the database cannot be reached")
        storage.migrate()
    except BaseException:
        storage.close()
        raise
    return storage


def _range(args: argparse.Namespace) -> tuple[datetime, datetime]:
    end = args.end or datetime.now(UTC)
    start = args.start or end - DEFAULT_SPAN
    if start >= end:
        raise ValueError("--from must be before --to")
    return start, end


def run_report(args: argparse.Namespace) -> int:
    """The `report` subcommand: exit 0, or 1 when the server or database refuses."""
    start, end = _range(args)
    reports = _read_reports(args, start, end, [[args.by], _detail(args.by)])
    if reports is None:
        return 1
    report, detailed = reports
    unpriced = unpriced_usage(detailed, args.by)
    if args.json:
        print(json.dumps(_with_unpriced(report, unpriced)))
    else:
        render_report(report, sys.stdout, unpriced)
    return 0


def _read_reports(
    args: argparse.Namespace, start: datetime, end: datetime, groupings: list[list[str]]
) -> list[UsageReport] | None:
    """The usage of the range by each grouping, from the server or the database (None: the
    server refused, and said so)."""
    server = args.server or (None if args.database else os.environ.get(_ENV_SERVER))
    if server:
        key = _api_key(args)  # read once: standard input holds it for the first read only
        if key is None:
            print(f"report: no API key: set ${_ENV_KEY} or pass --api-key-stdin", file=sys.stderr)
            return None
        reports = []
        for group_by in groupings:
            report = _report_from_api(server, key, args, start, end, group_by)
            if report is None:
                return None
            reports.append(report)
        return reports
    storage = _open(args.database)
    try:
        return [
            query_usage(
                storage, instance_id=args.instance_id, start=start, end=end, group_by=group_by
            )
            for group_by in groupings
        ]
    finally:
        storage.close()


def _detail(by: str) -> list[str]:
    """The grouping that tells unpriced usage apart: `by`, then model and provider."""
    return list(dict.fromkeys([by, "model", "provider"]))


@dataclass
class UnpricedUsage:
    """The tasks left out of a report's costs: per row (by its key value), in all, and per
    (model, provider)."""

    by_row: Counter[str | None] = field(default_factory=Counter)
    total: int = 0
    models: Counter[tuple[str, str]] = field(default_factory=Counter)


def unpriced_usage(detailed: UsageReport, by: str) -> UnpricedUsage:
    """The unpriced tasks of a report by `by`, from the same range grouped by `by`, model and
    provider (`_detail`): the rule of `unpriced.py` applied to each (model, provider) row."""
    found = UnpricedUsage()
    for group in detailed.groups:
        model, provider = str(group.key["model"]), str(group.key["provider"])
        tasks = unpriced_tasks(
            provider=provider,
            model=model,
            tasks=group.tasks,
            tokens=group.input_tokens + group.output_tokens,
            cost_usd_micros=group.cost_usd_micros,
        )
        if tasks:
            found.by_row[group.key[by]] += tasks
            found.total += tasks
            found.models[model, provider] += tasks
    return found


def _with_unpriced(report: UsageReport, unpriced: UnpricedUsage) -> dict[str, Any]:
    """The usage JSON, each group and the totals with `unpriced_tasks` (left out of their
    `cost_usd_micros`), and the models behind them in `unpriced_models`."""
    body: dict[str, Any] = report.model_dump(mode="json", by_alias=True)
    name = report.group_by[0]
    for group in body["groups"]:
        group["unpriced_tasks"] = unpriced.by_row[group["key"][name]]
    body["totals"]["unpriced_tasks"] = unpriced.total
    body["unpriced_models"] = [
        {"model": model, "provider": provider, "tasks": tasks}
        for (model, provider), tasks in sorted(unpriced.models.items())
    ]
    return body


def _api_key(args: argparse.Namespace) -> str | None:
    if args.api_key_stdin:
        return sys.stdin.readline().strip() or None
    return os.environ.get(_ENV_KEY) or None


def _report_from_api(
    server: str,
    key: str,
    args: argparse.Namespace,
    start: datetime,
    end: datetime,
    group_by: Sequence[str],
) -> UsageReport | None:
    import httpx

    params = {"from": start.isoformat(), "to": end.isoformat(), "group_by": ",".join(group_by)}
    if args.instance_id is not None:
        params["instance_id"] = str(args.instance_id)
    try:
        response = httpx.get(
            server.rstrip("/") + "/v1/usage",
            params=params,
            headers={"Authorization": f"Bearer {key}"},
            timeout=_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        print(f"report: cannot reach {server}: {type(exc).__name__}", file=sys.stderr)
        return None
    if response.status_code != 200:
        print(
            f"report: the server answered {response.status_code}: {_message(response)}",
            file=sys.stderr,
        )
        return None
    try:
        return UsageReport.model_validate_json(response.content)
    except ValueError:  # pydantic's ValidationError included: not a usage answer
        print(f"report: {server} did not answer with a usage report", file=sys.stderr)
        return None


def _message(response: Any) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return "no error body"


def _usd(micros: int) -> str:
    return f"${micros / 1_000_000:,.2f}"


def _cells(sums: UsageTotals, unpriced: int) -> list[str]:
    return [
        f"{sums.tasks:,}",
        f"{sums.input_tokens:,}",
        f"{sums.output_tokens:,}",
        f"{sums.input_tokens + sums.output_tokens:,}",
        cost_text(sums.cost_usd_micros, unpriced, _usd),
        f"{sums.success_rate:.0%}",
        f"{sums.gate_pass_rate:.0%}",
    ]


def render_report(report: UsageReport, out: IO[str], unpriced: UnpricedUsage | None = None) -> None:
    """Print a usage report as a table with a totals row (rich; plain text when piped), and
    a line per unpriced model (its tasks are left out of the costs)."""
    from rich.console import Console
    from rich.table import Table

    unpriced = unpriced or UnpricedUsage()
    name = report.group_by[0] if report.group_by else "range"
    span = f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC"
    table = Table(title=f"Usage by {name.replace('_', ' ')}, {span}", title_justify="left")
    table.add_column(name.replace("_", " ").capitalize())
    for column in (
        "Tasks",
        "Input",
        "Output",
        "Total tokens",
        "Cost (USD)",
        "Success",
        "Gates passed",
    ):
        table.add_column(column, justify="right")
    for group in report.groups:
        value = group.key.get(name, "")
        row = _NO_VALUE if value is None else value
        table.add_row(row, *_cells(group, unpriced.by_row[value]))
    table.add_section()
    table.add_row("Total", *_cells(report.totals, unpriced.total), style="bold")
    console = Console(file=out, width=None if out.isatty() else 120)
    console.print(table)
    for (model, provider), tasks in sorted(unpriced.models.items()):
        console.print(
            f"unpriced: {model} ({provider}), {tasks:,} task{'s' if tasks != 1 else ''} "
            "with tokens and no known price, left out of the costs",
            markup=False,
            highlight=False,
        )


def export_rows(
    storage: Storage,
    *,
    instance_id: UUID | None,
    start: datetime | None,
    end: datetime | None,
    page: int = EXPORT_PAGE,
) -> Iterator[TaskCompletionEvent]:
    """Every stored event selected, in storage order, read `page` at a time."""
    after = 0
    while True:
        rows = storage.export_events(
            instance_id=instance_id, start=start, end=end, after=after, limit=page
        )
        for _, event in rows:
            yield event
        if len(rows) < page:
            return
        after = rows[-1][0]


_FIELDS = tuple(TaskCompletionEvent.model_fields)


def _csv_row(event: TaskCompletionEvent) -> list[Any]:
    data = event.model_dump(mode="json")
    # Lists (the quality gates) as JSON text: one cell, read back with json.loads. A 1.0
    # event's dump leaves out the 1.1 fields: their cells stay empty.
    return [
        json.dumps(value) if isinstance(value, list) else value
        for value in (data.get(name) for name in _FIELDS)
    ]


def run_export(args: argparse.Namespace) -> int:
    """The `export` subcommand: exit 0 once every selected event is written."""
    storage = _open(args.database)
    try:
        total = sum(
            row.tasks
            for row in storage.sum_usage(
                instance_id=args.instance_id,
                start=args.start or _EARLIEST,
                end=args.end or _LATEST,
                dimensions=[],
            )
        )
        with ExitStack() as stack:
            out: IO[str] = (
                stack.enter_context(open(args.output, "w", encoding="utf-8", newline=""))
                if args.output
                else sys.stdout
            )
            events = export_rows(
                storage, instance_id=args.instance_id, start=args.start, end=args.end
            )
            # A bar only where a person watches, and never on the terminal the rows go to.
            if sys.stderr.isatty() and (args.output or not sys.stdout.isatty()):
                events = _with_progress(stack, events, total)
            written = _write(out, args.format, events)
    finally:
        storage.close()
    print(f"exported {written:,} events", file=sys.stderr)
    return 0


def _write(out: IO[str], fmt: str, events: Iterator[TaskCompletionEvent]) -> int:
    written = 0
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(_FIELDS)
        for event in events:
            writer.writerow(_csv_row(event))
            written += 1
    else:
        for event in events:
            out.write(event.model_dump_json() + "\n")
            written += 1
    out.flush()
    return written


def _with_progress(
    stack: ExitStack, events: Iterator[TaskCompletionEvent], total: int
) -> Iterator[TaskCompletionEvent]:
    from rich.console import Console
    from rich.progress import Progress

    progress = stack.enter_context(Progress(console=Console(stderr=True), transient=True))
    task = progress.add_task("exporting", total=total)
    for event in events:
        yield event
        progress.advance(task)
