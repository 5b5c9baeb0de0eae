"""The HTTP app: routes of Telemetry API v1 and nothing else.

Bodies are read by `body.py`, keys checked by `auth.py`, batches judged by `ingest.py`, errors
shaped by `errors.py`; storage calls (blocking) run in Starlette's thread pool, never on the
event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from mosaicstack_telemetry import (
    API_VERSION,
    SCHEMA_VERSION,
    BatchEventResponse,
)
from mosaicstack_telemetry.models import BatchPredictionRequest, BatchPredictionResponse
from mosaicstack_telemetry_server import __version__
from mosaicstack_telemetry_server.access_log import AccessLogMiddleware
from mosaicstack_telemetry_server.body import decode_json, read_body
from mosaicstack_telemetry_server.dashboard import install_dashboard
from mosaicstack_telemetry_server.errors import (
    RETRY_AFTER_UNAVAILABLE,
    ApiError,
    install_error_handlers,
    invalid_request,
)
from mosaicstack_telemetry_server.ingest import ingest_batch, parse_envelope
from mosaicstack_telemetry_server.metrics import Metrics, MetricsMiddleware
from mosaicstack_telemetry_server.openapi import (
    BATCH_EVENTS_BODY,
    BATCH_PREDICTIONS_BODY,
    RETRY_AFTER_HEADER,
    HealthResponse,
    error_responses,
    install_openapi,
)
from mosaicstack_telemetry_server.probes import router as probes_router
from mosaicstack_telemetry_server.proxies import TrustedProxies, parse_trusted_proxies
from mosaicstack_telemetry_server.ratelimit import retry_after_seconds
from mosaicstack_telemetry_server.runtime import Runtime
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import Storage, open_storage
from mosaicstack_telemetry_server.storage.base import ApiKeyRecord
from mosaicstack_telemetry_server.usage import UsageReport, parse_usage_query, query_usage

__all__ = ["create_app"]

# Declared for the OpenAPI document (bearer scheme); the header itself is checked by auth.py,
# so every failure gets the same 401 body.
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <64-hex API key>`")


_FROM = (
    "ISO 8601 date-time with an offset, or a date (00:00 UTC); inclusive. "
    "Default: `to` minus 30 days."
)
_TO = "ISO 8601 date-time with an offset, or a date (00:00 UTC); exclusive. Default: now."
_GROUP_BY = (
    "Comma-separated, at most 3 of day, week (ISO), month, task_type, complexity, harness, "
    "model, provider, outcome, instance_id (admin keys only)."
)
_INSTANCE_ID = "Admin keys only: narrow to one instance (an instance key gets 403)."


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _authenticated(
    request: Request,
    _credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
) -> ApiKeyRecord:
    """The caller's active key (401 otherwise), within its rate (429 otherwise).

    Failed authentications are limited per client address: once its bucket is empty, a key
    that would need a database lookup is refused with 429 before the lookup.
    """
    runtime = _runtime(request)
    authorization = request.headers.get("authorization")
    # The client's address: the TCP peer, or what a trusted proxy says it is (proxies.py).
    address = request.client.host if request.client else "unknown"
    if not runtime.ready:  # only until the first successful migration: skip the thread hop
        await run_in_threadpool(runtime.ensure_ready)
    try:
        # Most requests come with a recently verified key: answer those without a thread hop.
        record = runtime.verifier.verify_cached(authorization)
        if record is None:
            _within_rate(runtime.auth_failures.peek(address), "failed authentications")
            record = await run_in_threadpool(runtime.verifier.verify, authorization)
    except ApiError as exc:
        if exc.status == 401:
            runtime.auth_failures.acquire(address)
        raise
    request.state.key_id = record.key_id
    _within_rate(runtime.limiter.acquire(record.key_id), "this API key")
    return record


def _within_rate(wait: float, what: str) -> None:
    if wait > 0:
        raise ApiError(
            429,
            f"rate limit exceeded for {what}",
            code="rate_limited",
            headers={"Retry-After": str(retry_after_seconds(wait))},
        )


def create_app(settings: ServerSettings, storage: Storage | None = None) -> FastAPI:
    """The Telemetry API v1 app; opens storage from `settings.database_url` unless given one.

    Startup migrates the schema and starts the prediction refresher; shutdown stops it and
    closes storage this app opened (storage passed in stays open: the caller owns it).
    """
    settings.validate()  # fields may have been changed since construction

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = storage is None
        store = (
            storage
            if storage is not None
            else await run_in_threadpool(open_storage, settings.database_url)
        )
        runtime = Runtime(settings=settings, storage=store, owns_storage=opened)
        await run_in_threadpool(runtime.start)
        app.state.runtime = runtime
        app.state.metrics = Metrics(store)
        try:
            yield
        finally:
            app.state.metrics.process_exiting()
            await run_in_threadpool(runtime.stop)

    app = FastAPI(
        title="Mosaic Stack Telemetry API",
        version=__version__,
        summary="Telemetry API v1: task-completion events in, cost predictions out.",
        lifespan=lifespan,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(MetricsMiddleware)
    # Outermost: every layer below sees the client address it establishes.
    app.add_middleware(TrustedProxies, networks=parse_trusted_proxies(settings.trusted_proxies))
    app.include_router(probes_router)

    @app.post(
        "/v1/events/batch",
        summary="Submit a batch of task-completion events",
        response_model=None,
        responses={
            200: {"model": BatchEventResponse, "description": "Every event was accepted."},
            207: {"model": BatchEventResponse, "description": "Some events were rejected."},
            **error_responses(400, 401, 403, 413, 415, 422, 429, 500, 503),
        },
        openapi_extra={"requestBody": BATCH_EVENTS_BODY},
    )
    async def post_events(
        request: Request,
        key: ApiKeyRecord = Depends(_authenticated),  # noqa: B008
    ) -> JSONResponse:
        """Store 1 to 100 events; each is judged on its own (see the response's `results`)."""
        runtime = _runtime(request)
        instance_id = key.instance_id
        if instance_id is None:  # an admin key: it reads every instance, so it writes none
            raise ApiError(403, "an admin key cannot submit events", code="forbidden")
        raw = await read_body(request, settings.max_body_bytes)

        def judge_and_store() -> tuple[int, BatchEventResponse]:
            entries = parse_envelope(decode_json(raw), "events")
            return ingest_batch(runtime.storage, entries, instance_id)

        status, response = await run_in_threadpool(judge_and_store)
        request.app.state.metrics.count_batch(response)
        return JSONResponse(response.model_dump(mode="json"), status_code=status)

    @app.post(
        "/v1/predictions/batch",
        summary="Predict the cost of tasks",
        response_model=None,
        responses={
            200: {"model": BatchPredictionResponse, "description": "One result per query."},
            **error_responses(400, 401, 413, 415, 422, 429, 500, 503),
        },
        openapi_extra={"requestBody": BATCH_PREDICTIONS_BODY},
    )
    async def post_predictions(
        request: Request,
        _key: ApiKeyRecord = Depends(_authenticated),  # noqa: B008
    ) -> JSONResponse:
        """Predictions over every instance's events, one per query, in order."""
        runtime = _runtime(request)
        raw = await read_body(request, settings.max_body_bytes)

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

    @app.get(
        "/v1/usage",
        summary="What was spent, summed over stored events",
        response_model=None,
        responses={
            200: {"model": UsageReport, "description": "Sums by group, and totals."},
            **error_responses(401, 403, 422, 429, 500, 503),
        },
    )
    async def get_usage(
        request: Request,
        key: ApiKeyRecord = Depends(_authenticated),  # noqa: B008
        # Declared for the OpenAPI document; parse_usage_query reads the raw pairs (it refuses
        # a repeated parameter rather than silently picking one).
        _from: Annotated[str | None, Query(alias="from", description=_FROM)] = None,
        _to: Annotated[str | None, Query(alias="to", description=_TO)] = None,
        _group_by: Annotated[str | None, Query(alias="group_by", description=_GROUP_BY)] = None,
        _instance_id: Annotated[
            str | None, Query(alias="instance_id", description=_INSTANCE_ID)
        ] = None,
    ) -> JSONResponse:
        """Sums of tokens, cost, duration and outcomes over `from <= timestamp < to`."""
        runtime = _runtime(request)
        query = parse_usage_query(
            request.query_params.multi_items(), key=key, now=datetime.now(UTC)
        )

        def report() -> UsageReport:
            return query_usage(
                runtime.storage,
                instance_id=query.instance_id,
                start=query.start,
                end=query.end,
                group_by=query.group_by,
            )

        response = await run_in_threadpool(report)
        return JSONResponse(response.model_dump(mode="json", by_alias=True))

    @app.get(
        "/v1/health",
        summary="Whether the server and its storage are up (no auth)",
        response_model=None,
        responses={
            200: {"model": HealthResponse, "description": "Up."},
            503: {
                "model": HealthResponse,
                "description": "Storage cannot be reached.",
                "headers": RETRY_AFTER_HEADER,
            },
        },
    )
    def health(request: Request) -> JSONResponse:
        """`200 {"status": "ok", ...}`, or `503` when storage cannot be reached."""
        runtime = _runtime(request)
        body: dict[str, Any] = {
            "status": "ok",
            "api_version": API_VERSION,
            "schema_version": SCHEMA_VERSION,
            "version": __version__,
        }
        up = runtime.storage.ping()
        if up:
            try:
                runtime.ensure_ready()
            except Exception:
                up = False
        if up:
            return JSONResponse(body)
        # Both shapes at once: the health fields, and the contract's error body for non-2xx.
        body["status"] = "unavailable"
        body["error"] = {"code": "unavailable", "message": "storage cannot be reached"}
        return JSONResponse(
            body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)}
        )

    install_dashboard(app)
    install_openapi(app)
    return app
