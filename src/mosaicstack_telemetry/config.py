"""Client configuration: one dataclass, environment overrides applied at construction."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from mosaicstack_telemetry._version import __version__
from mosaicstack_telemetry.models.batch import MAX_BATCH_SIZE

__all__ = ["TelemetryConfig"]

ENV_ENABLED = "MOSAIC_TELEMETRY_ENABLED"
ENV_SERVER_URL = "MOSAIC_TELEMETRY_SERVER_URL"
ENV_API_KEY = "MOSAIC_TELEMETRY_API_KEY"
ENV_INSTANCE_ID = "MOSAIC_TELEMETRY_INSTANCE_ID"
ENV_SHUTDOWN_TIMEOUT = "MOSAIC_TELEMETRY_SHUTDOWN_TIMEOUT"
ENV_SPOOL_DIR = "MOSAIC_TELEMETRY_SPOOL_DIR"
ENV_SPOOL_MAX_BYTES = "MOSAIC_TELEMETRY_SPOOL_MAX_BYTES"

DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 2.0
# 64 MiB holds about 90,000 events: days of an agent fleet's work, little of anyone's disk.
DEFAULT_SPOOL_MAX_BYTES = 64 * 1024 * 1024
# One spool file must fit (a batch of 100 events is about 80 KiB); a cap past 16 GiB is a typo.
MIN_SPOOL_MAX_BYTES = 1024 * 1024
MAX_SPOOL_MAX_BYTES = 16 * 1024 * 1024 * 1024
# A shutdown that may wait longer than this is a hang, not a budget.
MAX_SHUTDOWN_TIMEOUT_SECONDS = 300.0

_TRUTHY = frozenset({"1", "true", "yes"})
_API_KEY = re.compile(r"[0-9a-fA-F]{64}")


def _env_number(name: str, default: Any, kind: type[float] | type[int]) -> Any:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        return kind(text.strip())
    except ValueError:
        return text


def _finite_positive(value: float) -> bool:
    # inf (or 1e400 parsed from text) passes "> 0" but no timer or timeout can use it.
    try:
        return value > 0 and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


@dataclass
class TelemetryConfig:
    """All configuration of a `TelemetryClient`.

    Environment variables: `MOSAIC_TELEMETRY_ENABLED` (always overrides `enabled`; `1`, `true`,
    `yes` are truthy), and `MOSAIC_TELEMETRY_SERVER_URL`, `MOSAIC_TELEMETRY_API_KEY`,
    `MOSAIC_TELEMETRY_INSTANCE_ID`, each used only when its field was left empty; likewise
    `MOSAIC_TELEMETRY_SHUTDOWN_TIMEOUT`, `MOSAIC_TELEMETRY_SPOOL_DIR` and
    `MOSAIC_TELEMETRY_SPOOL_MAX_BYTES`, used when their field was left at its default.
    """

    server_url: str = ""
    api_key: str = ""
    instance_id: str = ""
    enabled: bool = True
    submit_interval_seconds: float = 300.0
    max_queue_size: int = 1000
    batch_size: int = 100
    request_timeout_seconds: float = 10.0
    prediction_cache_ttl_seconds: float = 21600.0
    dry_run: bool = False
    max_retries: int = 3
    user_agent: str = f"mosaicstack-telemetry-python/{__version__}"
    shutdown_timeout_seconds: float = DEFAULT_SHUTDOWN_TIMEOUT_SECONDS
    spool_dir: str | os.PathLike[str] | None = None
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES

    def __post_init__(self) -> None:
        enabled = os.environ.get(ENV_ENABLED)
        if enabled is not None:
            self.enabled = enabled.strip().lower() in _TRUTHY
        if not self.server_url:
            self.server_url = os.environ.get(ENV_SERVER_URL, "")
        if not self.api_key:
            self.api_key = os.environ.get(ENV_API_KEY, "")
        if not self.instance_id:
            self.instance_id = os.environ.get(ENV_INSTANCE_ID, "")
        self.server_url = self.server_url.rstrip("/")
        self._apply_delivery_env()

    def _apply_delivery_env(self) -> None:
        # Like the others: the environment fills only what the constructor left at its default.
        # A value that does not parse is kept as text, so validate() names it.
        if self.shutdown_timeout_seconds == DEFAULT_SHUTDOWN_TIMEOUT_SECONDS:
            self.shutdown_timeout_seconds = _env_number(
                ENV_SHUTDOWN_TIMEOUT, self.shutdown_timeout_seconds, float
            )
        if self.spool_dir is None:
            self.spool_dir = os.environ.get(ENV_SPOOL_DIR) or None
        if self.spool_max_bytes == DEFAULT_SPOOL_MAX_BYTES:
            self.spool_max_bytes = _env_number(ENV_SPOOL_MAX_BYTES, self.spool_max_bytes, int)

    def validate(self) -> list[str]:
        """Return one message per invalid setting; an empty list means the config is valid."""
        errors: list[str] = []
        if not self.server_url:
            errors.append("server_url is required")
        elif not self.server_url.startswith(("http://", "https://")):
            errors.append("server_url must start with http:// or https://")
        if not _API_KEY.fullmatch(self.api_key):
            # Never echo the key itself: it is a secret.
            errors.append("api_key must be a 64-character hex string")
        try:
            UUID(self.instance_id)
        except (ValueError, TypeError, AttributeError):
            errors.append("instance_id must be a valid UUID string")
        if not _finite_positive(self.submit_interval_seconds):
            errors.append("submit_interval_seconds must be a finite positive number")
        if not self.max_queue_size > 0:
            errors.append("max_queue_size must be positive")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            errors.append(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
        if not _finite_positive(self.request_timeout_seconds):
            errors.append("request_timeout_seconds must be a finite positive number")
        errors += self._delivery_problems()
        return errors

    def _delivery_problems(self) -> list[str]:
        """The checks of the shutdown budget and the spool (issue 7's settings)."""
        errors: list[str] = []
        timeout = self.shutdown_timeout_seconds
        if not (
            isinstance(timeout, int | float)
            and not isinstance(timeout, bool)
            and _finite_positive(timeout)
            and timeout <= MAX_SHUTDOWN_TIMEOUT_SECONDS
        ):
            errors.append(
                "shutdown_timeout_seconds must be a positive number of at most "
                f"{MAX_SHUTDOWN_TIMEOUT_SECONDS:g}"
            )
        if isinstance(self.spool_max_bytes, bool) or not (
            isinstance(self.spool_max_bytes, int)
            and MIN_SPOOL_MAX_BYTES <= self.spool_max_bytes <= MAX_SPOOL_MAX_BYTES
        ):
            errors.append(
                f"spool_max_bytes must be an integer between {MIN_SPOOL_MAX_BYTES} "
                f"and {MAX_SPOOL_MAX_BYTES}"
            )
        if self.spool_dir is not None and not isinstance(self.spool_dir, str | os.PathLike):
            errors.append("spool_dir must be a path or None")
        return errors

    def __repr__(self) -> str:
        # The API key is a secret: keep it out of reprs, logs and tracebacks.
        shown = "'***'" if self.api_key else "''"
        fields = ", ".join(
            f"{name}={shown if name == 'api_key' else repr(getattr(self, name))}"
            for name in self.__dataclass_fields__
        )
        return f"TelemetryConfig({fields})"
