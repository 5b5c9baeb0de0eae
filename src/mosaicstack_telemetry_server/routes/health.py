"""`GET /v1/health`: whether the server and its storage are up, without authentication.

The contract's health check; orchestrators should prefer `/readyz` (`probes.py`), which also
proves a write can commit.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mosaicstack_telemetry import API_VERSION, SCHEMA_VERSION
from mosaicstack_telemetry_server import __version__
from mosaicstack_telemetry_server.errors import RETRY_AFTER_UNAVAILABLE
from mosaicstack_telemetry_server.openapi import HEALTH_RESPONSES
from mosaicstack_telemetry_server.routes.access import runtime_of

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/v1/health",
    summary="Whether the server and its storage are up (no auth)",
    response_model=None,
    responses=HEALTH_RESPONSES,
)
def health(request: Request) -> JSONResponse:
    """`200 {"status": "ok", ...}`, or `503` when storage cannot be reached."""
    runtime = runtime_of(request)
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
