"""The hook's budget check: the task's estimate against what is left, from a cached status.

Like the prediction (`estimate.py`), the budget status is read from a file in milliseconds
(stdlib only) and refreshed by a background process (`refresh_budgets`, the SDK's
`refresh_budgets_sync` on `GET /v1/budgets/status` with the instance key). The rule is the
SDK's (`mosaicstack_telemetry.budget_check`), written again here without pydantic so the hook
never pays the SDK's import:
- p90 cost = median cost x the larger of p90/median of the input and output tokens (>= 1);
- the p90 over what is left of the tightest covering budget -> the line says so;
- with `MOSAIC_TELEMETRY_BUDGET_MODE=block`: a median over what is left, or a spent budget,
  blocks the prompt (Claude Code's documented `{"decision": "block", "reason": ...}`).
It never blocks on a status it cannot trust: never fetched, older than
`BUDGET_STATUS_MAX_AGE_SECONDS`, or whose last refresh could not reach the server; it says so
in the line instead.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BUDGET_REFRESH_AFTER_SECONDS",
    "BUDGET_STATUS_MAX_AGE_SECONDS",
    "ENV_BUDGET_MODE",
    "Verdict",
    "budget_verdict",
    "cost_median_p90",
    "refresh_budgets",
]

ENV_BUDGET_MODE = "MOSAIC_TELEMETRY_BUDGET_MODE"
# Spend moves with every task: ask again after a minute (in the background, never waited on).
BUDGET_REFRESH_AFTER_SECONDS = 60.0
# The SDK's BUDGET_STATUS_TTL_SECONDS: older than this, a status is not used to decide.
BUDGET_STATUS_MAX_AGE_SECONDS = 900.0
_FILE = "budgets.json"


@dataclass(frozen=True)
class Verdict:
    """What the budgets say: `note` for the estimate line, `block` with its reason."""

    note: str | None = None
    block: str | None = None
    refresh: bool = False


def cost_median_p90(response: dict[str, Any] | None) -> tuple[int, int]:
    """(median, p90) cost in microdollars of a cached prediction; (0, 0) without one."""
    try:
        prediction = response["prediction"] if response else None
        median = int(prediction["cost_usd_micros"]["median"])  # type: ignore[index]
        ratios = [1.0]
        for name in ("input_tokens", "output_tokens"):
            tokens = prediction[name]  # type: ignore[index]
            if tokens["median"] > 0:
                ratios.append(tokens["p90"] / tokens["median"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 0, 0
    return median, round(median * max(ratios))


def _usd(micros: int) -> str:
    return f"${micros / 1_000_000:.2f}"


def _load(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / _FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _stamp(data: dict[str, Any], name: str) -> float:
    value = data.get(name)
    return float(value) if isinstance(value, int | float) else 0.0


def _covering(budgets: object, project: str | None) -> list[dict[str, Any]]:
    if not isinstance(budgets, list):
        return []
    return [
        budget
        for budget in budgets
        if isinstance(budget, dict)
        and isinstance(budget.get("left_usd_micros"), int)
        and budget.get("project") in (None, project)
    ]


def budget_verdict(
    state_dir: Path,
    response: dict[str, Any] | None,
    project: str | None,
    now: float | None = None,
    mode: str | None = None,
) -> Verdict:
    """The verdict for a task whose cached prediction is `response`."""
    now = time.time() if now is None else now
    mode = (os.environ.get(ENV_BUDGET_MODE, "warn") if mode is None else mode).strip().lower()
    if mode == "off":
        return Verdict()
    data = _load(state_dir)
    fetched, failed = _stamp(data, "fetched"), _stamp(data, "failed")
    refresh = now - max(fetched, failed) > BUDGET_REFRESH_AFTER_SECONDS
    budgets = _covering(data.get("budgets"), project)
    # Unknown is said where it matters: in block mode, or where budgets were known to apply.
    tell = mode == "block" or bool(budgets)
    if failed > fetched:
        note = "budgets unknown: the server could not be reached"
        return Verdict(note if tell else None, refresh=refresh)
    if now - fetched > BUDGET_STATUS_MAX_AGE_SECONDS:
        note = f"budgets unknown: last known {round((now - fetched) / 60)} min ago"
        return Verdict(note if tell and fetched else None, refresh=refresh)
    if not budgets:
        return Verdict(refresh=refresh)
    tight = min(budgets, key=lambda budget: budget["left_usd_micros"])
    left = tight["left_usd_micros"]
    where = f"{_usd(left)} left this {tight.get('period', 'period')}"
    median, p90 = cost_median_p90(response)
    if left <= 0:
        note = f"budget {tight.get('name')} spent: {where}"
        return Verdict(note, note if mode == "block" else None, refresh)
    if mode == "block" and median > left:
        reason = f"median estimate {_usd(median)} is over the {where} (budget {tight.get('name')})"
        return Verdict(reason, reason, refresh)
    if p90 > left:
        return Verdict(f"p90 {_usd(p90)}, {where}", refresh=refresh)
    return Verdict(refresh=refresh)


def refresh_budgets(state_dir: Path, server_url: str, timeout: float) -> bool:
    """Fetch the budget status with the SDK and store it (or that it failed); True if stored."""
    from mosaicstack_telemetry import TelemetryClient, TelemetryConfig

    config = TelemetryConfig(server_url=server_url, request_timeout_seconds=timeout, max_retries=0)
    client = TelemetryClient(config)
    client.refresh_budgets_sync()
    budgets = client.get_budget_status()
    data = _load(state_dir)
    if budgets is None:
        data["failed"] = time.time()
    else:
        data = {"fetched": time.time(), "budgets": [b.model_dump(mode="json") for b in budgets]}
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = state_dir / f"{_FILE}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(data), "utf-8")
    temporary.replace(state_dir / _FILE)
    return budgets is not None
