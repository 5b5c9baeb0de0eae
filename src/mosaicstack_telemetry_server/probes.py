"""Probes for orchestrators and load balancers: `/livez`, `/readyz` and `/metrics`.

`/livez` answers while the process serves HTTP at all (restart it otherwise). `/readyz`
answers 200 only when this process could take a write right now: storage reachable, the
schema at the version this server ships, and a real write committed. `/v1/health` keeps its
contract; a load balancer should route on `/readyz`, so a server whose disk is full stops
receiving events instead of answering each with 503.

`/metrics` is open unless `metrics_token` is set; then it needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from mosaicstack_telemetry_server.errors import RETRY_AFTER_UNAVAILABLE, ApiError
from mosaicstack_telemetry_server.metrics import Metrics
from mosaicstack_telemetry_server.runtime import Runtime
from mosaicstack_telemetry_server.storage.base import StorageError

__all__ = ["readiness_problem", "router"]

router = APIRouter(include_in_schema=False)


@router.get("/livez")
def livez() -> JSONResponse:
    """200 while the process answers HTTP; touches nothing else."""
    return JSONResponse({"status": "ok"})


def readiness_problem(runtime: Runtime) -> str | None:
    """Why this process should not take writes now, or None when it can. Blocking."""
    storage = runtime.storage
    if not storage.ping():
        return "storage cannot be reached"
    try:
        runtime.ensure_ready()
        version, latest = storage.schema_version(), storage.latest_schema_version()
        if version != latest:
            return f"schema version {version}, this server needs {latest}"
        storage.probe_write()
    except StorageError as exc:
        return f"storage cannot take writes: {exc}"
    return None


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 when storage is reachable, migrated and writable; else 503 with the reason."""
    runtime: Runtime = request.app.state.runtime
    problem = await run_in_threadpool(readiness_problem, runtime)
    if problem is None:
        return JSONResponse({"status": "ok"})
    body = {
        "status": "unavailable",
        "error": {"code": "unavailable", "message": problem},
    }
    return JSONResponse(
        body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)}
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """The Prometheus text exposition of every worker process's metrics."""
    token: str = request.app.state.runtime.settings.metrics_token.get_secret_value()
    if token:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError(
                401,
                "/metrics needs `Authorization: Bearer <metrics token>`",
                code="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
    collected: Metrics = request.app.state.metrics
    body, content_type = await run_in_threadpool(collected.exposition)
    return Response(body, media_type=content_type)
