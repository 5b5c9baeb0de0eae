"""Runtime settings: the user's config with every unusable value replaced by a safe one.

`TelemetryConfig.validate()` reports problems, but the client must keep running even with a
bad config (the constructor only warns), so the submitter reads these sanitized values instead.
"""

from __future__ import annotations

import math
import os
import random as _random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mosaicstack_telemetry.config import (
    MAX_SHUTDOWN_TIMEOUT_SECONDS,
    MAX_SPOOL_MAX_BYTES,
    MIN_SPOOL_MAX_BYTES,
    TelemetryConfig,
)
from mosaicstack_telemetry.models.batch import MAX_BATCH_SIZE

__all__ = [
    "MAX_REQUEST_TIMEOUT_SECONDS",
    "MAX_RETRIES_LIMIT",
    "MAX_SUBMIT_INTERVAL_SECONDS",
    "MIN_SUBMIT_INTERVAL_SECONDS",
    "Settings",
]

# A zero or negative interval would turn the background loop into a busy loop.
MIN_SUBMIT_INTERVAL_SECONDS = 0.01
# Waits and timeouts beyond these are mistakes (and past threading.TIMEOUT_MAX they crash the
# worker with OverflowError): a day between flushes, five minutes for one request.
MAX_SUBMIT_INTERVAL_SECONDS = min(86_400.0, threading.TIMEOUT_MAX)
MAX_REQUEST_TIMEOUT_SECONDS = min(300.0, threading.TIMEOUT_MAX)
# More retries than this only delays the put-back; the next flush retries anyway.
MAX_RETRIES_LIMIT = 10
# A queue is memory: past this a misconfiguration would let a process grow without bound.
MAX_QUEUE_SIZE_LIMIT = 1_000_000

_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TelemetryConfig)}


def _positive_float(value: object, name: str) -> float:
    """`value` if a finite positive number, else the default (validate() says why)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float(_DEFAULTS[name])
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return float(_DEFAULTS[name])
    if not (number > 0 and math.isfinite(number)):
        return float(_DEFAULTS[name])
    return number


def _capped(value: float, cap: float, name: str, notes: list[str]) -> float:
    if value <= cap:
        return value
    notes.append(f"{name} of {value:g} s is more than the SDK can use; capped at {cap:g} s")
    return cap


def _int_in(value: object, low: int, high: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return int(_DEFAULTS[name])
    return value


def _path(value: object) -> Path | None:
    if isinstance(value, str | os.PathLike) and str(value):
        return Path(value).expanduser()
    return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Settings:
    """What the client and its submitter actually run with."""

    server_url: str
    api_key: str = field(repr=False)
    user_agent: str
    enabled: bool
    dry_run: bool
    submit_interval_seconds: float
    max_queue_size: int
    batch_size: int
    request_timeout_seconds: float
    prediction_cache_ttl_seconds: float
    max_retries: int
    # Bounds the final flush of stop(), stop_async() and interpreter exit.
    shutdown_timeout_seconds: float = 2.0
    spool_dir: Path | None = None
    spool_max_bytes: int = 64 * 1024 * 1024
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)
    # What was capped at run time beyond what validate() reports; the client warns about each.
    notes: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_config(
        cls, config: TelemetryConfig, *, random: Callable[[], float] = _random.random
    ) -> Settings:
        """Sanitize `config`: wrong types and out-of-range values fall back to the defaults."""
        notes: list[str] = []
        interval = _capped(
            _positive_float(config.submit_interval_seconds, "submit_interval_seconds"),
            MAX_SUBMIT_INTERVAL_SECONDS,
            "submit_interval_seconds",
            notes,
        )
        timeout = _capped(
            _positive_float(config.request_timeout_seconds, "request_timeout_seconds"),
            MAX_REQUEST_TIMEOUT_SECONDS,
            "request_timeout_seconds",
            notes,
        )
        retries = config.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int):
            retries = int(_DEFAULTS["max_retries"])
        return cls(
            server_url=_text(config.server_url).rstrip("/"),
            api_key=_text(config.api_key),
            user_agent=_text(config.user_agent) or str(_DEFAULTS["user_agent"]),
            enabled=bool(config.enabled),
            dry_run=bool(config.dry_run),
            submit_interval_seconds=max(interval, MIN_SUBMIT_INTERVAL_SECONDS),
            max_queue_size=_int_in(
                config.max_queue_size, 1, MAX_QUEUE_SIZE_LIMIT, "max_queue_size"
            ),
            batch_size=_int_in(config.batch_size, 1, MAX_BATCH_SIZE, "batch_size"),
            request_timeout_seconds=timeout,
            prediction_cache_ttl_seconds=_positive_float(
                config.prediction_cache_ttl_seconds, "prediction_cache_ttl_seconds"
            ),
            max_retries=min(max(retries, 0), MAX_RETRIES_LIMIT),
            shutdown_timeout_seconds=min(
                _positive_float(config.shutdown_timeout_seconds, "shutdown_timeout_seconds"),
                MAX_SHUTDOWN_TIMEOUT_SECONDS,
            ),
            spool_dir=_path(config.spool_dir),
            spool_max_bytes=_int_in(
                config.spool_max_bytes, MIN_SPOOL_MAX_BYTES, MAX_SPOOL_MAX_BYTES, "spool_max_bytes"
            ),
            random=random,
            notes=tuple(notes),
        )
