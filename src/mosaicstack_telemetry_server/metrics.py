"""Prometheus metrics, collected with `prometheus-client`, right with several worker processes.

With `PROMETHEUS_MULTIPROC_DIR` set (`serve --workers N` sets it to a fresh folder unless the
operator chose one), each process writes its samples to files there and `GET /metrics`, whichever
worker answers it, merges them all: prometheus-client's multiprocess mode. The variable must be
set before prometheus-client is first imported, which is why it is imported here, lazily.

Counted: events accepted and rejected by reason, requests by route and status with latency
histograms, the database pool's use (sampled after requests, at most once a second per process);
the age of the prediction statistics is read from the database when scraped.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mosaicstack_telemetry import BatchEventResponse
from mosaicstack_telemetry._spool import _pid_alive
from mosaicstack_telemetry_server.ingest import WRONG_INSTANCE
from mosaicstack_telemetry_server.storage.base import Storage

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

    from mosaicstack_telemetry_server.otlp.receive import Received

__all__ = [
    "ENV_MULTIPROC_DIR",
    "REJECTION_REASONS",
    "Metrics",
    "MetricsMiddleware",
    "forget_dead_processes",
    "multiprocess_folder",
    "rejection_reason",
]

ENV_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
_PREFIX = "mosaic_telemetry"
# Every reason a single event is refused for (`ingest.judge_event`), so each series exists at 0.
REJECTION_REASONS = (
    "invalid",
    "unsupported_schema_version",
    "wrong_instance",
    "implausible_timestamp",
)
# Requests no route matched share one label: paths are chosen by clients, labels must be few.
_UNMATCHED = "(unmatched)"
_POOL_SAMPLE_SECONDS = 1.0
_POOL_FIELDS = ("max", "open", "in_use", "waiting")
# prometheus-client's file names in the multiprocess folder: `<type>[_<mode>]_<pid>.db`.
_SAMPLE_FILE = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db")
# A live gauge's file, by process: a process that died without `process_exiting` (killed, or
# crashed) leaves one, whose values the merge would add to the live ones for good.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_([1-9]\d{0,9})\.db")
# Methods are chosen by clients too: anything else is counted as OTHER.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@runtime_checkable
class PoolReporting(Protocol):
    """A storage that can tell how its connection pool is used (both backends can)."""

    def pool_stats(self) -> Mapping[str, int]:
        """`max`, `open`, `in_use` and `waiting` connections (requests) right now."""
        ...


def rejection_reason(error: str | None) -> str:
    """The metric label of a rejected event's `error` (one of `REJECTION_REASONS`)."""
    text = error or ""
    for reason in ("implausible_timestamp", "unsupported_schema_version"):
        if f"({reason})" in text:
            return reason
    return "wrong_instance" if text == WRONG_INSTANCE else "invalid"


class Metrics:
    """The metrics of one app; every process of a multi-worker server has its own instance."""

    def __init__(self, storage: Storage) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self._storage = storage
        self.multiprocess = bool(os.environ.get(ENV_MULTIPROC_DIR))
        # A registry of this app's own, so several apps in one process (tests) do not collide.
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.events_accepted = Counter(
            f"{_PREFIX}_events_accepted", "Events accepted and stored.", registry=registry
        )
        self.events_rejected = Counter(
            f"{_PREFIX}_events_rejected",
            "Events rejected one by one, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in REJECTION_REASONS:
            self.events_rejected.labels(reason)
        self.requests = Counter(
            f"{_PREFIX}_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{_PREFIX}_http_request_duration_seconds",
            "Time from request to the end of the response, by route template and method.",
            ["route", "method"],
            registry=registry,
        )
        # livesum: the pools of the live processes added up (each removes its own on exit).
        self.pool = Gauge(
            f"{_PREFIX}_db_pool_connections",
            "Database pool: max (size limit), open, in_use, and waiting (requests queued).",
            ["state"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._pool_sampled = 0.0
        self.otlp_records = Counter(
            f"{_PREFIX}_otlp_log_records",
            "OTLP log records received, by what became of them: used (a call or a prompt), "
            "duplicate (sent again), ignored (not a call), rejected.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("used", "duplicate", "ignored", "rejected"):
            self.otlp_records.labels(outcome)
        self.otlp_tasks_closed = Counter(
            f"{_PREFIX}_otlp_tasks_closed",
            "OTLP tasks closed and stored as events (by a prompt or by idleness).",
            registry=registry,
        )
        self.budget_alerts = Counter(
            f"{_PREFIX}_budget_alerts",
            "Budget alerts: claimed (fired, once per fleet), delivered, failed (to be retried) "
            "and abandoned, by kind (threshold or forecast).",
            ["event", "kind"],
            registry=registry,
        )

    def count_budget_alert(self, event: str, kind: str) -> None:
        """Count one step of a budget alert's life (`budgets/service.py`)."""
        self.budget_alerts.labels(event, kind).inc()

    def count_batch(self, response: BatchEventResponse) -> None:
        """Count the verdicts of one `POST /v1/events/batch`."""
        if response.accepted:
            self.events_accepted.inc(response.accepted)
        for result in response.results:
            if result.status == "rejected":
                self.events_rejected.labels(rejection_reason(result.error)).inc()

    def count_otlp(self, received: Received) -> None:
        """Count what became of one `POST /v1/logs`'s records, and the tasks it closed."""
        for outcome, amount in (
            ("used", received.used),
            ("duplicate", received.duplicates),
            ("ignored", received.ignored),
            ("rejected", received.rejected),
        ):
            if amount:
                self.otlp_records.labels(outcome).inc(amount)
        if received.closed:
            self.otlp_tasks_closed.inc(received.closed)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request and its duration; sample the pool now and then."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)
        now = time.monotonic()
        if now - self._pool_sampled >= _POOL_SAMPLE_SECONDS:
            self._pool_sampled = now
            self.sample_pool()

    def sample_pool(self) -> None:
        """Copy the storage pool's current use into the gauges (never raises)."""
        if not isinstance(self._storage, PoolReporting):
            return
        try:
            stats = self._storage.pool_stats()
        except Exception:  # a metric must never fail a request
            return
        for name in _POOL_FIELDS:
            self.pool.labels(name).set(stats.get(name, 0))

    def exposition(self) -> tuple[bytes, str]:
        """The body and content type of `GET /metrics`. Blocking (reads the database)."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        self.sample_pool()
        registry: CollectorRegistry = self.registry
        if self.multiprocess:
            forget_dead_processes(Path(os.environ[ENV_MULTIPROC_DIR]))
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        # Read by this process alone, from the database every worker shares.
        ages = CollectorRegistry()
        ages.register(_StatisticsAge(self._storage))
        return generate_latest(registry) + generate_latest(ages), CONTENT_TYPE_LATEST

    def process_exiting(self) -> None:
        """Drop this process's live gauges from the shared folder (graceful exit only)."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def forget_dead_processes(folder: Path) -> list[int]:
    """Drop the live gauges of the processes that are gone (a worker killed or crashed, which
    the server restarts under another pid); the pids dropped. POSIX only: elsewhere there is no
    harmless way to ask whether a process lives (`_pid_alive`), and nothing is dropped."""
    alive: dict[int, bool] = {}  # each pid asked once, whatever the number of its files
    for path in sorted(folder.glob("gauge_live*.db")):
        match = _LIVE_GAUGE_FILE.fullmatch(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid not in alive:
            alive[pid] = _pid_alive(pid)
        if not alive[pid]:
            # Not prometheus-client's mark_process_dead: two scrapes at once may both find the
            # file, and the later one's remove must not fail the scrape.
            path.unlink(missing_ok=True)
    return [pid for pid, lives in alive.items() if not lives]


class _StatisticsAge:
    """Collector of each task type's prediction statistics age, read when scraped."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            f"{_PREFIX}_prediction_statistics_age_seconds",
            "Seconds since each task type's prediction statistics were computed.",
            labels=["task_type"],
        )
        try:
            versions = self._storage.stats_versions()
        except Exception:  # storage down: no samples, /readyz says why
            versions = {}
        now = datetime.now(UTC)
        for task_type, (_version, computed_at) in sorted(versions.items()):
            family.add_metric([task_type], max(0.0, (now - computed_at).total_seconds()))
        yield family


class MetricsMiddleware:
    """Pure ASGI middleware counting every HTTP request by its route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through, then count it (the app's `state.metrics`)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before responding

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            metrics: Any = getattr(scope["app"].state, "metrics", None)
            if isinstance(metrics, Metrics):
                route = getattr(scope.get("route"), "path", _UNMATCHED)
                method = scope.get("method", "")
                method = method if method in _METHODS else "OTHER"
                metrics.observe_request(route, method, status, time.perf_counter() - started)


@contextlib.contextmanager
def multiprocess_folder(workers: int) -> Iterator[None]:
    """Around a multi-worker server: give its workers a shared `PROMETHEUS_MULTIPROC_DIR`.

    An operator's folder is kept but emptied of old samples first (a previous run's counters
    would otherwise be added to this one's); a folder made here is removed afterwards.
    """
    chosen = os.environ.get(ENV_MULTIPROC_DIR)
    if chosen:
        for stale in Path(chosen).glob("*.db"):
            # Only prometheus-client's own files: the folder may hold anything else too.
            if _SAMPLE_FILE.fullmatch(stale.name):
                stale.unlink(missing_ok=True)
        yield
        return
    if workers == 1:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="mosaic-telemetry-metrics-") as folder:
        os.environ[ENV_MULTIPROC_DIR] = folder
        try:
            yield
        finally:
            os.environ.pop(ENV_MULTIPROC_DIR, None)
