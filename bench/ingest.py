"""Ingestion beside the code before the usage rollups and `main`, side by side (issue 17).

Each code version is checked out at its commit in a temporary git worktree and served by this
Python (`serve_process(source=...)`); this checkout is the third. One round runs every version
on SQLite, then on PostgreSQL, each on a fresh database, with the same load: `_CLIENTS`
threads, one API key (instance) each, posting the demo's events in batches of 100 over real
HTTP, one request in flight per client, bodies encoded beforehand. Rounds alternate the order
of the versions, so a noisy neighbour hurts them alike; the table gives medians.

Measured per run: events/s from the first post to the last answer (every answer must be 200);
the slowest answer; and, where the server has `GET /v1/usage` and admin keys, how late it
counts accepted events: a poller asks every `_POLL_SECONDS` and, for each answer, the oldest
event accepted before the question but not counted gives the lag. Also the fold's backlog (events
stored but not folded into the rollups), read from the database, at its largest during the load
and how long after the load it takes to reach zero.
"""

from __future__ import annotations

import functools
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import httpx

from bench._server import database, serve_process
from bench._timing import Result, deadline_wait
from mosaicstack_telemetry_server.demo_data import random_uuid, simulate_events

__all__ = ["run"]

SUITE = "ingest"
_CLIENTS = 8
_BATCH = 100
_POLL_SECONDS = 0.25
_REPO = Path(__file__).resolve().parent.parent
# (name, commit or None for this checkout)
VERSIONS = (
    ("before the rollups (56127b5)", "56127b5"),
    ("main before the checkpointer (99362c9)", "99362c9"),
    ("this branch", None),
)

# Run by each version's own code: migrate, one key per instance, an admin key if it has them.
_SETUP = """
import json, sys, uuid
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.storage import open_storage
storage = open_storage(sys.argv[1])
storage.migrate()
keys = [issue_api_key(storage, uuid.UUID(i), "bench")[0] for i in json.loads(sys.argv[2])]
try:
    admin = issue_api_key(storage, None, "bench", admin=True)[0]
except TypeError:
    admin = None
storage.close()
print(json.dumps({"keys": keys, "admin": admin}))
"""


@dataclass
class _Run:
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    slowest: float = 0.0
    lag: float | None = None  # None: the version cannot be asked
    polls: int = 0
    backlog_max: int | None = None
    caught_up: float | None = None  # seconds after the last answer until the backlog was 0


@contextmanager
def _checkout(commit: str | None) -> Iterator[Path | None]:
    """The `src` folder of `commit` in a temporary worktree (None: this checkout)."""
    if commit is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="mosaic-bench-src-") as parent:
        tree = Path(parent) / commit
        git = ["git", "-C", str(_REPO), "worktree"]
        subprocess.run(
            [*git, "add", "--detach", str(tree), commit], check=True, capture_output=True
        )
        try:
            yield tree / "src"
        finally:
            subprocess.run([*git, "remove", "--force", str(tree)], check=True, capture_output=True)


def _setup(url: str, source: Path | None, instances: list[UUID]) -> tuple[list[str], str | None]:
    env = None if source is None else {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [sys.executable, "-c", _SETUP, url, json.dumps([str(i) for i in instances])],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    found = json.loads(done.stdout)
    return found["keys"], found["admin"]


def _workload(count: int) -> tuple[list[UUID], list[list[bytes]], tuple[str, str]]:
    """The instances, each client's encoded batches, and a usage range holding every event."""
    rng = random.Random(17)
    instances = [random_uuid(rng) for _ in range(_CLIENTS)]
    per_client: list[list[dict[str, object]]] = [[] for _ in instances]
    stamps = []
    for which, event in simulate_events(rng, instances, count):
        per_client[which].append(event.model_dump(mode="json"))
        stamps.append(event.timestamp)
    bodies = [
        [
            json.dumps({"events": events[i : i + _BATCH]}).encode()
            for i in range(0, len(events), _BATCH)
        ]
        for events in per_client
    ]
    span = (
        (min(stamps) - timedelta(days=1)).isoformat(),
        (max(stamps) + timedelta(seconds=1)).isoformat(),
    )
    return instances, bodies, span


def _backlog_probe(url: str) -> tuple[Callable[[], int | None], int]:
    """The events stored but not yet folded into the rollups, read from the database, and
    the backlog the version leaves when idle (main folds once 2,000 are pending)."""
    queries = (
        # this branch: the events after the fold's cursor (PostgreSQL: about)
        (
            "SELECT coalesce((SELECT max(id) FROM events), 0) - (SELECT last_id FROM usage_cursor)",
            0,
        ),
        # main: the list of pending events
        ("SELECT count(*) FROM usage_pending", 1_999),
    )

    def read(query: str) -> int | None:
        try:
            if url.startswith("sqlite:"):
                path = url.removeprefix("sqlite:///")
                with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
                    return int(conn.execute(query).fetchone()[0])
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute(query).fetchone()
                return int(row[0]) if row else None
        except Exception:  # no such table in this version
            return None

    for query, idle in queries:
        if read(query) is not None:
            return functools.partial(read, query), idle
    return (lambda: None), 0


def _drive(
    base: str,
    keys: list[str],
    bodies: list[list[bytes]],
    admin: str | None,
    span: tuple[str, str],
    probe: tuple[Callable[[], int | None], int],
) -> _Run:
    backlog_of, idle = probe
    result = _Run()
    total = sum(len(b) for b in bodies) * _BATCH
    accepted_at: list[float] = []  # time of each accepted event, in order of the answers
    lock = threading.Lock()
    loading = threading.Event()
    loading.set()

    def post(index: int) -> None:
        headers = {"Authorization": f"Bearer {keys[index]}", "Content-Type": "application/json"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            for body in bodies[index]:
                started = time.perf_counter()
                response = client.post("/v1/events/batch", content=body)
                now = time.perf_counter()
                with lock:
                    result.statuses[response.status_code] += 1
                    result.slowest = max(result.slowest, now - started)
                    if response.status_code == 200:
                        accepted_at.extend([now] * response.json()["accepted"])

    lags: list[float] = []
    backlogs: list[int] = []

    def poll() -> None:
        headers = {"Authorization": f"Bearer {admin}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            while loading.is_set():
                asked = time.perf_counter()
                with lock:
                    before = list(accepted_at)
                params = {"from": span[0], "to": span[1]}
                counted = int(client.get("/v1/usage", params=params).json()["totals"]["tasks"])
                result.polls += 1
                # The oldest event accepted before the question and not counted by its answer.
                lags.append(asked - before[counted] if counted < len(before) else 0.0)
                backlog = backlog_of()
                if backlog is not None:
                    backlogs.append(backlog)
                time.sleep(_POLL_SECONDS)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(keys))]
    poller = threading.Thread(target=poll) if admin else None
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    if poller:
        poller.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    ended = time.perf_counter()
    loading.clear()
    if poller:
        poller.join()
        result.lag = max(lags, default=0.0)
    if backlog_of() is not None:
        # Polled a few times a second: each look opens a connection of its own.
        caught_up = lambda: (backlog_of() or 0) <= idle or bool(time.sleep(0.1))  # noqa: E731
        deadline_wait(caught_up, 300, "the fold to catch up")
        result.caught_up = time.perf_counter() - ended
        result.backlog_max = max(backlogs, default=0)
    if result.statuses[200] * _BATCH != total:
        raise RuntimeError(f"not every batch was accepted: {dict(result.statuses)}")
    return result


def _one(backend: str, commit: str | None, count: int) -> _Run:
    instances, bodies, span = _workload(count)
    with _checkout(commit) as source, database(backend) as url:
        keys, admin = _setup(url, source, instances)
        with serve_process(url, source=source) as base:
            return _drive(base, keys, bodies, admin, span, _backlog_probe(url))


def run(quick: bool) -> list[Result]:
    """Every version on both backends, `rounds` times in alternating order; medians."""
    count, rounds = (8_000, 1) if quick else (40_000, 3)
    runs: dict[tuple[str, str], list[_Run]] = {}
    for number in range(rounds):
        order = VERSIONS if number % 2 == 0 else VERSIONS[::-1]
        for backend in ("sqlite", "postgres"):
            for name, commit in order:
                runs.setdefault((backend, name), []).append(_one(backend, commit, count))
    return _results(runs, count)


def _results(runs: dict[tuple[str, str], list[_Run]], count: int) -> list[Result]:
    results = []
    for backend in ("sqlite", "postgres"):
        base_rate = statistics.median(count / r.seconds for r in runs[(backend, VERSIONS[0][0])])
        for name, _ in VERSIONS:
            done = runs[(backend, name)]
            rates = [count / r.seconds for r in done]
            rate = statistics.median(rates)
            note = (
                f"{rate / base_rate:.2f}x of before the rollups; runs "
                + ", ".join(f"{r:,.0f}" for r in rates)
                + f"; slowest answer {max(r.slowest for r in done):.2f} s"
            )
            lags = [r.lag for r in done if r.lag is not None]
            if lags:
                note += f"; usage lag max {max(lags):.2f} s ({sum(r.polls for r in done)} polls)"
            backlog = [r for r in done if r.backlog_max is not None]
            if backlog:
                note += (
                    f"; fold backlog max {max(r.backlog_max or 0 for r in backlog):,}, "
                    f"zero {max(r.caught_up or 0 for r in backlog):.2f} s after the load"
                )
            results.append(Result(SUITE, f"{backend}, {name}", rate, "events/s", note))
    return results


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for line in run(quick):
        print(f"{line.name}: {line.value:,.0f} {line.unit} ({line.note})", flush=True)
