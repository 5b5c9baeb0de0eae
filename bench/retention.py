"""Retention: how long a prune's chunks hold the database, and what ingestion sees meanwhile.

`python -m bench.retention [--events N] [--only sqlite,postgres]`: loads N events spread over
120 days (the usage suite's generator), folds them into the prediction buckets, then prunes the
older half with the default chunks (5,000 rows per transaction) while a thread inserts batches
of 100 new events, as `POST /v1/events/batch` does. The same thread's insert latency with no
prune running is the baseline; both are reported side by side, as a ratio.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from bench._server import database
from bench._timing import Result, percentile
from bench.usage import _chunk, _load
from mosaicstack_telemetry_server.predictions.service import PredictionService
from mosaicstack_telemetry_server.retention import cutoff_day, prune
from mosaicstack_telemetry_server.storage import Storage, open_storage

__all__ = ["run"]

SUITE = "retention"
_KEEP_DAYS = 60  # of the 120: about half the events go
_BASELINE_SECONDS = 5.0


def _ingest(storage: Storage, stop: threading.Event, latencies: list[float]) -> None:
    rng = np.random.default_rng(5)
    now = datetime.now(UTC)
    while not stop.is_set():
        events = _chunk(rng, now, 100, (0, 0.01))
        started = time.perf_counter()
        storage.insert_events(events)
        latencies.append(time.perf_counter() - started)


def _with_ingestion(storage: Storage, work: Callable[[], None] | None) -> list[float]:
    """Insert latencies while `work()` runs (or for the baseline's seconds when it is None)."""
    stop = threading.Event()
    latencies: list[float] = []
    thread = threading.Thread(target=_ingest, args=(storage, stop, latencies))
    thread.start()
    try:
        if work is not None:
            work()
        else:
            time.sleep(_BASELINE_SECONDS)
    finally:
        stop.set()
        thread.join()
    return latencies


def _backend(backend: str, count: int) -> list[Result]:
    with database(backend) as url:
        storage = open_storage(url)
        try:
            storage.migrate()
            _load(storage, count, datetime.now(UTC))
            PredictionService(storage, min_sample_size=5, stats_max_age_seconds=0).refresh_stale()
            baseline = _with_ingestion(storage, None)
            chunks: list[float] = []

            def pause(seconds: float) -> bool:
                chunks.append(seconds)  # the pause is as long as the chunk took
                time.sleep(seconds)
                return False

            report = None
            started = time.perf_counter()

            def work() -> None:
                nonlocal report
                report = prune(storage, cutoff_day(datetime.now(UTC), _KEEP_DAYS), pause=pause)

            during = _with_ingestion(storage, work)
            elapsed = time.perf_counter() - started
        finally:
            storage.close()
    assert report is not None
    note = f"{count:,} events, {report.events:,} pruned in {report.transactions} transactions"
    p99_base, p99_during = percentile(baseline, 99) * 1000, percentile(during, 99) * 1000
    return [
        Result(
            SUITE,
            f"{backend}: prune, events deleted per second",
            report.events / elapsed,
            "events/s",
            note,
        ),
        Result(SUITE, f"{backend}: one full chunk, median", percentile(chunks, 50) * 1000, "ms"),
        Result(SUITE, f"{backend}: one full chunk, max", max(chunks) * 1000, "ms"),
        Result(SUITE, f"{backend}: insert of 100, p99 without prune", p99_base, "ms"),
        Result(
            SUITE,
            f"{backend}: insert of 100, p99 during prune",
            p99_during,
            "ms",
            f"{p99_during / p99_base:.1f}x the baseline",
        ),
        Result(SUITE, f"{backend}: insert of 100, max during prune", max(during) * 1000, "ms"),
    ]


def run(count: int, backends: list[str]) -> list[Result]:
    """Run the suite on each backend."""
    return [result for backend in backends for result in _backend(backend, count)]


def main() -> None:
    """Print one line per measure."""
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--only", default="sqlite,postgres")
    args = parser.parse_args()
    for result in run(args.events, [name.strip() for name in args.only.split(",")]):
        print(f"{result.name:50} {result.value:12,.1f} {result.unit:9} {result.note}")


if __name__ == "__main__":
    main()
