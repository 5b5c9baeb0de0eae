"""Client configuration: one dataclass, environment overrides applied at construction."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from uuid import UUID

from mosaicstack_telemetry._version import __version__
from mosaicstack_telemetry.models.batch import MAX_BATCH_SIZE

__all__ = ["TelemetryConfig"]

ENV_ENABLED = "MOSAIC_TELEMETRY_ENABLED"
ENV_SERVER_URL = "MOSAIC_TELEMETRY_SERVER_URL"
ENV_API_KEY = "MOSAIC_TELEMETRY_API_KEY"
ENV_INSTANCE_ID = "MOSAIC_TELEMETRY_INSTANCE_ID"

_TRUTHY = frozenset({"1", "true", "yes"})
_API_KEY = re.compile(r"[0-9a-fA-F]{64}")


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
    `MOSAIC_TELEMETRY_INSTANCE_ID`, each used only when its field was left empty.
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
        return errors

    def __repr__(self) -> str:
        # The API key is a secret: keep it out of reprs, logs and tracebacks.
        shown = "'***'" if self.api_key else "''"
        fields = ", ".join(
            f"{name}={shown if name == 'api_key' else repr(getattr(self, name))}"
            for name in self.__dataclass_fields__
        )
        return f"TelemetryConfig({fields})"
