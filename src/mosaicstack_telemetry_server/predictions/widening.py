"""Calibrated intervals at fallback levels 1-3: widen by what the dropped dimensions change.

An answer from level L stands for a group the query is only *part* of: the query's own
(level-0) group had too few events, so its distribution is unknown. The matched events'
percentiles describe the groups that do have data, weighted by how many events each has;
when one model dominates a task type, the level-3 interval is that model's, and a model
with no history that uses 16x the tokens falls outside it (1% coverage measured).

Empirical Bayes on log tokens: each level-0 group g has log-median mu_g and a within-group
log spread sigma; inside a parent group, the mu_g of its children scatter with a variance
tau^2. A level-0 group not seen yet is then predicted by the parent's median with a log
spread of sqrt(sigma^2 + tau^2). Estimates, per task type and metric:

- sigma^2: the children's (log p90 - log p10) / 2.563 (the normal p10-p90 width), squared,
  averaged with weights of their sizes: the pooled within-group variance.
- tau^2 of a level: the between-children variance of mu_g (each child one vote, whatever
  its size: a new group is a new child, not a new event), minus the sampling noise of each
  median (pi/2 sigma^2 / n), pooled over the parents of that level that have >= 2 children.
  A parent's own tau^2 is shrunk towards its level's: (d * own + K * level) / (d + K), with
  d its children minus one and K = 2.
- No parent with two children (one model ever seen): a documented prior, `PRIOR_LOG_SPREAD`.

The served p10/p25 are then min(own, median * exp(-z s')) and p75/p90 max(own, median *
exp(+z s')), with z the normal quantiles: never narrower than the matched events'
percentiles, and the median stays the matched events' median. Level 0 is left as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from mosaicstack_telemetry_server.predictions.levels import FALLBACK_LEVELS, kept_dimensions
from mosaicstack_telemetry_server.storage.base import StatsKey, StatsRow

__all__ = ["PRIOR_LOG_SPREAD", "widen_intervals"]

# Fewest events for a level-0 group to vote on the spread: its median must mean something.
MIN_CHILD_EVENTS: Final = 10
# Standard normal quantiles of p10, p25, p75, p90.
_Z: Final = {"p10": -1.2816, "p25": -0.6745, "p75": 0.6745, "p90": 1.2816}
_P10_P90_WIDTH: Final = 2 * 1.2816
# Weight (in children) of the level's pooled tau^2 when shrinking one parent's own.
_SHRINK_CHILDREN: Final = 2.0
# Log spread between groups assumed when the data cannot tell (one child everywhere): a
# provider changes little (x1.4 per sd), a complexity or a model a lot (x2, x2.7).
PRIOR_LOG_SPREAD: Final = {1: 0.35, 2: 0.7, 3: 1.0}
_METRICS: Final = ("input_tokens", "output_tokens")


@dataclass(frozen=True, slots=True)
class _Child:
    key: StatsKey
    size: int
    log_median: float
    log_spread: float  # within-group sd of log tokens


def widen_intervals(rows: Sequence[StatsRow]) -> list[StatsRow]:
    """The rows of one task type with the token intervals of levels 1-3 widened."""
    out = list(rows)
    for metric in _METRICS:
        children = [c for c in (_child(r, metric) for r in rows) if c is not None]
        for level in range(1, len(FALLBACK_LEVELS)):
            spreads = _spreads_at(level, children)
            for i, row in enumerate(out):
                if row.key.level == level:
                    spread = spreads.get(_parent_key(row.key, level), spreads[None])
                    out[i] = _widened(row, metric, spread)
    return out


def _child(row: StatsRow, metric: str) -> _Child | None:
    if row.key.level != 0 or row.sample_size < MIN_CHILD_EVENTS:
        return None
    dist = row.stats[metric]
    spread = (_log(dist["p90"]) - _log(dist["p10"])) / _P10_P90_WIDTH
    return _Child(row.key, row.sample_size, _log(dist["median"]), spread)


def _spreads_at(level: int, children: Sequence[_Child]) -> dict[Any, float]:
    """Predictive log spread per parent key at `level`; key None: the level's own."""
    families: dict[tuple[str, ...], list[_Child]] = {}
    for child in children:
        families.setdefault(_parent_key(child.key, level), []).append(child)
    sigma2 = _pooled_within(children)
    between = [(len(f) - 1, _between(f)) for f in families.values() if len(f) >= 2]
    dof = sum(d for d, _ in between)
    if dof > 0:
        tau2 = max(0.0, sum(d * v for d, v in between) / dof)
    else:
        tau2 = PRIOR_LOG_SPREAD[level] ** 2
    spreads: dict[Any, float] = {None: math.sqrt(sigma2 + tau2)}
    for key, family in families.items():
        own_sigma2 = _pooled_within(family)
        own_tau2 = tau2
        if len(family) >= 2:
            d = len(family) - 1
            own = max(0.0, _between(family))
            # Never below the level's: a family's own few children rarely show every
            # value of the dropped dimensions (the one asked about is often the one missing).
            own_tau2 = max(tau2, (d * own + _SHRINK_CHILDREN * tau2) / (d + _SHRINK_CHILDREN))
        # A new child differs from the parent's centre, itself known from only k children.
        spreads[key] = math.sqrt(own_sigma2 + own_tau2 * (1 + 1 / max(len(family), 1)))
    return spreads


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


def _parent_key(key: StatsKey, level: int) -> tuple[str, ...]:
    values = (key.model, key.provider, key.complexity)
    return tuple(v for v, keep in zip(values, kept_dimensions(level), strict=True) if keep)


def _widened(row: StatsRow, metric: str, spread: float) -> StatsRow:
    dist = dict(row.stats[metric])
    median = dist["median"]
    for name, z in _Z.items():
        bound = round(median * math.exp(z * spread))
        dist[name] = min(dist[name], bound) if z < 0 else max(dist[name], bound)
    return replace(row, stats={**row.stats, metric: dist})


def _log(tokens: int) -> float:
    # A token count of 0 is real (an empty answer); 1 keeps the logarithm finite.
    return math.log(max(tokens, 1))
