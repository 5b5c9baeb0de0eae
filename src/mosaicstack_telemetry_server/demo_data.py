"""Simulated agent tasks and prediction queries for `mosaic-telemetry demo`.

Pure functions of a `random.Random`, so a seed gives the same workload every time. The
numbers are plausible, not measured: log-normal token counts and durations that grow with
complexity, list prices per model, failures and retries that grow with complexity too.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from mosaicstack_telemetry import (
    Complexity,
    EventBuilder,
    Harness,
    Outcome,
    PredictionQuery,
    Provider,
    QualityGate,
    RepoSizeCategory,
    TaskCompletionEvent,
    TaskType,
)

__all__ = [
    "DEMO_QUERIES",
    "ROUTES",
    "DemoQuery",
    "Route",
    "random_uuid",
    "simulate_events",
]

# Caps of the event schema 1.0 that a long tail could otherwise cross.
_MAX_TOKENS = 10_000_000
_MAX_MICROS = 100_000_000
_MAX_DURATION_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Route:
    """A model reached through one provider and harness, with its list price.

    Prices are dollars per million tokens, which is exactly microdollars per token.
    """

    model: str
    provider: Provider
    harness: Harness
    input_price: float
    output_price: float
    weight: float
    # Local inference is slower; routers add a little latency and margin.
    speed_factor: float = 1.0
    # Complexities this route is used for (routers and small local models get the easy work).
    complexities: tuple[Complexity, ...] = tuple(Complexity)


ROUTES: tuple[Route, ...] = (
    Route("claude-sonnet-4", Provider.ANTHROPIC, Harness.CLAUDE_CODE, 3.0, 15.0, 0.42),
    Route("gpt-4.1", Provider.OPENAI, Harness.OPENCODE, 2.0, 8.0, 0.30),
    Route(
        "claude-sonnet-4",
        Provider.OPENROUTER,
        Harness.KILO_CODE,
        3.15,
        15.75,
        0.13,
        speed_factor=1.1,
        complexities=(Complexity.LOW, Complexity.MEDIUM),
    ),
    Route(
        "qwen2.5-coder:32b",
        Provider.OLLAMA,
        Harness.OLLAMA_LOCAL,
        0.0,
        0.0,
        0.15,
        speed_factor=1.8,
        complexities=(Complexity.LOW, Complexity.MEDIUM),
    ),
)

# Security audits are deliberately never simulated: the demo's "no data" query asks for one.
_TASK_TYPES: tuple[tuple[TaskType, float, float, float], ...] = (
    # task type, weight, input-token factor, output-token factor
    (TaskType.IMPLEMENTATION, 0.32, 1.0, 1.0),
    (TaskType.DEBUGGING, 0.15, 1.3, 0.5),
    (TaskType.TESTING, 0.12, 0.9, 0.9),
    (TaskType.CODE_REVIEW, 0.11, 1.2, 0.3),
    (TaskType.REFACTORING, 0.10, 1.1, 0.9),
    (TaskType.PLANNING, 0.08, 0.8, 0.4),
    (TaskType.DOCUMENTATION, 0.07, 0.6, 0.7),
    (TaskType.CONFIGURATION, 0.05, 0.4, 0.3),
)

_COMPLEXITIES: tuple[tuple[Complexity, float, int, int, float], ...] = (
    # complexity, weight, median input tokens, median duration (ms), failure odds
    (Complexity.LOW, 0.28, 9_000, 45_000, 0.04),
    (Complexity.MEDIUM, 0.40, 28_000, 180_000, 0.09),
    (Complexity.HIGH, 0.22, 75_000, 600_000, 0.17),
    (Complexity.CRITICAL, 0.10, 160_000, 1_500_000, 0.28),
)

_LANGUAGES = ("python", "typescript", "go", "rust", "java", None)
_GATES = (QualityGate.BUILD, QualityGate.LINT, QualityGate.TEST, QualityGate.TYPECHECK)


def random_uuid(rng: random.Random) -> UUID:
    """A version-4 UUID drawn from `rng`, so seeded runs mint the same ids."""
    return UUID(int=rng.getrandbits(128), version=4)


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _pick_route(rng: random.Random, complexity: Complexity) -> Route:
    routes = [route for route in ROUTES if complexity in route.complexities]
    return rng.choices(routes, weights=[route.weight for route in routes])[0]


def _outcome(rng: random.Random, failure_odds: float) -> tuple[Outcome, int]:
    """Final outcome and the retries that preceded it; failures retried more."""
    draw = rng.random()
    if draw < failure_odds:
        return Outcome.FAILURE, rng.randint(1, 4)
    if draw < failure_odds * 1.5:
        return Outcome.TIMEOUT, rng.randint(0, 2)
    if draw < failure_odds * 2.5:
        return Outcome.PARTIAL, rng.randint(0, 3)
    return Outcome.SUCCESS, rng.choices((0, 1, 2), weights=(0.8, 0.15, 0.05))[0]


def _simulate_one(rng: random.Random, builder: EventBuilder, now: datetime) -> TaskCompletionEvent:
    task_type, _, in_factor, out_factor = rng.choices(
        _TASK_TYPES, weights=[row[1] for row in _TASK_TYPES]
    )[0]
    complexity, _, median_in, median_ms, failure_odds = rng.choices(
        _COMPLEXITIES, weights=[row[1] for row in _COMPLEXITIES]
    )[0]
    route = _pick_route(rng, complexity)
    outcome, retries = _outcome(rng, failure_odds)

    # Retries re-read the context, so they cost input tokens and time.
    effort = 1.0 + 0.35 * retries
    actual_in = min(_MAX_TOKENS, round(_lognormal(rng, median_in * in_factor * effort, 0.55)))
    actual_out = min(_MAX_TOKENS, round(actual_in * out_factor * _lognormal(rng, 0.16, 0.4)))
    # Estimates run low, more so for harder tasks: the correction factors show it.
    underestimate = 1.1 + 0.1 * list(Complexity).index(complexity)
    estimated_in = round(actual_in / _lognormal(rng, underestimate, 0.2))
    estimated_out = round(actual_out / _lognormal(rng, underestimate, 0.3))
    actual_cost = round(actual_in * route.input_price + actual_out * route.output_price)
    estimated_cost = round(estimated_in * route.input_price + estimated_out * route.output_price)
    duration = round(_lognormal(rng, median_ms * route.speed_factor * effort, 0.6))

    gates_failed = [] if outcome is Outcome.SUCCESS else rng.sample(_GATES, rng.randint(1, 2))
    compactions = min(100, int(actual_in // 120_000))
    return (
        builder.event_id(random_uuid(rng))
        .timestamp(now - timedelta(seconds=rng.uniform(0, 14 * 86_400)))
        .task_type(task_type)
        .complexity_level(complexity)
        .harness_type(route.harness)
        .model(route.model)
        .provider(route.provider)
        .duration_ms(min(_MAX_DURATION_MS, duration))
        .outcome_value(outcome)
        .retry_count(retries)
        .language(rng.choice(_LANGUAGES))
        .repo_size(rng.choice(tuple(RepoSizeCategory)))
        .tokens(
            estimated_in=min(_MAX_TOKENS, estimated_in),
            estimated_out=min(_MAX_TOKENS, estimated_out),
            actual_in=actual_in,
            actual_out=actual_out,
        )
        .cost(estimated=min(_MAX_MICROS, estimated_cost), actual=min(_MAX_MICROS, actual_cost))
        .quality(passed=not gates_failed, gates_run=list(_GATES), gates_failed=gates_failed)
        .context(
            compactions=compactions,
            rotations=min(50, compactions // 3),
            utilization=min(1.0, round(rng.uniform(0.3, 0.7) + compactions * 0.05, 3)),
        )
        .build()
    )


def simulate_events(
    rng: random.Random,
    instance_ids: Sequence[UUID],
    count: int,
    *,
    now: datetime | None = None,
) -> Iterator[tuple[int, TaskCompletionEvent]]:
    """Yield `count` simulated finished tasks as (index of the instance, event).

    Tasks are spread over the instances round-robin and over the two weeks before `now`.
    """
    if not instance_ids:
        raise ValueError("at least one instance is needed")
    builders = [EventBuilder(instance_id) for instance_id in instance_ids]
    when = now if now is not None else datetime.now(UTC)
    for index in range(count):
        which = index % len(builders)
        yield which, _simulate_one(rng, builders[which], when)


@dataclass(frozen=True, slots=True)
class DemoQuery:
    """A prediction query the demo asks, with what it is meant to show."""

    query: PredictionQuery
    shows: str


def _query(
    task_type: TaskType, model: str, provider: Provider, complexity: Complexity
) -> PredictionQuery:
    return PredictionQuery(
        task_type=task_type, model=model, provider=provider, complexity=complexity
    )


DEMO_QUERIES: tuple[DemoQuery, ...] = (
    DemoQuery(
        _query(TaskType.IMPLEMENTATION, "claude-sonnet-4", Provider.ANTHROPIC, Complexity.MEDIUM),
        "exact match",
    ),
    DemoQuery(
        _query(TaskType.DEBUGGING, "gpt-4.1", Provider.OPENAI, Complexity.MEDIUM),
        "exact match",
    ),
    DemoQuery(
        _query(TaskType.IMPLEMENTATION, "claude-sonnet-4", Provider.OPENROUTER, Complexity.HIGH),
        "same model through another route",
    ),
    DemoQuery(
        _query(TaskType.TESTING, "qwen2.5-coder:32b", Provider.OLLAMA, Complexity.CRITICAL),
        "complexity never seen for this model",
    ),
    DemoQuery(
        _query(TaskType.REFACTORING, "gemini-2.5-pro", Provider.GOOGLE, Complexity.MEDIUM),
        "model nobody reported yet",
    ),
    DemoQuery(
        _query(TaskType.SECURITY_AUDIT, "claude-sonnet-4", Provider.ANTHROPIC, Complexity.HIGH),
        "task type with no data",
    ),
)
