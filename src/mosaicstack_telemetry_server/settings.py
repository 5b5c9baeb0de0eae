"""Server settings: one dataclass, defaults and environment variables side by side."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ENV_DATABASE_URL", "ServerSettings", "default_database_url"]

ENV_DATABASE_URL = "MOSAIC_TELEMETRY_DATABASE_URL"


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
    # Per-key token bucket: sustained requests per second and burst size.
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 100
    # Request body limit after decompression (the contract's 1 MiB).
    max_body_bytes: int = 1024 * 1024
