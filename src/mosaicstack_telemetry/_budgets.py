"""Fetching the budget status into its cache: one plan, run by `refresh_budgets[_sync]`.

The status is kept like predictions are (one snapshot, fetched when the harness asks), but
for a shorter time, `BUDGET_STATUS_TTL_SECONDS`: spend moves with every task.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pydantic import ValidationError

from mosaicstack_telemetry._logs import logger
from mosaicstack_telemetry._plans import BUDGETS_STATUS_PATH, Plan, send
from mosaicstack_telemetry._reply import log_reply_failure
from mosaicstack_telemetry._settings import Settings
from mosaicstack_telemetry.models.budgets import BudgetStatus, BudgetStatusResponse

__all__ = ["BUDGET_STATUS_TTL_SECONDS", "BudgetCache", "refresh_budgets"]

# Older than this, a budget status is not used: deciding on an hour-old spend would block a
# task the budget still covers (or let one through it does not).
BUDGET_STATUS_TTL_SECONDS = 900.0


class BudgetCache:
    """The last budget status fetched, until it is `ttl` seconds old. Thread-safe."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entry: tuple[float, list[BudgetStatus]] | None = None
        self._lock = threading.Lock()

    def get(self) -> list[BudgetStatus] | None:
        """The budgets, or None when never fetched or too old."""
        with self._lock:
            if self._entry is None or self._clock() >= self._entry[0]:
                return None
            return list(self._entry[1])

    def put(self, budgets: list[BudgetStatus]) -> None:
        """Keep `budgets` for the TTL."""
        with self._lock:
            self._entry = (self._clock() + self._ttl, list(budgets))


def refresh_budgets(cache: BudgetCache, settings: Settings) -> Plan[None]:
    """Plan: `GET /v1/budgets/status` and cache the answer; a failure is one WARNING."""
    reply = yield from send(BUDGETS_STATUS_PATH, b"", "GET")
    if reply.status != 200:
        log_reply_failure("could not refresh budgets", reply, settings.api_key)
        return
    try:
        answer = BudgetStatusResponse.model_validate_json(reply.body)
    except ValidationError:
        logger.warning("could not refresh budgets (unreadable response)")
        return
    cache.put(answer.budgets)
    logger.debug("refreshed %d budgets", len(answer.budgets))
