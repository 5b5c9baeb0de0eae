"""Prediction queries and the server's answers to them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from mosaicstack_telemetry.enums import Complexity, Provider, TaskType

__all__ = [
    "CorrectionFactors",
    "PredictionData",
    "PredictionMetadata",
    "PredictionQuery",
    "PredictionResponse",
    "QualityPrediction",
    "TokenDistribution",
]


class PredictionQuery(BaseModel):
    """The four dimensions a prediction is asked for."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    task_type: TaskType
    model: Annotated[
        str, Field(strict=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")
    ]
    provider: Provider
    complexity: Complexity


class TokenDistribution(BaseModel):
    """Percentiles of a token count."""

    # Built on first use: most imports of the SDK never validate these (import cost).
    model_config = ConfigDict(defer_build=True)

    p10: int
    p25: int
    median: int
    p75: int
    p90: int


class CorrectionFactors(BaseModel):
    """Median ratio of actual to estimated tokens (>1.0 means estimates run low)."""

    # Built on first use: most imports of the SDK never validate these (import cost).
    model_config = ConfigDict(defer_build=True)

    input: float
    output: float


class QualityPrediction(BaseModel):
    """Share of tasks that passed their gates and that succeeded."""

    # Built on first use: most imports of the SDK never validate these (import cost).
    model_config = ConfigDict(defer_build=True)

    gate_pass_rate: float
    success_rate: float


class PredictionData(BaseModel):
    """What a task of the queried kind is likely to cost."""

    # Built on first use: most imports of the SDK never validate these (import cost).
    model_config = ConfigDict(defer_build=True)

    input_tokens: TokenDistribution
    output_tokens: TokenDistribution
    cost_usd_micros: dict[str, int]
    duration_ms: dict[str, int]
    correction_factors: CorrectionFactors
    quality: QualityPrediction


class PredictionMetadata(BaseModel):
    """How a prediction was made and how much data stands behind it."""

    # Built on first use: most imports of the SDK never validate these (import cost).
    model_config = ConfigDict(defer_build=True)

    sample_size: int
    fallback_level: int
    confidence: str
    last_updated: datetime | None = None
    dimensions_matched: dict[str, str | None] | None = None
    fallback_note: str | None = None
    cache_hit: bool = False


class PredictionResponse(BaseModel):
    """One prediction, or `prediction=None` when no data matches."""

    # Built on first use: most imports of the SDK never validate these (import cost).
    model_config = ConfigDict(defer_build=True)

    prediction: PredictionData | None = None
    metadata: PredictionMetadata
