"""`POST /v1/events/batch`: store a batch of task-completion events, each judged on its own.

The body is read by `body.py` and judged by `ingest.py`; this module only ties them to the
request, in Starlette's thread pool because storage calls block.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from mosaicstack_telemetry_server.body import read_body
from mosaicstack_telemetry_server.errors import ApiError
from mosaicstack_telemetry_server.ingest import ingest_body
from mosaicstack_telemetry_server.openapi import BATCH_EVENTS_BODY, EVENTS_RESPONSES
from mosaicstack_telemetry_server.routes.access import authenticated, runtime_of
from mosaicstack_telemetry_server.storage.base import ApiKeyRecord

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/events/batch",
    summary="Submit a batch of task-completion events",
    response_model=None,
    responses=EVENTS_RESPONSES,
    openapi_extra={"requestBody": BATCH_EVENTS_BODY},
)
async def post_events(
    request: Request,
    key: ApiKeyRecord = Depends(authenticated),  # noqa: B008
) -> Response:
    """Store 1 to 100 events; each is judged on its own (see the response's `results`)."""
    runtime = runtime_of(request)
    instance_id = key.instance_id
    if instance_id is None:  # an admin key: it reads every instance, so it writes none
        raise ApiError(403, "an admin key cannot submit events", code="forbidden")
    raw = await read_body(request, runtime.settings.max_body_bytes)

    status, response = await run_in_threadpool(ingest_body, runtime.storage, raw, instance_id)
    request.app.state.metrics.count_batch(response)
    if response.accepted:
        runtime.budget_alerts.wake()  # sets an event: the check runs in its own thread
    # Serialised by pydantic-core in one call (the same JSON as `JSONResponse` of its dump).
    return Response(response.model_dump_json(), status_code=status, media_type="application/json")
