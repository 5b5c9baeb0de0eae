"""The one-line estimate shown before a task, from predictions cached in a file.

The hook must answer in milliseconds, so it reads the last prediction from a file (stdlib only)
and leaves fetching a fresh one to a background process (`refresh_prediction`), which uses the
SDK's `refresh_predictions_sync`. A prediction older than the SDK's cache TTL is not shown.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "PREDICTION_TTL_SECONDS",
    "REFRESH_AFTER_SECONDS",
    "Query",
    "cached_prediction",
    "estimate_line",
    "estimated_fields",
    "refresh_prediction",
]

# The SDK's default prediction_cache_ttl_seconds: a prediction older than this is not shown.
PREDICTION_TTL_SECONDS = 21_600.0
# Ask the server again after this long: its statistics move slowly, a prompt comes often.
REFRESH_AFTER_SECONDS = 600.0
_FILE = "predictions.json"
# A range is written with an en dash, as in typeset text: "14k\u201381k".
_DASH = "\u2013"


@dataclass(frozen=True)
class Query:
    """A prediction query in wire strings (task_type, model, provider, complexity)."""

    task_type: str
    model: str
    provider: str
    complexity: str

    @property
    def key(self) -> str:
        """The cache file's key for this query."""
        return "|".join((self.task_type, self.model, self.provider, self.complexity))


def _load(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / _FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_prediction(
    state_dir: Path, query: Query, now: float | None = None
) -> tuple[dict[str, Any] | None, bool]:
    """(the cached prediction response or None, whether it should be refreshed)."""
    entry = _load(state_dir).get(query.key)
    now = time.time() if now is None else now
    if not isinstance(entry, dict) or not isinstance(entry.get("fetched"), int | float):
        return None, True
    age = now - entry["fetched"]
    response = entry.get("response") if age <= PREDICTION_TTL_SECONDS else None
    return (response if isinstance(response, dict) else None), age > REFRESH_AFTER_SECONDS


def _tokens(value: object) -> str:
    number = value if isinstance(value, int | float) else 0
    if number >= 1_000_000:
        return f"{number / 1_000_000:.1f}M"
    return f"{round(number / 1000)}k" if number >= 1000 else str(int(number))


def estimate_line(response: dict[str, Any] | None) -> str | None:
    """E.g. "Tasks like this: median $0.17, 14k-81k input tokens (high confidence, 101 tasks)".

    The range is the 10th to 90th percentile; None when the server has no prediction.
    """
    try:
        prediction = response.get("prediction") if response else None
        if not isinstance(prediction, dict):
            return None
        metadata = response.get("metadata") or {}  # type: ignore[union-attr]
        tokens = prediction["input_tokens"]
        cost = prediction["cost_usd_micros"]["median"] / 1_000_000
        return (
            f"Tasks like this: median ${cost:.2f}, {_tokens(tokens['p10'])}{_DASH}"
            f"{_tokens(tokens['p90'])} input tokens ({metadata.get('confidence', 'unknown')} "
            f"confidence, {metadata.get('sample_size', 0)} tasks)"
        )
    except (KeyError, TypeError, AttributeError):
        return None


def estimated_fields(response: dict[str, Any] | None) -> tuple[int, int, int]:
    """(input tokens, output tokens, cost micros) medians: a task's `estimated_*` fields."""
    try:
        prediction: Any = response["prediction"] if response else None
        return (
            int(prediction["input_tokens"]["median"]),
            int(prediction["output_tokens"]["median"]),
            int(prediction["cost_usd_micros"]["median"]),
        )
    except (KeyError, TypeError, ValueError):
        return (0, 0, 0)


def refresh_prediction(state_dir: Path, query: Query, server_url: str, timeout: float) -> bool:
    """Fetch the query's prediction with the SDK and store it; whether one was stored."""
    from mosaicstack_telemetry import PredictionQuery, TelemetryClient, TelemetryConfig

    config = TelemetryConfig(server_url=server_url, request_timeout_seconds=timeout, max_retries=0)
    wire = PredictionQuery.model_validate(
        {
            "task_type": query.task_type,
            "model": query.model,
            "provider": query.provider,
            "complexity": query.complexity,
        }
    )
    client = TelemetryClient(config)
    client.refresh_predictions_sync([wire])
    response = client.get_prediction(wire)
    if response is None:
        return False
    data = _load(state_dir)
    data[query.key] = {"fetched": time.time(), "response": response.model_dump(mode="json")}
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = state_dir / f"{_FILE}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(data), "utf-8")
    temporary.replace(state_dir / _FILE)
    return True
