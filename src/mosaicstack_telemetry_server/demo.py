"""`mosaic-telemetry demo`: the whole loop on one machine, in well under a minute.

A server on a free loopback port over a throwaway SQLite file; one API key per simulated
instance; the real SDK tracking simulated agent tasks through its background submitter; then
predictions for a handful of queries, shown as a table. `--keep` / `--database` leave the data
behind for `mosaic-telemetry serve`.
"""

from __future__ import annotations

import argparse
import random
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mosaicstack_telemetry import PredictionResponse, TelemetryClient, TelemetryConfig
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.demo_data import (
    DEMO_QUERIES,
    DemoQuery,
    random_uuid,
    simulate_events,
)
from mosaicstack_telemetry_server.runner import serve_in_thread
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import Storage, open_storage

__all__ = ["add_demo_arguments", "run_demo"]

DEFAULT_EVENTS = 2000
DEFAULT_INSTANCES = 3
DEFAULT_SEED = 42
MAX_EVENTS = 100_000
MAX_INSTANCES = 20
# How long the submitters may take to deliver everything before the demo gives up waiting.
DELIVERY_TIMEOUT_SECONDS = 45.0
_POLL_SECONDS = 0.05


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to its subcommand parser."""
    parser.add_argument(
        "--events",
        type=_bounded_int(1, MAX_EVENTS),
        default=DEFAULT_EVENTS,
        help=f"simulated agent tasks to track (default {DEFAULT_EVENTS}, at most {MAX_EVENTS})",
    )
    parser.add_argument(
        "--instances",
        type=_bounded_int(1, MAX_INSTANCES),
        default=DEFAULT_INSTANCES,
        help=f"simulated Mosaic Stack instances, one API key each (default {DEFAULT_INSTANCES})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"random seed: the same seed simulates the same tasks (default {DEFAULT_SEED})",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the throwaway SQLite file and print how to serve it",
    )
    parser.add_argument(
        "--database",
        metavar="PATH_OR_URL",
        default=None,
        help="use this SQLite file (or database URL) instead of a throwaway one; it is kept",
    )


def _database_url(database: str) -> str:
    if "://" in database:
        return database
    return f"sqlite:///{Path(database).expanduser().resolve()}"


@contextmanager
def _demo_database(database: str | None, keep: bool) -> Iterator[tuple[str, bool]]:
    """Yield (database URL, whether it outlives the demo)."""
    if database is not None:
        yield _database_url(database), True
        return
    if keep:
        directory = tempfile.mkdtemp(prefix="mosaic-telemetry-demo-")
        yield _database_url(str(Path(directory) / "telemetry.db")), True
        return
    with tempfile.TemporaryDirectory(prefix="mosaic-telemetry-demo-") as directory:
        yield _database_url(str(Path(directory) / "telemetry.db")), False


@dataclass
class _Instance:
    instance_id: UUID
    client: TelemetryClient


def _start_clients(
    storage: Storage, base_url: str, instance_ids: list[UUID], queue_size: int
) -> list[_Instance]:
    instances = []
    for number, instance_id in enumerate(instance_ids, start=1):
        key, _record = issue_api_key(storage, instance_id, label=f"demo instance {number}")
        config = TelemetryConfig(
            server_url=base_url,
            api_key=key,
            instance_id=str(instance_id),
            # Short enough that delivery is visible while the demo runs.
            submit_interval_seconds=0.25,
            max_queue_size=queue_size,
        )
        client = TelemetryClient(config)
        client.start()
        instances.append(_Instance(instance_id, client))
    return instances


def _track_and_deliver(
    console: Console,
    storage: Storage,
    instances: list[_Instance],
    rng: random.Random,
    events: int,
) -> tuple[float, int]:
    """Track every simulated task, wait for delivery; return (seconds in track(), new rows)."""
    before = storage.count_events()
    tracking_ns = 0
    columns = (
        TextColumn("{task.description:<26}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        tracked = progress.add_task("tracked through the SDK", total=events)
        stored = progress.add_task("stored by the server", total=events)
        ids = [instance.instance_id for instance in instances]
        for index, (which, event) in enumerate(simulate_events(rng, ids, events)):
            started = time.perf_counter_ns()
            instances[which].client.track(event)
            tracking_ns += time.perf_counter_ns() - started
            progress.advance(tracked)
            if index % 50 == 0:
                progress.update(stored, completed=storage.count_events() - before)
        # The submitters deliver in the background; watch the rows arrive.
        deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            progress.update(stored, completed=storage.count_events() - before)
            if all(instance.client.queue_size == 0 for instance in instances):
                break
            time.sleep(_POLL_SECONDS)
        for instance in instances:
            instance.client.stop()  # final flush of whatever is left or in flight
        new_rows = storage.count_events() - before
        progress.update(stored, completed=new_rows)
    return tracking_ns / 1e9, new_rows


def _tokens(low: int, high: int) -> str:
    return f"{_human(low)}-{_human(high)}"


def _human(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M"
    if count >= 10_000:
        return f"{count / 1000:.0f}k"
    if count >= 1000:
        return f"{count / 1000:.1f}k"
    return str(count)


def _duration(milliseconds: int) -> str:
    seconds = round(milliseconds / 1000)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _fallback(level: int) -> str:
    return "none" if level == -1 else str(level)


def _note(demo: DemoQuery, response: PredictionResponse) -> str:
    meta = response.metadata
    if meta.fallback_level == -1:
        return f"no data: {meta.fallback_note or demo.shows}"
    if meta.fallback_level == 0:
        return demo.shows
    return f"fallback level {meta.fallback_level}: {meta.fallback_note or demo.shows}"


def prediction_table(answers: list[tuple[DemoQuery, PredictionResponse]]) -> Table:
    """The predictions as a terminal table, one row per query, notes in the caption."""
    table = Table(
        title="Predictions from the telemetry of all instances",
        title_justify="left",
        caption="\n".join(
            f"{number}. {_note(demo, response)}"
            for number, (demo, response) in enumerate(answers, start=1)
        ),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    # Narrow enough for an 80-column terminal: every cell stacks its values.
    table.add_column("#", justify="right")
    table.add_column("Task, complexity\nmodel\nprovider", overflow="fold")
    table.add_column("Tokens\np10-p90", justify="right", no_wrap=True)
    table.add_column("Median\ncost\ntime", justify="right", no_wrap=True)
    table.add_column("Success\nrate", justify="right", no_wrap=True)
    table.add_column("Confidence\n(samples)", no_wrap=True)
    table.add_column("Fall-\nback\nlevel", justify="right", no_wrap=True)
    for number, (demo, response) in enumerate(answers, start=1):
        query, meta, data = demo.query, response.metadata, response.prediction
        if data is None:
            tokens = cost = success = "-"
        else:
            tokens = (
                f"in {_tokens(data.input_tokens.p10, data.input_tokens.p90)}\n"
                f"out {_tokens(data.output_tokens.p10, data.output_tokens.p90)}"
            )
            cost = (
                f"${data.cost_usd_micros['median'] / 1_000_000:,.2f}\n"
                f"{_duration(data.duration_ms['median'])}"
            )
            success = f"{data.quality.success_rate:.0%}"
        table.add_row(
            str(number),
            f"{query.task_type.value}, {query.complexity.value}\n"
            f"{query.model}\nvia {query.provider.value}",
            tokens,
            cost,
            success,
            f"{meta.confidence}\n({meta.sample_size})",
            _fallback(meta.fallback_level),
        )
    return table


def _commands(database_url: str, instance_id: UUID) -> list[str]:
    """How to serve the kept data and get a key to query it (keys are never printed here)."""
    program = Path(sys.argv[0]).name == "mosaic-telemetry"
    executable = sys.argv[0] if program else "mosaic-telemetry"
    create_key = [executable, "keys", "create", "--database", database_url, "--instance-id"]
    return [
        shlex.join([executable, "serve", "--database", database_url]),
        shlex.join([*create_key, str(instance_id)]),
    ]


def run_demo(args: argparse.Namespace, console: Console | None = None) -> int:
    """Run the demo end to end and print what happened; returns the exit status."""
    console = console if console is not None else Console()
    # A simulation wants reproducible numbers, not secrets.
    rng = random.Random(args.seed)  # noqa: S311  # nosec B311
    started = time.perf_counter()
    with _demo_database(args.database, args.keep) as (database_url, kept):
        storage = open_storage(database_url)
        try:
            storage.migrate()
            instance_ids = [random_uuid(rng) for _ in range(args.instances)]
            # Statistics always fresh, so the predictions reflect this very run.
            settings = ServerSettings(database_url=database_url, stats_max_age_seconds=0)
            with serve_in_thread(settings, "127.0.0.1") as base_url:
                console.print(
                    f"[bold]Server[/] on {base_url}; {args.instances} instances, "
                    f"one API key each; {args.events} simulated agent tasks (seed {args.seed})"
                )
                queue_size = args.events // args.instances + 1
                instances = _start_clients(storage, base_url, instance_ids, queue_size)
                track_seconds, new_rows = _track_and_deliver(
                    console, storage, instances, rng, args.events
                )
                asker = instances[0].client
                queries = [demo.query for demo in DEMO_QUERIES]
                asker.refresh_predictions_sync(queries)
                answers = [asker.get_prediction(query) for query in queries]
            total_rows = storage.count_events()
        finally:
            storage.close()
        console.print(
            f"track(): {track_seconds * 1e6 / args.events:.1f} µs per call on average; "
            f"{new_rows} new rows stored ({total_rows} in the database; an event id already "
            f"stored is accepted but never stored twice)"
        )
        rows = [
            (demo, answer)
            for demo, answer in zip(DEMO_QUERIES, answers, strict=True)
            if answer is not None
        ]
        console.print(prediction_table(rows))
        console.print(f"Done in {time.perf_counter() - started:.1f} s.")
        if kept:
            serve, create_key = _commands(database_url, instance_ids[0])
            console.print("The data is kept. Serve it with:")
            console.print(f"  {serve}", markup=False, soft_wrap=True, highlight=False)
            console.print("and, to query it, create a key for one of the demo instances:")
            console.print(f"  {create_key}", markup=False, soft_wrap=True, highlight=False)
    if len(rows) != len(DEMO_QUERIES):
        console.print("[red]Some predictions could not be fetched from the server.[/]")
        return 1
    return 0
