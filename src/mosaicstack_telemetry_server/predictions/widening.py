"""Calibrated intervals at fallback levels 1-3: widen by what the dropped dimensions change.

An answer from level L stands for a group the query is only *part* of: the query's own
(level-0) group had too few events, so its distribution is unknown. The matched events'
percentiles describe the groups that do have data, weighted by how many events each has;
when one model dominates a task type, the level-3 interval is that model's, and a model
with no history that re-sends a 450k-token context falls outside an interval learnt from
agents at 20k-60k (17% p10-p90 coverage measured on real agent runs, issue 17).

Empirical Bayes on log tokens: each level-0 group g has log-median mu_g and a within-group
log spread sigma; the mu_g of the groups a level merges scatter with a between-group
variance tau^2. A level-0 group not seen yet is predicted with a log spread of
sqrt(sigma^2 + tau^2 (1 + 1/k)): its own scatter, how far it may sit from the others, and
how well their centre is known from k of them. Estimates, per metric:

- sigma^2: a family's children's (log p90 - log p10) / 2.563 (the normal p10-p90 width),
  squared, averaged with weights of their sizes: the pooled within-group variance.
- tau^2 of a level, from the level-0 groups of *every task type* the server holds (a model's
  appetite for tokens is a property of its agent, not of one task type, and one task type
  rarely has more than a few models): the between-children variance of mu_g inside each
  family (task type and the level's kept dimensions; each child one vote, whatever its
  size), less the sampling noise of each median (pi/2 sigma^2 / n), pooled over families.
- That estimate is shrunk towards a prior as a scaled-inverse-chi^2 posterior:
  tau^2 = (W tau0^2 + nu v) / (W + nu), with W = `PRIOR_WEIGHT` pseudo-groups and nu the
  independent evidence: the distinct values of the dimension the level drops last (models
  at level 3, complexities at 2, providers at 1), less one. A model's effect repeats in
  every family it appears in, so two models give one degree of freedom, however many task
  types they share: the spread of two or three points cannot shrink the prior away, and
  twenty close models can.
- tau0^2 sums the dropped dimensions' `PRIOR_DIMENSION_SPREAD`. A model (with its harness):
  in real agent fleets token use per task differs by one to two orders of magnitude between
  the lightest and the heaviest of a handful of agents (issue 17: 20k-60k against 450k on
  SWE-bench); the range of five normal draws is about 2.3 sd, so sd = ln(10..100) / 2.3 =
  1.0..2.0, and 1.5 (a x30 range). A complexity: x3 from low to high, sd 0.6; a provider
  (the same model through another route): x1.4 per sd, 0.35.
- A family's own tau^2 is shrunk towards its level's, never below it: (d own + 2 level) /
  (d + 2), with d its children minus one (the one asked about is often the one missing).

The served p10/p25 are then min(own, exp(c - z s)) and p75/p90 max(own, exp(c + z s)), with
z the normal quantiles, s that predictive spread and c the family's centre: the mean, over
the values of the dimension the level drops last, of their log medians. Not the served
median: that is the matched events', so where one model dominates a task type it is that
model's, while a model never seen is as likely to sit near any of the others (an interval
spanning both centres was tried: wider, and a worse interval score on the fleet bench, 7.56
against 7.42). Never narrower than the matched events' percentiles, so the served median
stays inside; the median stays theirs. Level 0 is left as it is (exact quantiles, already
calibrated).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from mosaicstack_telemetry_server.predictions.levels import FALLBACK_LEVELS, kept_dimensions
from mosaicstack_telemetry_server.storage.base import StatsKey, StatsRow

__all__ = [
    "PRIOR_DIMENSION_SPREAD",
    "PRIOR_LOG_SPREAD",
    "PRIOR_WEIGHT",
    "widen_intervals",
    "widen_task_types",
]

# Fewest events for a level-0 group to vote on the spread: its median must mean something.
MIN_CHILD_EVENTS: Final = 10
# Standard normal quantiles of p10, p25, p75, p90.
_Z: Final = {"p10": -1.2816, "p25": -0.6745, "p75": 0.6745, "p90": 1.2816}
_P10_P90_WIDTH: Final = 2 * 1.2816
# Weight (in children) of the level's tau^2 when shrinking one family's own.
_SHRINK_CHILDREN: Final = 2.0
# Prior log sd between groups per dimension (sources in the module's docstring).
PRIOR_DIMENSION_SPREAD: Final = {"model": 1.5, "provider": 0.35, "complexity": 0.6}
_DIMENSIONS: Final = ("model", "provider", "complexity")
# Per level, the dimension it drops last: its distinct values are the independent evidence.
_DROPPED_LAST: Final = {1: 1, 2: 2, 3: 0}
# The prior's worth, in groups: two models cannot outweigh it (one degree of freedom), a dozen can.
PRIOR_WEIGHT: Final = 2.0
_METRICS: Final = ("input_tokens", "output_tokens")


def _prior_tau2(level: int) -> float:
    dropped = (d for d, keep in zip(_DIMENSIONS, kept_dimensions(level), strict=True) if not keep)
    return sum(PRIOR_DIMENSION_SPREAD[d] ** 2 for d in dropped)


# Log spread between groups assumed when the data cannot tell, per level.
PRIOR_LOG_SPREAD: Final = {level: math.sqrt(_prior_tau2(level)) for level in (1, 2, 3)}


@dataclass(frozen=True, slots=True)
class _Child:
    key: StatsKey
    size: int
    log_median: float
    log_spread: float  # within-group sd of log tokens


@dataclass(frozen=True, slots=True)
class _Spread:
    """How to widen one family's row: the predictive log sd and the family's centre."""

    log_sd: float
    centre: float | None  # mean log median over the last-dropped dimension's values


def widen_intervals(rows: Sequence[StatsRow], fleet: Iterable[StatsRow] = ()) -> list[StatsRow]:
    """The rows of one task type with the token intervals of levels 1-3 widened.

    `fleet`: level-0 statistics of the other task types the server holds (rows of `rows`'
    task type, or of other levels, are ignored), for the spread between groups.
    """
    task_types = {row.key.task_type for row in rows}
    others = [r for r in fleet if r.key.level == 0 and r.key.task_type not in task_types]
    return _widened_rows(rows, _fleet_tau2([*rows, *others]))


def widen_task_types(
    merged: Mapping[str, Sequence[StatsRow]], stored_level0: Iterable[StatsRow]
) -> dict[str, list[StatsRow]]:
    """Each task type's rows widened, against the fleet: the level-0 groups of `merged` and
    the stored ones (`Storage.stats_at_level(0)`) of the task types not in it.

    The spread between groups moves slowly (it is a property of the fleet's agents), so a
    task type not rebuilt now keeps the intervals it was stored with until its next rebuild.
    The fleet's spreads are estimated once for all the task types of `merged`.
    """
    fleet = [row for row in stored_level0 if row.key.task_type not in merged]
    fleet += [row for rows in merged.values() for row in rows if row.key.level == 0]
    tau2 = _fleet_tau2(fleet)
    return {task_type: _widened_rows(rows, tau2) for task_type, rows in merged.items()}


def _fleet_tau2(rows: Iterable[StatsRow]) -> dict[tuple[str, int], float]:
    """Each (metric, level)'s between-group variance, from the level-0 rows of `rows`."""
    rows = list(rows)
    out = {}
    for metric in _METRICS:
        children = _children(rows, metric)
        for level in range(1, len(FALLBACK_LEVELS)):
            out[metric, level] = _level_tau2(level, children)
    return out


def _widened_rows(
    rows: Sequence[StatsRow], tau2: Mapping[tuple[str, int], float]
) -> list[StatsRow]:
    out = list(rows)
    for metric in _METRICS:
        own = _children(rows, metric)
        for level in range(1, len(FALLBACK_LEVELS)):
            spreads = _spreads_at(level, own, tau2[metric, level])
            for i, row in enumerate(out):
                if row.key.level == level:
                    spread = spreads.get(_parent_key(row.key, level), spreads[None])
                    out[i] = _widened(row, metric, spread)
    return out


def _children(rows: Iterable[StatsRow], metric: str) -> list[_Child]:
    children = []
    for row in rows:
        if row.key.level != 0 or row.sample_size < MIN_CHILD_EVENTS:
            continue
        dist = row.stats[metric]
        spread = (_log(dist["p90"]) - _log(dist["p10"])) / _P10_P90_WIDTH
        children.append(_Child(row.key, row.sample_size, _log(dist["median"]), spread))
    return children


def _level_tau2(level: int, children: Sequence[_Child]) -> float:
    """The level's between-group variance: the fleet's pooled estimate, shrunk to the prior."""
    between = [(len(f) - 1, _between(f)) for f in _families(level, children).values() if len(f) > 1]
    dof = sum(d for d, _ in between)
    prior = _prior_tau2(level)
    if dof == 0:
        return prior
    estimate = max(0.0, sum(d * v for d, v in between) / dof)
    evidence = min(dof, len(_values(children, _DROPPED_LAST[level])) - 1)
    return (PRIOR_WEIGHT * prior + evidence * estimate) / (PRIOR_WEIGHT + evidence)


def _spreads_at(
    level: int, children: Sequence[_Child], tau2: float
) -> dict[tuple[str, ...] | None, _Spread]:
    """Per family of this task type at `level`, how to widen; key None: a family without
    children that vote (every group below `MIN_CHILD_EVENTS`)."""
    spreads: dict[tuple[str, ...] | None, _Spread] = {
        None: _Spread(math.sqrt(_pooled_within(children) + 2 * tau2), None)
    }
    for key, family in _families(level, children).items():
        own_tau2 = tau2
        if len(family) >= 2:
            d = len(family) - 1
            own = max(0.0, _between(family))
            own_tau2 = max(tau2, (d * own + _SHRINK_CHILDREN * tau2) / (d + _SHRINK_CHILDREN))
        centres = _centres(family, _DROPPED_LAST[level])
        # A new child differs from the centre, itself known from only k children.
        log_sd = math.sqrt(_pooled_within(family) + own_tau2 * (1 + 1 / len(centres)))
        spreads[key[1:]] = _Spread(log_sd, sum(centres) / len(centres))
    return spreads


def _families(level: int, children: Iterable[_Child]) -> dict[tuple[str, ...], list[_Child]]:
    """The children of each group at `level`, keyed by task type and the kept dimensions."""
    families: dict[tuple[str, ...], list[_Child]] = {}
    for child in children:
        key = (child.key.task_type, *_parent_key(child.key, level))
        families.setdefault(key, []).append(child)
    return families


def _centres(family: Sequence[_Child], dimension: int) -> list[float]:
    """Mean log median per value of `dimension` (each model one vote, not each group)."""
    by_value: dict[str, list[float]] = {}
    for child in family:
        by_value.setdefault(_dims(child.key)[dimension], []).append(child.log_median)
    return [sum(v) / len(v) for v in by_value.values()]


def _values(children: Iterable[_Child], dimension: int) -> set[str]:
    return {_dims(c.key)[dimension] for c in children}


def _between(family: Sequence[_Child]) -> float:
    """Variance of the children's log medians, less what sampling noise alone explains."""
    mean = sum(c.log_median for c in family) / len(family)
    variance = sum((c.log_median - mean) ** 2 for c in family) / (len(family) - 1)
    noise = sum(math.pi / 2 * c.log_spread**2 / c.size for c in family) / len(family)
    return variance - noise


def _pooled_within(children: Iterable[_Child]) -> float:
    total = weighted = 0.0
    for child in children:
        total += child.size
        weighted += child.size * child.log_spread**2
    return weighted / total if total else 0.0


def _dims(key: StatsKey) -> tuple[str, str, str]:
    return (key.model, key.provider, key.complexity)


# Per level, the positions in `_dims` it keeps (read once: a refresh asks for thousands).
_KEPT_AT: Final = tuple(
    tuple(i for i, keep in enumerate(kept_dimensions(level)) if keep)
    for level in range(len(FALLBACK_LEVELS))
)


def _parent_key(key: StatsKey, level: int) -> tuple[str, ...]:
    dims = (key.model, key.provider, key.complexity)
    return tuple(dims[i] for i in _KEPT_AT[level])


def _widened(row: StatsRow, metric: str, spread: _Spread) -> StatsRow:
    dist = dict(row.stats[metric])
    centre = _log(dist["median"]) if spread.centre is None else spread.centre
    for name, z in _Z.items():
        bound = round(math.exp(centre + z * spread.log_sd))
        dist[name] = min(dist[name], bound) if z < 0 else max(dist[name], bound)
    return replace(row, stats={**row.stats, metric: dist})


def _log(tokens: int) -> float:
    # A token count of 0 is real (an empty answer); 1 keeps the logarithm finite.
    return math.log(max(tokens, 1))
