"""Predictions at 10,000,000 events: bulk load, then what the incremental statistics cost.

`python -m bench.predictions_10m [--events N] [--backends sqlite,postgres] [--json PATH]`

The events are generated in bulk, time-ordered over 60 days with a drift (one route uses
2.5x the tokens from day 45), and written straight into the events table: `executemany` in
transactions of 100,000 rows on SQLite, `COPY` on PostgreSQL (HTTP would measure ingestion,
not predictions). Event ids are sequential UUIDs, like time-ordered UUIDv7s, so the unique
index grows at its end. Then `mosaic-telemetry serve --stats-max-age 0` is started on the
loaded database and measured:

- the first `POST /v1/predictions/batch` (100 queries) after the load: it must not wait for
  the 10M events to be summarized (goal < 100 ms);
- the requests answered while they are summarized, one every 0.25 s: median, p95, max;
- how soon an answer has numbers (statistics the drain publishes from what it has folded);
- how long the background drain takes to summarize them all (once, after a bulk load);
- a refresh after 10,000 new events, three times: the request that folds them in and answers
  (goal < 1 s);
- 200 requests of 100 queries, median and p99 (goal p99 < 20 ms);
- the server's peak memory, VmHWM (goal < 500 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import numpy as np

from bench._server import database, free_port
from bench._timing import Result, deadline_wait, percentile
from bench.predictions import _queries
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.storage import open_storage

__all__ = ["run"]

SUITE = "predictions 10M"
DAYS = 60
DRIFT_DAY = 45
_CHUNK = 100_000
# Between two requests timed while the load is summarized.
_DURING_PAUSE = 0.25
# Refreshes after 10,000 new events, each a sample of one request.
_REFRESHES = 3
_DAY0 = np.datetime64("2026-09-01T00:00:00", "us")
_TASK_TYPES = (
    "implementation", "bug_fix", "refactoring", "code_review", "testing", "documentation",
    "planning", "debugging",
)  # fmt: skip
_ROUTES = (
    ("claude-sonnet-4", "anthropic", 1.0),
    ("claude-sonnet-4", "openrouter", 1.1),
    ("claude-opus-4", "anthropic", 1.6),
    ("gpt-4.1", "openai", 0.8),
    ("gpt-4.1", "openrouter", 0.85),
    ("o3", "openai", 1.4),
    ("gemini-2.5-pro", "google", 1.2),
    ("qwen2.5-coder:32b", "ollama", 0.5),
    ("devstral", "mistral", 0.6),
)
_COMPLEXITIES = (("low", 0.5), ("medium", 1.0), ("high", 2.0))
_OUTCOMES = ("success", "failure", "partial", "timeout")
_COLUMNS = (
    "instance_id", "event_id", "schema_version", "timestamp", "task_duration_ms", "task_type",
    "complexity", "harness", "model", "provider", "estimated_input_tokens",
    "estimated_output_tokens", "actual_input_tokens", "actual_output_tokens",
    "estimated_cost_usd_micros", "actual_cost_usd_micros", "quality_gate_passed",
    "quality_gates_run", "quality_gates_failed", "context_compactions", "context_rotations",
    "context_utilization_final", "outcome", "retry_count", "language", "repo_size_category",
)  # fmt: skip
_INSTANCE = str(UUID(int=1, version=4))


def _rows(rng: np.random.Generator, first: int, size: int, total: int) -> list[tuple[Any, ...]]:
    """Events `first`..`first + size` of `total`, spread in time order over DAYS days."""
    index = np.arange(first, first + size)
    micros = (index * (DAYS * 86_400_000_000 // max(total, 1))).astype("timedelta64[us]")
    stamps = np.datetime_as_string(_DAY0 + micros, unit="us")
    day = index * DAYS // max(total, 1)
    task = rng.integers(0, len(_TASK_TYPES), size)
    route = rng.integers(0, len(_ROUTES), size)
    level = rng.integers(0, len(_COMPLEXITIES), size)
    factor = (
        np.array([r[2] for r in _ROUTES])[route] * np.array([c[1] for c in _COMPLEXITIES])[level]
    )
    factor *= np.where((route == 0) & (day >= DRIFT_DAY), 2.5, 1.0)  # the drift
    tokens_in = np.rint(30_000 * (1 + task / 4) * factor * rng.lognormal(0, 0.8, size)).astype(
        np.int64
    )
    tokens_out = np.rint(tokens_in / 6 * rng.lognormal(0, 0.4, size)).astype(np.int64)
    estimate_in = np.where(
        rng.random(size) < 0.5, 0, np.rint(tokens_in * rng.lognormal(0, 0.3, size))
    )
    duration = np.where(rng.random(size) < 0.2, 0, rng.integers(10_000, 3_600_000, size))
    cost = np.where(route == 7, 0, tokens_in * 3 + tokens_out * 15)  # a local model costs 0
    gate = rng.random(size) < 0.75
    outcome = rng.integers(0, len(_OUTCOMES), size)
    columns = [
        [_INSTANCE] * size,
        [f"00000000-0000-4000-8000-{i:012x}" for i in index.tolist()],
        ["1.0"] * size,
        [s + "+00:00" for s in stamps.tolist()],
        duration.tolist(),
        [_TASK_TYPES[t] for t in task.tolist()],
        [_COMPLEXITIES[c][0] for c in level.tolist()],
        ["claude-code"] * size,
        [_ROUTES[r][0] for r in route.tolist()],
        [_ROUTES[r][1] for r in route.tolist()],
        estimate_in.astype(np.int64).tolist(),
        [0] * size,
        tokens_in.tolist(),
        tokens_out.tolist(),
        [0] * size,
        cost.tolist(),
        gate.tolist(),
        ['["build","test"]'] * size,
        ["[]"] * size,
        [0] * size,
        [0] * size,
        [0.5] * size,
        [_OUTCOMES[o] for o in outcome.tolist()],
        [0] * size,
        ["python"] * size,
        [None] * size,
    ]
    return list(zip(*columns, strict=True))


def _load_sqlite(url: str, total: int, first: int = 0) -> float:
    path = url.removeprefix("sqlite:///")
    received = datetime.now(UTC).isoformat(timespec="microseconds")
    insert = (
        f"INSERT INTO events ({', '.join(_COLUMNS)}, received_at) "  # noqa: S608 - constants
        f"VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})"
    )
    rng = np.random.default_rng(first + 7)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -262144")
    started = time.perf_counter()
    for start in range(first, first + total, _CHUNK):
        rows = _rows(rng, start, min(_CHUNK, first + total - start), max(first + total, 1))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, [(*row, received) for row in rows])
        conn.executemany(_BUMP_ONE, [(t,) for t in _TASK_TYPES])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


# Every task type's data version moves, as insert_events would have done it.
_BUMP_ONE = (
    "INSERT INTO partition_versions (task_type, version) VALUES (?, 1) "
    "ON CONFLICT (task_type) DO UPDATE SET version = partition_versions.version + 1"
)
_BUMP_EIGHT = (
    "INSERT INTO partition_versions (task_type, version) "
    "SELECT unnest(%s::text[]), 1 "
    "ON CONFLICT (task_type) DO UPDATE SET version = partition_versions.version + 1"
)


def _load_postgres(url: str, total: int, first: int = 0) -> float:
    import psycopg

    rng = np.random.default_rng(first + 7)
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        for start in range(first, first + total, _CHUNK):
            rows = _rows(rng, start, min(_CHUNK, first + total - start), max(first + total, 1))
            with conn.cursor() as cur:
                with cur.copy(f"COPY events ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute(_BUMP_EIGHT, (list(_TASK_TYPES),))
            conn.commit()
    return time.perf_counter() - started


@contextmanager
def _server(url: str, max_age: str | None = "0") -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cli = str(Path(sys.executable).with_name("mosaic-telemetry"))
    command = [cli, "serve", "--database", url, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1"] + ([] if max_age is None else ["--stats-max-age", max_age])
    env = {
        **os.environ,
        "MOSAIC_TELEMETRY_RATE_LIMIT_PER_SECOND": "1000000",
        "MOSAIC_TELEMETRY_RATE_LIMIT_BURST": "1000000",
    }
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)

        def up() -> bool:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"server exited early: {log.read()[-2000:]}")
            try:
                return httpx.get(f"{base}/v1/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        try:
            deadline_wait(up, 60, "the server to answer /v1/health")
            yield base, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _measure(url: str, total: int, backend: str) -> dict[str, Any]:
    storage = open_storage(url)
    storage.migrate()
    key, _ = issue_api_key(storage, UUID(int=1, version=4), label="bench")
    storage.close()
    load = (_load_sqlite if backend == "sqlite" else _load_postgres)(url, total)
    body = {"queries": _queries()}
    headers = {"Authorization": f"Bearer {key}"}
    with (
        _server(url) as (base, process),
        httpx.Client(base_url=base, headers=headers, timeout=600) as http,
    ):

        def ask() -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            answer = http.post("/v1/predictions/batch", json=body)
            elapsed = (time.perf_counter() - started) * 1000
            answer.raise_for_status()
            return elapsed, answer.json()

        first_ms, first = ask()
        behind = "backlog" in (first["results"][0]["metadata"]["fallback_note"] or "")
        started = time.perf_counter()
        during: list[float] = []  # requests answered while the load is being summarized
        numbers_at: list[float] = []  # when an answer first had numbers (partial statistics)

        def caught_up() -> bool:
            elapsed, answer = ask()
            if not numbers_at and any(r["prediction"] for r in answer["results"]):
                numbers_at.append(time.perf_counter() - started)
            if "backlog" not in (answer["results"][0]["metadata"]["fallback_note"] or ""):
                return True
            during.append(elapsed)
            time.sleep(_DURING_PAUSE)  # a trickle of requests, not a flood competing with it
            return False

        deadline_wait(caught_up, 3600, "the summaries to take in the bulk load")
        drain = time.perf_counter() - started
        _, before = ask()
        refreshes, grown = [], []
        for round_ in range(_REFRESHES):  # one request is one sample: take a few
            loaded = total + round_ * 10_000
            (_load_sqlite if backend == "sqlite" else _load_postgres)(url, 10_000, first=loaded)
            elapsed, refreshed = ask()
            refreshes.append(elapsed)
            # It must answer with the new events, not from the statistics before them.
            grown.append(_events_answered(refreshed) - _events_answered(before))
            before = refreshed
        sizes = {r["metadata"]["sample_size"] for r in refreshed["results"]}
        at_zero = [ask()[0] for _ in range(50)]
        peak = _peak_mb(process.pid)
    # Latency at the default maximum age (300 s), as the 1M-event suite measures it.
    with (
        _server(url, max_age=None) as (base, process),
        httpx.Client(base_url=base, headers=headers, timeout=600) as http,
    ):
        warm = []
        load_before = os.getloadavg()[0]
        for _ in range(201):
            started = time.perf_counter()
            http.post("/v1/predictions/batch", json=body).raise_for_status()
            warm.append((time.perf_counter() - started) * 1000)
        warm = warm[1:]  # the first one re-stamps what the first server left
        load_after = os.getloadavg()[0]
        peak = max(peak, _peak_mb(process.pid))
    return {
        "p50_zero_ms": statistics.median(at_zero),
        "p99_zero_ms": percentile(at_zero, 99),
        "events": total,
        "load_seconds": load,
        "load_rate": total / load,
        "first_request_ms": first_ms,
        "first_request_was_behind": float(behind),
        "during_median_ms": statistics.median(during) if during else float("nan"),
        "during_p95_ms": percentile(during, 95) if during else float("nan"),
        "during_max_ms": max(during, default=float("nan")),
        "during_requests": float(len(during)),
        "drain_seconds": drain,
        "first_numbers_seconds": numbers_at[0] if numbers_at else float("nan"),
        "refresh_10k_ms": statistics.median(refreshes),
        "refresh_10k_all": " / ".join(f"{ms:.0f}" for ms in refreshes),
        "refresh_new_events": float(min(grown)),
        "load_average": max(load_before, load_after),
        "largest_sample_size": float(max(sizes)),
        "p50_ms": statistics.median(warm),
        "p99_ms": percentile(warm, 99),
        "peak_mb": peak,
    }


def _events_answered(answer: dict[str, Any]) -> int:
    """Events behind an answer's task-type-wide (level 3) groups, each counted once."""
    sizes = {}
    for result in answer["results"]:
        matched = result["metadata"]["dimensions_matched"] or {}
        if result["metadata"]["fallback_level"] == 3:
            sizes[matched.get("task_type")] = result["metadata"]["sample_size"]
    return sum(sizes.values())


def run(events: int, backends: list[str]) -> list[Result]:
    """Load `events` per backend and measure; one row per figure."""
    results = []
    for backend in backends:
        with database(backend) as url:
            m = _measure(url, events, backend)
        name = f"{backend}, {events:,} events"
        results += [
            Result(
                SUITE,
                f"bulk load, {name}",
                m["load_rate"],
                "events/s",
                f"{m['load_seconds']:.0f} s",
            ),
            Result(
                SUITE,
                f"first request after the load, {name}",
                m["first_request_ms"],
                "ms",
                "answered from what exists" if m["first_request_was_behind"] else "caught up",
            ),
            Result(
                SUITE,
                f"requests while the load is summarized, median, {name}",
                m["during_median_ms"],
                "ms",
                f"p95 {m['during_p95_ms']:.1f} ms, max {m['during_max_ms']:.1f} ms, "
                f"{m['during_requests']:.0f} requests {_DURING_PAUSE} s apart",
            ),
            Result(
                SUITE,
                f"first answer with numbers after the load, {name}",
                m["first_numbers_seconds"],
                "s",
                "statistics published by the drain from what it has folded so far",
            ),
            Result(
                SUITE, f"background summary of the load, {name}", m["drain_seconds"], "s", "once"
            ),
            Result(
                SUITE,
                f"refresh after 10,000 new events, median of {_REFRESHES}, {name}",
                m["refresh_10k_ms"],
                "ms",
                f"{m['refresh_10k_all']} ms; each one request: fold 10,000 events, rebuild, "
                f"answer; at least {m['refresh_new_events']:,.0f} more events behind its "
                "level-3 answers",
            ),
            Result(SUITE, f"100 queries, median, {name}", m["p50_ms"], "ms", "200 requests"),
            Result(
                SUITE,
                f"100 queries, p99, {name}",
                m["p99_ms"],
                "ms",
                f"load average {m['load_average']:.1f} on {os.cpu_count()} cores",
            ),
            Result(
                SUITE,
                f"100 queries at --stats-max-age 0, median / p99, {name}",
                m["p50_zero_ms"],
                "ms",
                f"p99 {m['p99_zero_ms']:.1f} ms; 50 requests, each re-stamps",
            ),
            Result(SUITE, f"server peak memory, {name}", m["peak_mb"], "MB", "VmHWM"),
        ]
    return results


def main() -> None:
    """Run from the command line and print the rows (and optionally save them as JSON)."""
    parser = argparse.ArgumentParser(prog="python -m bench.predictions_10m")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for backend in [b for b in args.backends.split(",") if b]:
        rows = run(args.events, [backend])
        for result in rows:  # as each backend finishes: a long run must not lose the first
            print(f"{result.name}: {result.value:,.2f} {result.unit}  {result.note}", flush=True)
        results += rows
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
