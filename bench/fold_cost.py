"""The background fold's cost per event, for the code in `--src` (default: this checkout).

Issue 18 added project, branch and user to the rollups' dimensions: 130 cuboids where there
were 42. This measures what a fold of one big chunk costs, in process, on a SQLite file or a
PostgreSQL URL: `fold_pending_usage` of 50,000 stored events (read, summed by
`_rollup_fold.fold_rows`, upserted), and `fold_rows` alone on the same rows. The events are the
usage tests' (`generated_events`: 3 instances over 47 days, two in three schema 1.1). Run it
once per checkout, e.g. against the commit before issue 18:

    git archive 62ef88e src | tar -x -C /tmp/before
    python bench/fold_cost.py --src /tmp/before/src
    python bench/fold_cost.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

_TOP = Path(__file__).resolve().parent.parent


def main() -> None:
    """Print the fold's µs per event and rollup rows per event, best and median of runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=_TOP / "src")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", help="a PostgreSQL URL (default: a new SQLite file)")
    args = parser.parse_args()
    sys.path[:0] = [str(args.src), str(_TOP / "tests" / "server")]
    from _usage_helpers import generated_events

    from mosaicstack_telemetry_server.storage import open_storage
    from mosaicstack_telemetry_server.storage._rollup_fold import fold_rows

    events = generated_events(args.events, seed=1)
    folds, sums, rows = [], [], 0
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            url = args.database or f"sqlite:///{folder}/fold.db"
            storage = open_storage(url)
            try:
                storage.migrate()
                for start in range(0, len(events), 10_000):
                    storage.insert_events(events[start : start + 10_000])
                began = time.perf_counter()
                assert storage.fold_pending_usage(limit=args.events) == len(events)
                folds.append(time.perf_counter() - began)
            finally:
                storage.close()
        if args.database:
            break  # a PostgreSQL database is not emptied between runs: one run
    chunk = [_fold_row(event) for event in events]
    for _ in range(args.runs):
        began = time.perf_counter()
        result = fold_rows(chunk)
        sums.append(time.perf_counter() - began)
        rows = len(result.daily)
    per = 1e6 / len(events)
    print(f"src {args.src}: {len(events):,} events in one fold")
    print(
        f"  fold_pending_usage: {min(folds) * per:.1f} µs/event best, "
        f"{statistics.median(folds) * per:.1f} median"
    )
    print(
        f"  fold_rows alone:    {min(sums) * per:.1f} µs/event best; "
        f"{rows / len(events):.2f} usage_daily rows per event"
    )


def _fold_row(event: object) -> tuple[object, ...]:
    """An event as the fold selects it (`FOLD_COLUMNS`, whichever the checkout has)."""
    from mosaicstack_telemetry_server.storage._rollup_fold import FOLD_COLUMNS

    values = {
        "day": event.timestamp.date().isoformat(),  # type: ignore[attr-defined]
        "instance_id": str(event.instance_id),  # type: ignore[attr-defined]
        "user_name": getattr(event, "user", None) or "",
    }
    row = []
    for name in FOLD_COLUMNS:
        value = values[name] if name in values else getattr(event, name, None)
        if name in ("project", "branch"):
            value = value or ""
        elif name.startswith(("cache_", "reasoning_")):
            value = value or 0
        row.append(value.value if hasattr(value, "value") else value)
    return tuple(row)


if __name__ == "__main__":
    main()
