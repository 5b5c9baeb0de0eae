"""Pydantic models whose JSON is the Telemetry API v1 wire form."""

from mosaicstack_telemetry.models.batch import (
    MAX_BATCH_SIZE,
    BatchEventRequest,
    BatchEventResponse,
    BatchEventResult,
    BatchPredictionRequest,
    BatchPredictionResponse,
)
from mosaicstack_telemetry.models.events import TaskCompletionEvent
from mosaicstack_telemetry.models.predictions import (
    CorrectionFactors,
    PredictionData,
    PredictionMetadata,
    PredictionQuery,
    PredictionResponse,
    QualityPrediction,
    TokenDistribution,
)

__all__ = [
    "MAX_BATCH_SIZE",
    "BatchEventRequest",
    "BatchEventResponse",
    "BatchEventResult",
    "BatchPredictionRequest",
    "BatchPredictionResponse",
    "CorrectionFactors",
    "PredictionData",
    "PredictionMetadata",
    "PredictionQuery",
    "PredictionResponse",
    "QualityPrediction",
    "TaskCompletionEvent",
    "TokenDistribution",
]
