"""`python -m bench [--quick] [--only track,e2e,predictions] [--json PATH]`: run and report."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench._timing import Result

SUITES = (
    "track",
    "e2e",
    "ingest",
    "predictions",
    "agents_hook",
    "classify",
    "usage",
    "dashboard",
    "otlp",
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller, faster, noisier runs")
    parser.add_argument(
        "--only",
        default=",".join(SUITES),
        help=f"comma-separated suites to run (default: all of {','.join(SUITES)})",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    args.suites = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    return args


def _format(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _table(results: list[Result]) -> Table:
    table = Table(title="mosaicstack-telemetry benchmarks", title_justify="left")
    table.add_column("Suite")
    table.add_column("Measure", overflow="fold")
    table.add_column("Value", justify="right", no_wrap=True)
    table.add_column("Unit", no_wrap=True)
    table.add_column("Note", overflow="fold")
    for result in results:
        table.add_row(result.suite, result.name, _format(result.value), result.unit, result.note)
    return table


def main(argv: list[str] | None = None) -> int:
    """Run the chosen suites and print one table."""
    args = _parse(argv)
    # Piped into a file (as for docs/benchmarks.md), keep rows on one line each.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{'quick' if args.quick else 'full'} run of: {', '.join(args.suites)}"
    )
    results: list[Result] = []
    for name in args.suites:
        started = time.perf_counter()
        with console.status(f"running {name}..."):
            suite = importlib.import_module(f"bench.{name}")
            results += suite.run(args.quick)
        console.print(f"{name}: done in {time.perf_counter() - started:.0f} s")
    console.print(_table(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
