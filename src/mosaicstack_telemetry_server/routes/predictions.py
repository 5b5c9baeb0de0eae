"""`POST /v1/predictions/batch`: predicted costs of tasks, one result per query, in order.

Any invalid query fails the whole request (422); the answers come from the prediction
service the runtime keeps refreshed (`predictions/service.py`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from mosaicstack_telemetry.models import BatchPredictionRequest, BatchPredictionResponse
from mosaicstack_telemetry_server.body import decode_json, read_body
from mosaicstack_telemetry_server.errors import invalid_request
from mosaicstack_telemetry_server.openapi import BATCH_PREDICTIONS_BODY, PREDICTIONS_RESPONSES
from mosaicstack_telemetry_server.routes.access import authenticated, runtime_of
from mosaicstack_telemetry_server.storage.base import ApiKeyRecord

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/predictions/batch",
    summary="Predict the cost of tasks",
    response_model=None,
    responses=PREDICTIONS_RESPONSES,
    openapi_extra={"requestBody": BATCH_PREDICTIONS_BODY},
)
async def post_predictions(
    request: Request,
    _key: ApiKeyRecord = Depends(authenticated),  # noqa: B008
) -> JSONResponse:
    """Predictions over every instance's events, one per query, in order."""
    runtime = runtime_of(request)
    raw = await read_body(request, runtime.settings.max_body_bytes)

    def predict() -> BatchPredictionResponse:
        body: Any = decode_json(raw)
        try:
            batch = BatchPredictionRequest.model_validate(body)
        except ValidationError as exc:
            errors = exc.errors(include_input=False, include_url=False)
            raise invalid_request(errors) from None
        return BatchPredictionResponse(results=runtime.predictions.predict_batch(batch.queries))

    response = await run_in_threadpool(predict)
    return JSONResponse(response.model_dump(mode="json"))
