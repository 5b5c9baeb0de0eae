"""What one running app holds: its storage and the services built on it.

Storage may be unreachable when the server starts (a database restarting, a network blip):
the server starts anyway, answers 503 with `Retry-After`, and applies the schema migrations as
soon as the database answers, checking at most once per `MIGRATE_RETRY_SECONDS`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mosaicstack_telemetry_server.auth import KeyVerifier
from mosaicstack_telemetry_server.budgets.service import AlertService
from mosaicstack_telemetry_server.otlp.closer import TaskCloser
from mosaicstack_telemetry_server.predictions.recency import Recency
from mosaicstack_telemetry_server.predictions.service import PredictionService
from mosaicstack_telemetry_server.ratelimit import RateLimiter
from mosaicstack_telemetry_server.retention import RetentionTask
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import Storage, sqlite_path
from mosaicstack_telemetry_server.storage.base import StorageError
from mosaicstack_telemetry_server.usage_fold import UsageFolder

__all__ = ["MIGRATE_RETRY_SECONDS", "Runtime"]

logger = logging.getLogger("mosaicstack_telemetry_server")

MIGRATE_RETRY_SECONDS = 1.0
# How long shutdown waits for the prediction refresher to finish its current pass (and for a
# drain process to end and its work to be taken over).
REFRESHER_STOP_SECONDS = 5.0


@dataclass
class Runtime:
    """The storage, key verifier, rate limiters and prediction service of one app.

    `limiter` holds a bucket per API key; `auth_failures` one per client address, taken by
    each failed authentication (bounded memory: the least recently seen addresses go first).
    """

    settings: ServerSettings
    storage: Storage
    owns_storage: bool
    clock: Callable[[], float] = time.monotonic
    verifier: KeyVerifier = field(init=False)
    limiter: RateLimiter = field(init=False)
    auth_failures: RateLimiter = field(init=False)
    predictions: PredictionService = field(init=False)
    # Deletes old events in the background when `retention_days` is set (retention.py).
    retention: RetentionTask | None = field(init=False, default=None)
    # Closes idle OTLP tasks in the background (otlp/closer.py).
    otlp_closer: TaskCloser = field(init=False)
    # Folds stored events into the usage rollups in the background (usage_fold.py).
    usage_folder: UsageFolder = field(init=False)
    # Evaluates budgets and sends their alerts (budgets/service.py).
    budget_alerts: AlertService = field(init=False)
    _migrated: bool = field(init=False, default=False)
    _next_attempt: float = field(init=False, default=0.0)
    # One ERROR per outage, not one per retry: later failures go to DEBUG until it is back.
    _failing: bool = field(init=False, default=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.verifier = KeyVerifier(self.storage)
        self.limiter = RateLimiter(
            self.settings.rate_limit_per_second, self.settings.rate_limit_burst
        )
        self.auth_failures = RateLimiter(
            self.settings.auth_failure_rate_per_second, self.settings.auth_failure_burst
        )
        self.predictions = PredictionService(
            self.storage,
            min_sample_size=self.settings.min_sample_size,
            stats_max_age_seconds=self.settings.stats_max_age_seconds,
            recency=Recency(window_days=self.settings.stats_window_days),
            drain_url=self._drain_url(),
        )
        self.otlp_closer = TaskCloser(
            self.storage, self.settings.otlp_task_idle, ready=self.ensure_ready
        )
        self.usage_folder = UsageFolder(self.storage, ready=self.ensure_ready)
        self.budget_alerts = AlertService(
            self.storage,
            check_interval=self.settings.budget_check_interval,
            ready=self.ensure_ready,
        )
        if self.settings.retention_days:
            self.retention = RetentionTask(
                self.storage, self.settings.retention_days, ready=self.ensure_ready
            )

    def _drain_url(self) -> str | None:
        """The URL a drain process can open: that of storage this app opened, unless private."""
        url = self.settings.database_url
        if not self.owns_storage or (url.startswith("sqlite:") and sqlite_path(url) == ":memory:"):
            return None
        return url

    def start(self) -> None:
        """Migrate if the database answers, and start the background prediction refresher and
        usage fold."""
        # Logged by ensure_ready; requests get 503 until the database is back.
        with contextlib.suppress(StorageError):
            self.ensure_ready()
        self.storage.start_maintenance()
        self.predictions.start_background()
        self.usage_folder.start()
        if self.retention is not None:
            self.retention.start()
        self.otlp_closer.start()
        self.budget_alerts.start()

    def stop(self) -> None:
        """Stop the refresher, any drain process and the usage fold, and release storage if this
        app opened it."""
        # With the database unreachable the refresher can only be waiting for a connection:
        # closing storage ends that wait, so do not sit out the pool's timeout first.
        timeout = REFRESHER_STOP_SECONDS if self._migrated else 0.2
        # Between two chunks at the latest: each is one short transaction.
        if not self.otlp_closer.stop(timeout):
            logger.warning("otlp closer still busy at shutdown; closing storage anyway")
        if self.retention is not None and not self.retention.stop(timeout):
            logger.warning("retention still busy at shutdown; closing storage anyway")
        # After its chunk in progress, one transaction: an unfinished one is rolled back.
        if not self.usage_folder.stop(timeout):
            logger.warning("usage fold still busy at shutdown; closing storage anyway")
        if not self.budget_alerts.stop(timeout):
            logger.warning("budget alerts still busy at shutdown; closing storage anyway")
        if not self.predictions.stop_background(timeout):
            logger.warning(
                "prediction refresher or drain still busy at shutdown; closing storage anyway"
            )
        if not self.storage.stop_maintenance(timeout):
            logger.warning("storage upkeep still busy at shutdown; closing storage anyway")
        if self.owns_storage:
            self.storage.close()

    def ensure_ready(self) -> None:
        """Raise `StorageError` unless the schema is migrated (trying again when due). Blocking."""
        if self._migrated:
            return
        with self._lock:
            if self._migrated:
                return
            now = self.clock()
            if now < self._next_attempt:
                raise StorageError("storage not ready (migration pending)")
            self._next_attempt = now + MIGRATE_RETRY_SECONDS
            try:
                # A ping fails fast where a migration would wait out the pool's timeout.
                if not self.storage.ping():
                    raise StorageError("storage cannot be reached")
                self.storage.migrate()
            except StorageError as exc:
                log = logger.debug if self._failing else logger.error
                log("cannot migrate storage (will retry): %s", exc)
                self._failing = True
                raise
            if self._failing:
                logger.info("storage reachable again; schema migrated")
            self._migrated = True

    @property
    def ready(self) -> bool:
        """Whether the schema has been migrated by this process."""
        return self._migrated
