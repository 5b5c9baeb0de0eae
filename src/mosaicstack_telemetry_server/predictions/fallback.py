"""The fallback chain: which precomputed group answers a query, and how sure the answer is.

Pure: a query and the statistics found for its four chain keys in, a `PredictionResponse`
out, exactly as the contract's `POST /v1/predictions/batch` section describes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from mosaicstack_telemetry import (
    PredictionData,
    PredictionMetadata,
    PredictionQuery,
    PredictionResponse,
)
from mosaicstack_telemetry_server.predictions.levels import (
    DIMENSIONS,
    FALLBACK_LEVELS,
    kept_dimensions,
)
from mosaicstack_telemetry_server.storage.base import WILDCARD, StatsKey, StatsRow

__all__ = [
    "DIMENSIONS",
    "NO_DATA_LEVEL",
    "build_response",
    "chain_keys",
    "confidence_for",
]

NO_DATA_LEVEL: Final = -1

# Per level: a name for its group, and what dropping means.
_GROUP_NAMES: Final = ("exact match", "without provider", "model only", "task type only")
_DROPPED: Final = (
    "",
    "dropped provider (same model through another route)",
    "dropped provider and complexity (same model at any complexity, through any route)",
    "dropped model, provider and complexity (every task of this type)",
)

# Per level: whether it keeps model, provider, complexity (read once: chain_keys is hot).
_KEPT: Final = tuple(kept_dimensions(level) for level in range(len(FALLBACK_LEVELS)))

# Confidence thresholds: (highest level, fewest events) for "high", then "medium".
_HIGH: Final = (1, 100)
_MEDIUM: Final = (2, 30)


def chain_keys(query: PredictionQuery) -> list[StatsKey]:
    """The stats keys of the query's groups, level 0 to 3 (dropped dimensions are WILDCARD)."""
    task_type, model = query.task_type.value, query.model
    provider, complexity = query.provider.value, query.complexity.value
    return [
        StatsKey(
            level,
            task_type,
            model if keep_model else WILDCARD,
            provider if keep_provider else WILDCARD,
            complexity if keep_complexity else WILDCARD,
        )
        for level, (keep_model, keep_provider, keep_complexity) in enumerate(_KEPT)
    ]


def confidence_for(level: int, sample_size: int) -> str:
    """`high` (level <= 1, n >= 100), `medium` (level <= 2, n >= 30), `low`, or `none`."""
    if level == NO_DATA_LEVEL or sample_size <= 0:
        return "none"
    if level <= _HIGH[0] and sample_size >= _HIGH[1]:
        return "high"
    if level <= _MEDIUM[0] and sample_size >= _MEDIUM[1]:
        return "medium"
    return "low"


def build_response(
    query: PredictionQuery,
    found: Mapping[StatsKey, StatsRow],
    *,
    min_sample_size: int,
    cache_hit: bool,
    catching_up: bool = False,
) -> PredictionResponse:
    """Answer a query from the first chain level with at least `min_sample_size` events.

    `found` holds the stored statistics of (some of) the query's `chain_keys`; a missing key
    counts as a group without events. `catching_up` says the statistics do not include a
    backlog of new events yet (a bulk load, a first start): the note says so.
    """
    keys = chain_keys(query)
    sizes = [found[key].sample_size if key in found else 0 for key in keys]
    level = next((lv for lv, n in enumerate(sizes) if n >= min_sample_size), NO_DATA_LEVEL)
    if level == NO_DATA_LEVEL:
        return PredictionResponse(
            prediction=None,
            metadata=PredictionMetadata(
                sample_size=0,
                fallback_level=NO_DATA_LEVEL,
                confidence=confidence_for(NO_DATA_LEVEL, 0),
                last_updated=None,
                dimensions_matched=dict.fromkeys(DIMENSIONS),
                fallback_note=_with_backlog(_no_data_note(sizes, min_sample_size), catching_up),
                cache_hit=cache_hit,
            ),
        )
    row = found[keys[level]]
    values = _query_values(query)
    kept = FALLBACK_LEVELS[level]
    return PredictionResponse(
        prediction=PredictionData.model_validate(row.stats),
        metadata=PredictionMetadata(
            sample_size=row.sample_size,
            fallback_level=level,
            confidence=confidence_for(level, row.sample_size),
            last_updated=_utc(row.computed_at),
            dimensions_matched={d: values[d] if d in kept else None for d in DIMENSIONS},
            fallback_note=_with_backlog(_fallback_note(level, sizes, min_sample_size), catching_up),
            cache_hit=cache_hit,
        ),
    )


def _query_values(query: PredictionQuery) -> dict[str, str]:
    return {
        "task_type": query.task_type.value,
        "model": query.model,
        "provider": query.provider.value,
        "complexity": query.complexity.value,
    }


def _counts(sizes: list[int], levels: range) -> str:
    return ", ".join(f"{_GROUP_NAMES[lv]}: {sizes[lv]}" for lv in levels)


def _fallback_note(level: int, sizes: list[int], min_sample_size: int) -> str | None:
    if level == 0:
        return None
    closer = "exact" if level == 1 else "closer"
    return (
        f"No {closer} match with at least {min_sample_size} events "
        f"({_counts(sizes, range(level))}); {_DROPPED[level]}"
    )


def _no_data_note(sizes: list[int], min_sample_size: int) -> str:
    return (
        f"No level of the fallback chain has at least {min_sample_size} events "
        f"({_counts(sizes, range(len(sizes)))})"
    )


_BACKLOG_NOTE: Final = (
    "Statistics are still summarizing a backlog of new events; this answer does not "
    "include all of them yet"
)


def _with_backlog(note: str | None, catching_up: bool) -> str | None:
    if not catching_up:
        return note
    return _BACKLOG_NOTE if note is None else f"{note}. {_BACKLOG_NOTE}"


def _utc(moment: datetime) -> datetime:
    # Backends may hand back naive datetimes; the stored times are UTC by contract.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
