"""Server settings: one dataclass, defaults and environment variables side by side.

Every numeric setting has a range (`LIMITS`), checked in one place (`check_setting`) whether
the value comes from a constructor, a command-line flag or an environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Final

__all__ = [
    "ENV_DATABASE_URL",
    "LIMITS",
    "ServerSettings",
    "check_setting",
    "default_database_url",
    "format_number",
]

ENV_DATABASE_URL = "MOSAIC_TELEMETRY_DATABASE_URL"

# Inclusive (low, high) of each numeric setting. Rates must be above their low (0) too: a
# rate of 0 would refuse every request.
LIMITS: Final[Mapping[str, tuple[float, float]]] = {
    "min_sample_size": (1, 1_000_000),
    "stats_max_age_seconds": (0, 86_400),
    "stats_window_days": (0, 3650),
    "rate_limit_per_second": (0, 1_000_000),
    "rate_limit_burst": (1, 1_000_000),
    "max_body_bytes": (1024, 64 * 1024 * 1024),
    "auth_failure_rate_per_second": (0, 1_000_000),
    "auth_failure_burst": (1, 1_000_000),
    "retention_days": (0, 36_500),
}
_EXCLUSIVE_LOW: Final = frozenset({"rate_limit_per_second", "auth_failure_rate_per_second"})


def format_number(value: float) -> str:
    """A bound as people write it: `1000000`, not `1e+06`; `0.5` stays `0.5`."""
    return str(int(value)) if float(value).is_integer() else str(value)


def check_setting(name: str, value: float, label: str | None = None) -> None:
    """Raise ValueError, naming `label` (default: `name`), unless `value` is within range."""
    low, high = LIMITS[name]
    above_low = value > low if name in _EXCLUSIVE_LOW else value >= low
    if not (above_low and value <= high):  # also refuses NaN
        span = "above {} and at most {}" if name in _EXCLUSIVE_LOW else "between {} and {}"
        bounds = span.format(format_number(low), format_number(high))
        raise ValueError(f"{label or name} must be {bounds}, not {value!r}")


def default_database_url() -> str:
    """`MOSAIC_TELEMETRY_DATABASE_URL`, else a SQLite file in the user's data directory."""
    from_env = os.environ.get(ENV_DATABASE_URL)
    if from_env:
        return from_env
    from platformdirs import user_data_dir

    path = Path(user_data_dir("mosaicstack-telemetry", appauthor=False)) / "telemetry.db"
    return f"sqlite:///{path}"


@dataclass
class ServerSettings:
    """Everything the server can be told."""

    database_url: str = field(default_factory=default_database_url)
    # Fewest events a fallback level needs before its statistics are served.
    min_sample_size: int = 5
    # Oldest precomputed statistics may be before a request recomputes them; 0 = always fresh.
    stats_max_age_seconds: float = 300.0
    # Days of events a prediction stands on (predictions/recency.py); 0 = every day.
    stats_window_days: int = 14
    # Per-key token bucket: sustained requests per second and burst size.
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 100
    # Request body limit after decompression (the contract's 1 MiB).
    max_body_bytes: int = 1024 * 1024
    # Per-client-address token bucket for failed authentications: each unknown key costs a
    # database lookup, so a flood of them is refused (429) before reaching the database.
    auth_failure_rate_per_second: float = 1.0
    auth_failure_burst: int = 20
    # Comma-separated CIDRs of reverse proxies whose `X-Forwarded-For` is believed
    # (`proxies.py`); empty: the TCP peer is the client.
    trusted_proxies: str = ""
    # Bearer token that `GET /metrics` requires; empty: /metrics is open (bind it privately).
    metrics_token: str = field(default="", repr=False)
    # Events older than this many days are deleted in the background (retention.py); 0 keeps
    # them forever.
    retention_days: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, labels: Mapping[str, str] | None = None) -> None:
        """Raise ValueError for the first setting out of its range (see `LIMITS`).

        `labels` names settings as the user gave them (an environment variable, a flag).
        Call it again after changing a field: only construction checks by itself.
        """
        labels = labels or {}
        for item in fields(self):
            if item.name in LIMITS:
                check_setting(item.name, getattr(self, item.name), labels.get(item.name))
