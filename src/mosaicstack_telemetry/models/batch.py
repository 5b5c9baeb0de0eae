"""Envelopes of the batch endpoints."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from mosaicstack_telemetry.models.events import TaskCompletionEvent
from mosaicstack_telemetry.models.predictions import PredictionQuery, PredictionResponse

__all__ = [
    "MAX_BATCH_SIZE",
    "BatchEventRequest",
    "BatchEventResponse",
    "BatchEventResult",
    "BatchPredictionRequest",
    "BatchPredictionResponse",
]

MAX_BATCH_SIZE = 100


class BatchEventRequest(BaseModel):
    """Body of `POST /v1/events/batch`: 1 to 100 events."""

    # Built on first use: most imports of the SDK never validate these (import cost).
    model_config = ConfigDict(defer_build=True)

    events: Annotated[list[TaskCompletionEvent], Field(min_length=1, max_length=MAX_BATCH_SIZE)]


class BatchEventResult(BaseModel):
    """The verdict on one event of a batch."""

    # Built on first use: most imports of the SDK never validate these (import cost).
    model_config = ConfigDict(defer_build=True)

    event_id: UUID | None
    status: Literal["accepted", "rejected"]
    error: str | None = None


class BatchEventResponse(BaseModel):
    """Body of the answer to `POST /v1/events/batch`."""

    # Built on first use: most imports of the SDK never validate these (import cost).
    model_config = ConfigDict(defer_build=True)

    accepted: int
    rejected: int
    results: list[BatchEventResult]


class BatchPredictionRequest(BaseModel):
    """Body of `POST /v1/predictions/batch`: 1 to 100 queries."""

    # Built on first use: most imports of the SDK never validate these (import cost).
    model_config = ConfigDict(defer_build=True)

    queries: Annotated[list[PredictionQuery], Field(min_length=1, max_length=MAX_BATCH_SIZE)]


class BatchPredictionResponse(BaseModel):
    """Body of the answer to `POST /v1/predictions/batch`: one result per query, in order."""

    # Built on first use: most imports of the SDK never validate these (import cost).
    model_config = ConfigDict(defer_build=True)

    results: list[PredictionResponse]
