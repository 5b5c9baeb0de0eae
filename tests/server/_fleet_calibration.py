"""Leave-one-model-out calibration on a fleet shaped like real agents (issue 17).

Six models whose per-task input-token medians differ up to x30 (15k to 450k: one agent
re-sends a whole context on every call), log-normal within a group with sigma 1.0-1.5, one
model holding 40% of the events, four task types of which two are only ever run by two or
three models, two providers (x1.15), three complexities (x0.5, x1, x2). Output tokens the
same way, with factors of their own.

One fold per model: every other model's events go through the server's normal path (a real
SQLite file, `insert_events`, the prediction service's summaries), and are asked for:

- the held-out model's every task type, provider and complexity: level 3;
- a complexity hidden for one other model (level 2), a provider of one complexity hidden
  for another (level 1), and groups seen in full (level 0).

Each answer's p10-p90 is scored against fresh draws from the asked group's true
distribution: coverage, and the Gneiting-Raftery interval score of the central 80% interval
in natural-log tokens, (log p90 - log p10) + 10 (distance outside it), averaged over outcomes
(lower is better; the width alone for an outcome inside).

Shared by `test_predictions_fleet_calibration.py` and `bench/prediction_coverage.py`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import numpy as np

from mosaicstack_telemetry import (
    Complexity,
    Harness,
    Outcome,
    PredictionQuery,
    PredictionResponse,
    Provider,
    TaskCompletionEvent,
    TaskType,
)
from mosaicstack_telemetry_server.predictions.service import PredictionService
from mosaicstack_telemetry_server.storage import open_storage

# model: (input median, input log sd, output median, output log sd, share of events)
MODELS = {
    "agent-light": (15_000.0, 1.0, 2_000.0, 1.0, 0.08),
    "agent-main": (20_000.0, 1.2, 3_000.0, 1.1, 0.40),
    "agent-mid": (45_000.0, 1.3, 4_000.0, 1.2, 0.15),
    "agent-plan": (60_000.0, 1.1, 9_000.0, 1.0, 0.15),
    "agent-loop": (150_000.0, 1.4, 5_000.0, 1.3, 0.12),
    "agent-resend": (450_000.0, 1.5, 12_000.0, 1.5, 0.10),
}
# task type: (factor, the models that run it)
TASK_TYPES = {
    TaskType.IMPLEMENTATION: (1.0, tuple(MODELS)),
    TaskType.DEBUGGING: (0.7, tuple(MODELS)),
    TaskType.CODE_REVIEW: (0.4, ("agent-main", "agent-resend", "agent-plan")),
    TaskType.TESTING: (0.6, ("agent-main", "agent-loop")),
}
PROVIDERS = {Provider.ANTHROPIC: 1.0, Provider.OPENROUTER: 1.15}
COMPLEXITIES = {Complexity.LOW: 0.5, Complexity.MEDIUM: 1.0, Complexity.HIGH: 2.0}
# Events of one fold's history, over every model (about 12,000 less the held-out one's).
EVENTS = 12_000
OUTCOMES = 200  # fresh draws scored per answer
MIN_SAMPLE_SIZE = 5  # the server's default
_ALPHA = 0.2  # the central 80% interval: p10-p90
_MAX_TOKENS = 10_000_000

Group = tuple[TaskType, str, Provider, Complexity]


def groups() -> list[Group]:
    """Every group the fleet runs."""
    return [
        (task, model, provider, complexity)
        for task, (_, models) in TASK_TYPES.items()
        for model in models
        for provider in PROVIDERS
        for complexity in COMPLEXITIES
    ]


def _sizes() -> dict[Group, int]:
    """Events per group: a model's share, spread evenly over its groups."""
    per_model: dict[str, list[Group]] = {}
    for group in groups():
        per_model.setdefault(group[1], []).append(group)
    return {
        g: max(1, round(EVENTS * MODELS[model][4] / len(gs)))
        for model, gs in per_model.items()
        for g in gs
    }


def draw(rng: np.random.Generator, group: Group, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n (input, output) token counts from the group's true distribution."""
    task, model, provider, complexity = group
    in_median, in_sd, out_median, out_sd, _ = MODELS[model]
    factor = TASK_TYPES[task][0] * PROVIDERS[provider] * COMPLEXITIES[complexity]
    inputs = np.rint(in_median * factor * np.exp(rng.normal(0, in_sd, n)))
    outputs = np.rint(out_median * factor * np.exp(rng.normal(0, out_sd, n)))
    # The contract's ceiling on a token count (a far tail of the heaviest model reaches it).
    return np.minimum(inputs, _MAX_TOKENS), np.minimum(outputs, _MAX_TOKENS)


@dataclass(frozen=True, slots=True)
class Fold:
    """One held-out model, and the groups hidden from the history beside it."""

    model: str
    hidden: frozenset[Group]
    asked: tuple[Group, ...]


def folds() -> Iterator[Fold]:
    """One fold per model, in a fixed order."""
    names = list(MODELS)
    for i, model in enumerate(names):
        level2, level1 = names[(i + 1) % len(names)], names[(i + 2) % len(names)]
        task = TaskType.IMPLEMENTATION
        hidden = {g for g in groups() if g[1] == model}
        # level 2: the model never ran high complexity implementation (any provider)
        two = [(task, level2, p, Complexity.HIGH) for p in PROVIDERS]
        # level 1: the model never ran low complexity implementation through openrouter
        one = [(task, level1, Provider.OPENROUTER, Complexity.LOW)]
        hidden |= {*two, *one}
        seen = [g for g in groups() if g not in hidden and g[1] in (level1, level2)][:6]
        asked = sorted(g for g in groups() if g[1] == model) + two + one + seen
        yield Fold(model, frozenset(hidden), tuple(asked))


def _event(group: Group, inputs: float, outputs: float, at: datetime) -> TaskCompletionEvent:
    task, model, provider, complexity = group
    return TaskCompletionEvent(
        instance_id=_INSTANCE,
        timestamp=at,
        task_duration_ms=60_000,
        task_type=task,
        complexity=complexity,
        harness=Harness.CLAUDE_CODE,
        model=model,
        provider=provider,
        estimated_input_tokens=0,
        estimated_output_tokens=0,
        actual_input_tokens=int(inputs),
        actual_output_tokens=int(outputs),
        estimated_cost_usd_micros=0,
        actual_cost_usd_micros=0,
        quality_gate_passed=True,
        context_compactions=0,
        context_rotations=0,
        context_utilization_final=0.5,
        outcome=Outcome.SUCCESS,
        retry_count=0,
    )


_INSTANCE = uuid4()


def history(rng: np.random.Generator, hidden: frozenset[Group]) -> list[TaskCompletionEvent]:
    """The events of every group not hidden, over the last seven days."""
    now = datetime.now(UTC)
    events = []
    for group, n in _sizes().items():
        if group in hidden:
            continue
        inputs, outputs = draw(rng, group, n)
        days = rng.integers(0, 7, n)
        for value_in, value_out, day in zip(inputs, outputs, days, strict=True):
            events.append(_event(group, value_in, value_out, now - timedelta(days=int(day))))
    return events


def answers(
    path: Path, events: Sequence[TaskCompletionEvent], asked: Sequence[Group]
) -> list[PredictionResponse]:
    """The server's answers to `asked`, from a fresh SQLite file holding `events`."""
    storage = open_storage(f"sqlite:///{path}")
    try:
        storage.migrate()
        for start in range(0, len(events), 1000):
            storage.insert_events(events[start : start + 1000])
        service = PredictionService(
            storage, min_sample_size=MIN_SAMPLE_SIZE, stats_max_age_seconds=3600
        )
        service.refresh_stale()
        queries = [
            PredictionQuery(task_type=t, model=m, provider=p, complexity=c) for t, m, p, c in asked
        ]
        return service.predict_batch(queries)
    finally:
        storage.close()


@dataclass
class Score:
    """Coverage and interval score of some answers' p10-p90, per metric."""

    inside: dict[str, int] = field(default_factory=lambda: {"input": 0, "output": 0})
    score: dict[str, float] = field(default_factory=lambda: {"input": 0.0, "output": 0.0})
    outcomes: int = 0
    answers: int = 0

    def add(self, response: PredictionResponse, truth: tuple[np.ndarray, np.ndarray]) -> None:
        """Score one answer against its group's fresh outcomes."""
        prediction = response.prediction
        assert prediction is not None
        for metric, dist, values in (
            ("input", prediction.input_tokens, truth[0]),
            ("output", prediction.output_tokens, truth[1]),
        ):
            self.inside[metric] += int(((values >= dist.p10) & (values <= dist.p90)).sum())
            low, high = np.log(max(dist.p10, 1)), np.log(max(dist.p90, 1))
            y = np.log(np.maximum(values, 1))
            penalty = (np.maximum(low - y, 0) + np.maximum(y - high, 0)) * 2 / _ALPHA
            self.score[metric] += float(((high - low) + penalty).sum())
        self.outcomes += len(truth[0])
        self.answers += 1

    def coverage(self, metric: str) -> float:
        """Share of outcomes inside p10-p90."""
        return self.inside[metric] / self.outcomes

    def interval_score(self, metric: str) -> float:
        """Mean interval score, natural-log tokens."""
        return self.score[metric] / self.outcomes


def evaluate(workdir: Path, seed: int = 17) -> dict[tuple[str, object], Score]:
    """Scores per ("confidence", name), per ("level", number) and, for the held-out model's
    answers, per ("unseen model in", task type) and ("held-out model", model), over every
    fold."""
    rng = np.random.default_rng(seed)
    scores: dict[tuple[str, object], Score] = {}
    for fold in folds():
        events = history(rng, fold.hidden)
        responses = answers(workdir / f"fold-{fold.model}.db", events, fold.asked)
        for group, response in zip(fold.asked, responses, strict=True):
            truth = draw(rng, group, OUTCOMES)
            meta = response.metadata
            keys = [("confidence", meta.confidence), ("level", meta.fallback_level)]
            if group[1] == fold.model:
                keys += [("unseen model in", group[0].value), ("held-out model", fold.model)]
            for key in keys:
                scores.setdefault(key, Score()).add(response, truth)
    return scores
