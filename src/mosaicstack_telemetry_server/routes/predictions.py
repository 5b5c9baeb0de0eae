"""`POST /v1/predictions/batch`: predicted costs of tasks, one result per query, in order.

Any invalid query fails the whole request (422); the answers come from the prediction
service the runtime keeps refreshed (`predictions/service.py`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
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
) -> Response:
    """Predictions over every instance's events, one per query, in order."""
    runtime = runtime_of(request)
    raw = await read_body(request, runtime.settings.max_body_bytes)

    def predict() -> bytes:
        body: Any = decode_json(raw)
        try:
            batch = BatchPredictionRequest.model_validate(body)
        except ValidationError as exc:
            errors = exc.errors(include_input=False, include_url=False)
            raise invalid_request(errors) from None
        results = runtime.predictions.predict_batch(batch.queries)
        # Straight to JSON bytes in pydantic-core, in the worker thread: a dict of 100 answers
        # dumped and then encoded again by `json` was a fifth of a warm request.
        return BatchPredictionResponse(results=results).model_dump_json().encode()

    return Response(await run_in_threadpool(predict), media_type="application/json")
