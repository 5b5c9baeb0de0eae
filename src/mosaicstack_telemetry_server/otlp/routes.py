"""`POST /v1/logs`, `/v1/metrics` and `/v1/traces`: OTLP/HTTP on its standard paths.

Logs are read for the calls of Claude Code, Codex and Gemini CLI (`receive.py`); metrics and
traces are answered 200 and dropped, with a `partial_success` that says so, so that an
exporter pointed at the server does not log an error every minute. (The per-call cost is in
the logs; adding the `claude_code.cost.usage` metric would count it twice.) Keys, limits and
errors are those of `POST /v1/events/batch`.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from starlette.responses import Response

from mosaicstack_telemetry_server.body import read_body
from mosaicstack_telemetry_server.errors import ApiError
from mosaicstack_telemetry_server.openapi import OTLP_BODY, OTLP_RESPONSES
from mosaicstack_telemetry_server.otlp.receive import Received, receive
from mosaicstack_telemetry_server.otlp.wire import decode, encode, media_of
from mosaicstack_telemetry_server.routes.access import authenticated, runtime_of
from mosaicstack_telemetry_server.storage.base import ApiKeyRecord

__all__ = ["router"]

router = APIRouter()

_DROPPED = (
    "{} are not stored by this server: it reads the per-call cost and tokens from the logs "
    "(OTEL_{}_EXPORTER=none stops sending them)"
)


async def _instance_body(request: Request, key: ApiKeyRecord) -> tuple[UUID, bytes]:
    """The key's instance and the body (403 for an admin key, 415 for another media type)."""
    if key.instance_id is None:  # an admin key: it reads every instance, so it writes none
        raise ApiError(403, "an admin key cannot submit telemetry", code="forbidden")
    media_of(request)
    limit = runtime_of(request).settings.max_body_bytes
    return key.instance_id, await read_body(request, limit, json_only=False)


@router.post(
    "/v1/logs",
    summary="OTLP/HTTP logs: agents' API calls become tasks",
    response_model=None,
    responses=OTLP_RESPONSES,
    openapi_extra={"requestBody": OTLP_BODY},
)
async def post_logs(
    request: Request,
    key: ApiKeyRecord = Depends(authenticated),  # noqa: B008
) -> Response:
    """Read Claude Code, Codex and Gemini CLI calls from an `ExportLogsServiceRequest`."""
    instance_id, raw = await _instance_body(request, key)
    media = media_of(request)
    runtime = runtime_of(request)

    def decode_and_receive() -> Received:
        return receive(runtime.storage, instance_id, decode(raw, media, ExportLogsServiceRequest()))

    received = await run_in_threadpool(decode_and_receive)
    request.app.state.metrics.count_otlp(received)
    response = ExportLogsServiceResponse()
    if received.rejected:
        response.partial_success.rejected_log_records = received.rejected
        response.partial_success.error_message = received.message()
    return encode(response, media)


@router.post(
    "/v1/metrics",
    summary="OTLP/HTTP metrics: answered, not stored",
    response_model=None,
    responses=OTLP_RESPONSES,
    openapi_extra={"requestBody": OTLP_BODY},
)
async def post_metrics(
    request: Request,
    key: ApiKeyRecord = Depends(authenticated),  # noqa: B008
) -> Response:
    """Accept and drop an `ExportMetricsServiceRequest` (`partial_success` says so)."""
    await _instance_body(request, key)
    response = ExportMetricsServiceResponse()
    response.partial_success.error_message = _DROPPED.format("metrics", "METRICS")
    return encode(response, media_of(request))


@router.post(
    "/v1/traces",
    summary="OTLP/HTTP traces: answered, not stored",
    response_model=None,
    responses=OTLP_RESPONSES,
    openapi_extra={"requestBody": OTLP_BODY},
)
async def post_traces(
    request: Request,
    key: ApiKeyRecord = Depends(authenticated),  # noqa: B008
) -> Response:
    """Accept and drop an `ExportTraceServiceRequest` (`partial_success` says so)."""
    await _instance_body(request, key)
    response = ExportTraceServiceResponse()
    response.partial_success.error_message = _DROPPED.format("traces", "TRACES")
    return encode(response, media_of(request))
