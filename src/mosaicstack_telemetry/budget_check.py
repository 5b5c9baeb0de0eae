"""Before a task: its estimate against what is left of the budgets covering it.

A prediction carries the median cost only, with percentiles of the input and output tokens.
The p90 of the cost is derived from them: the median cost scaled by the larger of the two
ratios p90/median (input tokens, output tokens), never below the median. Cost is about linear
in tokens, so the ratio carries over; taking the larger ratio errs on the side of warning.

The rule (the Claude Code hook applies the same one, see `mosaicstack_telemetry_agents`):
- `block` when the budget is spent (nothing left), or, in block mode, the median estimate is
  over what is left;
- `warn` when the p90 estimate is over what is left;
- `ok` otherwise. The tightest budget (least left) decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mosaicstack_telemetry.models.budgets import BudgetStatus
from mosaicstack_telemetry.models.predictions import PredictionResponse

__all__ = ["BudgetCheck", "check_budgets", "estimated_cost_p90"]

Action = Literal["ok", "warn", "block"]


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """What the budgets say about a task: `ok`, `warn` or `block`, and why."""

    action: Action
    budget: str | None = None
    left_usd_micros: int | None = None
    median_usd_micros: int = 0
    p90_usd_micros: int = 0
    message: str = ""


def estimated_cost_p90(response: PredictionResponse | None) -> tuple[int, int]:
    """(median, p90) of a prediction's cost in microdollars; (0, 0) without a prediction."""
    prediction = response.prediction if response is not None else None
    if prediction is None:
        return 0, 0
    median = prediction.cost_usd_micros.get("median", 0)
    ratios = [1.0]
    for tokens in (prediction.input_tokens, prediction.output_tokens):
        if tokens.median > 0:
            ratios.append(tokens.p90 / tokens.median)
    return median, round(median * max(ratios))


def check_budgets(
    budgets: Sequence[BudgetStatus],
    median: int,
    p90: int,
    *,
    block: bool = False,
    project: str | None = None,
) -> BudgetCheck:
    """The rule of this module's docstring, over the budgets covering the task: those of no
    project, and those of the task's `project`."""
    budgets = [budget for budget in budgets if budget.project in (None, project)]
    if not budgets:
        return BudgetCheck("ok", median_usd_micros=median, p90_usd_micros=p90)
    tight = min(budgets, key=lambda budget: budget.left_usd_micros)
    left = tight.left_usd_micros
    where = f"${left / 1_000_000:.2f} left this {tight.period} (budget {tight.name})"
    if left <= 0:
        action: Action
        action, message = "block", f"budget spent: {where}"
    elif block and median > left:
        action, message = "block", f"median estimate ${median / 1_000_000:.2f} is over {where}"
    elif p90 > left:
        action, message = "warn", f"p90 ${p90 / 1_000_000:.2f}, {where}"
    else:
        action, message = "ok", ""
    return BudgetCheck(action, tight.name, left, median, p90, message)
