"""The served statistics of one task type, built from its buckets (no event is read).

The chosen buckets (`recency`) are merged per group of every fallback level: exactly, from
the values themselves, for groups of at most `EXACT_LIMIT` events, else from the merged
sketches. Exact values are only loaded for the buckets of such small groups, so memory
stays bounded by the number of groups, not of events. Levels 1-3 are then widened
(`widening`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from mosaicstack_telemetry import (
    CorrectionFactors,
    PredictionData,
    QualityPrediction,
    TokenDistribution,
)
from mosaicstack_telemetry_server.predictions.buckets import BucketSummary
from mosaicstack_telemetry_server.predictions.levels import FALLBACK_LEVELS, kept_dimensions
from mosaicstack_telemetry_server.predictions.recency import Recency, choose_buckets
from mosaicstack_telemetry_server.predictions.sketch import EXACT_LIMIT, MetricSummary
from mosaicstack_telemetry_server.predictions.widening import widen_intervals
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


def served_stats(
    storage: Storage, task_type: str, computed_at: datetime, recency: Recency
) -> list[StatsRow]:
    """Every group's statistics at every level, widened, as `replace_stats` takes them.

    Level 0 merges its buckets; each coarser level merges the level-0 groups it holds (a
    dozen summaries rather than hundreds of buckets).
    """
    chosen = choose_buckets(storage.bucket_sizes(task_type), recency)
    days: dict[StatsKey, list[BucketKey]] = {}
    for key in chosen:
        days.setdefault(_group_key(key, 0), []).append(key)
    sizes = {group: sum(chosen[k] for k in keys) for group, keys in days.items()}
    # The smallest group holding a bucket is its level-0 one: only those need exact values.
    small = {k for group, keys in days.items() if sizes[group] <= EXACT_LIMIT for k in keys}
    rows = storage.get_buckets(sorted(small, key=_order), exact=True)
    rows.update(storage.get_buckets(sorted(set(chosen) - small, key=_order), exact=False))
    merged = {
        group: BucketSummary.merge(
            [BucketSummary.from_row(rows[k]) for k in keys], keep_exact=sizes[group] <= EXACT_LIMIT
        )
        for group, keys in days.items()
    }
    out = [StatsRow(g, s.count, stats_of(s), computed_at) for g, s in merged.items()]
    for level in range(1, len(FALLBACK_LEVELS)):
        children: dict[StatsKey, list[BucketSummary]] = {}
        for group, summary in merged.items():
            children.setdefault(_coarser(group, level), []).append(summary)
        for group, parts in children.items():
            count = sum(p.count for p in parts)
            summary = BucketSummary.merge(parts, keep_exact=count <= EXACT_LIMIT)
            out.append(StatsRow(group, summary.count, stats_of(summary), computed_at))
    return widen_intervals(out)


def stats_of(summary: BucketSummary) -> dict[str, Any]:
    """`PredictionData` as JSON, from the merged summary of a group's events."""
    metrics = summary.metrics
    return PredictionData(
        input_tokens=_distribution(metrics["input_tokens"]),
        output_tokens=_distribution(metrics["output_tokens"]),
        cost_usd_micros={"median": round(_median(metrics["cost_usd_micros"], 0.0))},
        duration_ms={"median": round(_median(metrics["duration_ms"], 0.0))},
        correction_factors=CorrectionFactors(
            input=_median(metrics["input_ratio"], 1.0),
            output=_median(metrics["output_ratio"], 1.0),
        ),
        quality=QualityPrediction(
            gate_pass_rate=summary.gate_passed / summary.count,
            success_rate=summary.successes / summary.count,
        ),
    ).model_dump(mode="json")


def _distribution(summary: MetricSummary) -> TokenDistribution:
    # round(): ties to even, as numpy.rint, which the exact statistics have always used.
    values = [round(v) for v in summary.percentiles(_TOKEN_QUANTILES)]
    return TokenDistribution(**dict(zip(_TOKEN_FIELDS, values, strict=True)))


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
