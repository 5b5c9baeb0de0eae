"""The alerts' background work in one server process: an evaluator and a sender thread.

The evaluator computes every budget's status when woken by an ingested batch (`wake`) and at
least every `check_interval` seconds, and claims each alert the status calls for with an
INSERT under the outbox's unique key: of all processes, the first INSERT wins and only the
winner logs and counts the alert. The sender delivers due outbox rows, taking each with a
compare-and-swap on its attempt count, so no two processes send the same attempt; a failure
is retried with backoff (`backoff.py`). Neither thread ever raises, and ingestion only sets an
event: it never waits on either.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

import httpx

from mosaicstack_telemetry_server.budgets.alerts import (
    DueAlert,
    alert_body,
    alert_id,
    alert_text,
    due_alerts,
)
from mosaicstack_telemetry_server.budgets.backoff import retry_delay, should_give_up
from mosaicstack_telemetry_server.budgets.model import Budget
from mosaicstack_telemetry_server.budgets.spend import budget_status
from mosaicstack_telemetry_server.budgets.webhook import post_alert
from mosaicstack_telemetry_server.storage import Storage
from mosaicstack_telemetry_server.storage._budgets import AlertRecord, NewAlert, budgets_of

__all__ = ["AlertService"]

logger = logging.getLogger("mosaicstack_telemetry_server.budgets")

# How long an attempt holds its row: past the webhook's timeout, so a live sender finishes
# first; a sender that died mid-attempt leaves the row to another process after this.
_HOLD: Final = timedelta(seconds=60)
_BATCH: Final = 50
# Alert ids remembered as claimed, so a long-lived process does not grow with every period.
_MAX_REMEMBERED: Final = 10_000
# Several batches in a burst wake the evaluator once: it waits this long for the rest.
_SETTLE_SECONDS: Final = 0.2

Observer = Callable[[str, str], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AlertService:
    """Evaluates budgets and delivers their alerts in the background (`start`, `wake`, `stop`)."""

    def __init__(
        self,
        storage: Storage,
        *,
        check_interval: float,
        ready: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._storage = storage
        self._interval = check_interval
        self._ready = ready
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311  # nosec B311
        # Called with (event, kind): ("claimed", "threshold"), ("delivered", ...), ("failed", ...).
        self.observer: Observer = lambda _event, _kind: None
        self._claimed: set[str] = set()  # alert ids this process saw stored: never claimed again
        self._wake_check = threading.Event()
        self._wake_send = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # Both threads share one outage: an error is logged once, when the first of them fails.
        self._state = threading.Lock()
        self._failing = False
        self._rounds = 0  # rounds begun by either thread, in order (a clock may not tick between)
        self._recovered_round = 0  # the latest round that succeeded

    def start(self) -> None:
        """Start both threads (daemons: they never hold the process open)."""
        for name, loop in (
            ("budget-evaluator", self._check_loop),
            ("alert-sender", self._send_loop),
        ):
            thread = threading.Thread(target=loop, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """An ingested batch may have crossed a threshold: check soon. Never blocks."""
        self._wake_check.set()

    def stop(self, timeout: float) -> bool:
        """Stop both threads; True if they ended within `timeout` seconds."""
        self._stopping.set()
        self._wake_check.set()
        self._wake_send.set()
        for thread in self._threads:
            thread.join(timeout)
        return not any(thread.is_alive() for thread in self._threads)

    def _check_loop(self) -> None:
        while not self._stopping.is_set():
            self._guarded(self.check_once)
            if self._wake_check.wait(self._interval) and not self._stopping.is_set():
                self._stopping.wait(_SETTLE_SECONDS)
            self._wake_check.clear()

    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            wait = self._guarded(self.send_due) or self._interval
            self._wake_send.wait(wait)
            self._wake_send.clear()

    def _guarded(self, work: Callable[[], float | None]) -> float | None:
        with self._state:
            self._rounds += 1
            started = self._rounds
        try:
            self._ready()
            result = work()
        except Exception as exc:  # storage down, a bug: log once per outage, keep going
            with self._state:
                # A failure whose round began before the other thread's last successful one is
                # the outage already logged, not a new one.
                first = not self._failing and started > self._recovered_round
                self._failing = self._failing or first
            (logger.error if first else logger.debug)("budget alerts: %s", exc)
            return None
        with self._state:
            self._failing = False
            self._recovered_round = max(self._recovered_round, started)
        return result

    def check_once(self) -> None:
        """Compute every budget's status and claim the alerts it calls for."""
        now = self._clock()
        for budget in budgets_of(self._storage).list_budgets():
            status = budget_status(self._storage, budget, now)
            for due in due_alerts(status, now):
                self._claim(status, budget.revision, due, budget.webhook_url, now)

    def _claim(
        self, status: Budget, revision: str, due: DueAlert, url: str | None, now: datetime
    ) -> None:
        key = alert_id(status.name, revision, status.period_start, due)
        if key in self._claimed:
            return
        alert = NewAlert(
            alert_id=key,
            budget=status.name,
            revision=revision,
            period_start=status.period_start,
            kind=due.kind,
            threshold=due.key,
            body=alert_body(status, key, due),
            webhook_url=url,
            created_at=now,
        )
        won = budgets_of(self._storage).claim_alert(alert)
        if len(self._claimed) >= _MAX_REMEMBERED:
            self._claimed.clear()  # a forgotten key costs one more INSERT that loses, no more
        self._claimed.add(key)
        if won:
            logger.warning("budget alert %s: %s", key, alert_text(status, due))
            self.observer("claimed", due.kind)
            if url:
                self._wake_send.set()

    def send_due(self) -> float:
        """Deliver every due alert once; the seconds until the next one is due."""
        store = budgets_of(self._storage)
        due_now = store.due_alerts(self._clock(), _BATCH)
        if due_now:  # a client costs an SSL context (milliseconds): only when there is work
            with httpx.Client(follow_redirects=False) as client:
                for alert in due_now:
                    if self._stopping.is_set():
                        break
                    self._attempt(client, alert)
        due = store.next_alert_due()
        if due is None:
            return self._interval
        return min(max((due - self._clock()).total_seconds(), 0.05), self._interval)

    def _attempt(self, client: httpx.Client, alert: AlertRecord) -> None:
        store = budgets_of(self._storage)
        now = self._clock()
        if not store.take_alert(alert, now, now + _HOLD):
            return  # another process took it
        budget = store.get_budget(alert.budget)
        if budget is None or not alert.webhook_url:
            store.finish_attempt(
                alert.alert_id,
                state="abandoned",
                next_attempt_at=now,
                delivered_at=None,
                error="budget deleted",
            )
            return
        outcome = post_alert(client, alert.webhook_url, alert.body, budget.webhook_secret)
        done = self._clock()
        if outcome.delivered:
            store.finish_attempt(
                alert.alert_id,
                state="delivered",
                next_attempt_at=done,
                delivered_at=done,
                error=None,
            )
            logger.info(
                "budget alert %s delivered (attempt %d)", alert.alert_id, alert.attempts + 1
            )
            self.observer("delivered", alert.kind)
            return
        give_up = should_give_up(alert.created_at, done)
        store.finish_attempt(
            alert.alert_id,
            state="abandoned" if give_up else "pending",
            next_attempt_at=done + retry_delay(alert.attempts + 1, self._rng),
            delivered_at=None,
            error=outcome.error,
        )
        logger.info(
            "budget alert %s not delivered (attempt %d: %s)%s",
            alert.alert_id,
            alert.attempts + 1,
            outcome.error,
            "; given up" if give_up else "",
        )
        self.observer("abandoned" if give_up else "failed", alert.kind)
