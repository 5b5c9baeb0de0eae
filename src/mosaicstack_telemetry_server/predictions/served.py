"""The served statistics of one task type, built from its buckets (no event is read).

The chosen buckets (`recency`) are merged per group of every fallback level: exactly, from
the values themselves, for groups of at most `EXACT_LIMIT` events, else from the merged
sketches. Exact values are only loaded for the buckets of such small groups, so memory
stays bounded by the number of groups, not of events. Levels 1-3 are widened afterwards
(`widening`), beside the other task types' groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from mosaicstack_telemetry_server.predictions.buckets import BucketSummary
from mosaicstack_telemetry_server.predictions.group_bases import GroupBases
from mosaicstack_telemetry_server.predictions.levels import FALLBACK_LEVELS, kept_dimensions
from mosaicstack_telemetry_server.predictions.recency import Recency
from mosaicstack_telemetry_server.predictions.sketch import EXACT_LIMIT, MetricSummary
from mosaicstack_telemetry_server.storage.base import (
    WILDCARD,
    BucketKey,
    StatsKey,
    StatsRow,
    Storage,
)

__all__ = ["served_stats", "stats_of"]

_TOKEN_QUANTILES: Final = (0.10, 0.25, 0.50, 0.75, 0.90)
_TOKEN_FIELDS: Final = ("p10", "p25", "median", "p75", "p90")
# What a kept merge of a group covers: its older days, or all of its days.
_OLDER: Final = "older"
_WHOLE: Final = "whole"


def served_stats(
    storage: Storage,
    task_type: str,
    computed_at: datetime,
    recency: Recency,
    *,
    bases: GroupBases | None = None,
    fresh: Mapping[BucketKey, BucketSummary] | None = None,
) -> list[StatsRow]:
    """Every group's statistics at every level, as merged (`widening` then calibrates them).

    Level 0 merges its buckets; each coarser level merges the level-0 groups it holds (a
    dozen summaries rather than hundreds of buckets). `bases` keeps each group's older days
    merged between calls; `fresh` are buckets the caller has just stored (a catch-up's), used
    as they are while their size is still the stored one.
    """
    chosen = dict(storage.window_buckets(task_type, recency.window_days, recency.min_events))
    days: dict[StatsKey, list[BucketKey]] = {}
    for key in chosen:
        days.setdefault(_group_key(key, 0), []).append(key)
    merged = _level0(storage, chosen, days, bases or GroupBases(0), fresh or {})
    out = [StatsRow(g, s.count, stats_of(s), computed_at) for g, s in merged.items()]
    for level in range(1, len(FALLBACK_LEVELS)):
        children: dict[StatsKey, list[BucketSummary]] = {}
        for group, summary in merged.items():
            children.setdefault(_coarser(group, level), []).append(summary)
        for group, parts in children.items():
            count = sum(p.count for p in parts)
            summary = BucketSummary.merge(parts, keep_exact=count <= EXACT_LIMIT)
            out.append(StatsRow(group, summary.count, stats_of(summary), computed_at))
    return out


def _level0(
    storage: Storage,
    chosen: Mapping[BucketKey, int],
    days: Mapping[StatsKey, list[BucketKey]],
    bases: GroupBases,
    fresh: Mapping[BucketKey, BucketSummary],
) -> dict[StatsKey, BucketSummary]:
    """Each level-0 group's summary: its kept older days (or their merge) and its newest day.

    Exact values are read only for groups of at most `EXACT_LIMIT` events (the smallest
    group holding a bucket is its level-0 one), so memory follows the groups, not the events.
    """
    plans = {group: _Plan.of(group, keys, chosen, bases) for group, keys in days.items()}
    wanted = {k: p.small for p in plans.values() for k in p.reads(fresh)}
    rows = storage.get_buckets(sorted((k for k, e in wanted.items() if e), key=_order), exact=True)
    rows.update(
        storage.get_buckets(
            sorted((k for k, e in wanted.items() if not e), key=_order), exact=False
        )
    )
    summaries = {k: BucketSummary.from_row(row) for k, row in rows.items()}
    summaries.update({k: s for k, s in fresh.items() if k not in summaries})
    merged = {}
    for group, plan in plans.items():
        if plan.whole is not None:
            merged[group] = plan.whole  # no bucket of the group changed since last time
            continue
        base = plan.base
        if base is None and plan.older:
            base = BucketSummary.merge([summaries[k] for k in plan.older], keep_exact=plan.small)
            bases.put((group, _OLDER), plan.older, base)
        parts = ([] if base is None else [base]) + [summaries[plan.newest]]
        merged[group] = BucketSummary.merge(parts, keep_exact=plan.small)
        bases.put((group, _WHOLE), plan.every(), merged[group])
    return merged


@dataclass(frozen=True, slots=True)
class _Plan:
    """One level-0 group: its newest day's bucket, its older ones, and their kept merge."""

    newest: BucketKey
    older: dict[BucketKey, int]
    newest_size: int
    small: bool
    base: BucketSummary | None
    whole: BucketSummary | None

    @classmethod
    def of(
        cls,
        group: StatsKey,
        keys: list[BucketKey],
        chosen: Mapping[BucketKey, int],
        bases: GroupBases,
    ) -> _Plan:
        newest = max(keys, key=lambda k: k.day)
        older = {k: chosen[k] for k in keys if k != newest}
        small = sum(chosen[k] for k in keys) <= EXACT_LIMIT
        whole = bases.get((group, _WHOLE), {k: chosen[k] for k in keys}, exact=small)
        base = None
        if whole is None and older:
            base = bases.get((group, _OLDER), older, exact=small)
        return cls(newest, older, chosen[newest], small, base, whole)

    def every(self) -> dict[BucketKey, int]:
        """Every bucket of the group and its size."""
        return {**self.older, self.newest: self.newest_size}

    def reads(self, fresh: Mapping[BucketKey, BucketSummary]) -> list[BucketKey]:
        """The buckets to read: none if the whole group is kept, else the older ones unless
        kept, and the newest unless fresh."""
        if self.whole is not None:
            return []
        keys = list(self.older) if self.base is None else []
        known = fresh.get(self.newest)
        if known is None or known.count != self.newest_size:
            keys.append(self.newest)
        return keys


def stats_of(summary: BucketSummary) -> dict[str, Any]:
    """`PredictionData` as JSON, from the merged summary of a group's events.

    Built as the plain dict `PredictionData(...).model_dump(mode="json")` gives (a test holds
    them equal): validating a model per group was a tenth of a refresh's rebuild.
    """
    metrics = summary.metrics
    return {
        "input_tokens": _distribution(metrics["input_tokens"]),
        "output_tokens": _distribution(metrics["output_tokens"]),
        "cost_usd_micros": {"median": round(_median(metrics["cost_usd_micros"], 0.0))},
        "duration_ms": {"median": round(_median(metrics["duration_ms"], 0.0))},
        "correction_factors": {
            "input": _median(metrics["input_ratio"], 1.0),
            "output": _median(metrics["output_ratio"], 1.0),
        },
        "quality": {
            "gate_pass_rate": summary.gate_passed / summary.count,
            "success_rate": summary.successes / summary.count,
        },
    }


def _distribution(summary: MetricSummary) -> dict[str, int]:
    # round(): ties to even, as numpy.rint, which the exact statistics have always used.
    values = [round(v) for v in summary.percentiles(_TOKEN_QUANTILES)]
    return dict(zip(_TOKEN_FIELDS, values, strict=True))


def _median(summary: MetricSummary, unknown: float) -> float:
    """The median of the known values; `unknown` when the group has none."""
    return summary.percentiles([0.5])[0] if summary.count else unknown


def _group_key(key: BucketKey, level: int) -> StatsKey:
    values = (key.model, key.provider, key.complexity)
    model, provider, complexity = (
        v if keep else WILDCARD for v, keep in zip(values, kept_dimensions(level), strict=True)
    )
    return StatsKey(level, key.task_type, model, provider, complexity)


def _coarser(group: StatsKey, level: int) -> StatsKey:
    values = (group.model, group.provider, group.complexity)
    model, provider, complexity = (
        v if keep else WILDCARD for v, keep in zip(values, kept_dimensions(level), strict=True)
    )
    return StatsKey(level, group.task_type, model, provider, complexity)


def _order(key: BucketKey) -> tuple[str, ...]:
    return (key.model, key.provider, key.complexity, key.day)
