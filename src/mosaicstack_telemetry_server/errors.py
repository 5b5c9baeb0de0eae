"""Every failure the server can answer with, and the one place that turns them into bodies.

The contract (`telemetry-api-v1.md`, "Errors") fixes the body of every non-2xx response:
`{"error": {"code": "<snake_case>", "message": "<text>", "details": [...]?}}`. Handlers here map
our own `ApiError`, Starlette's HTTP errors (404, 405), FastAPI's request validation errors,
storage failures and anything unexpected onto that body, so no route builds an error by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from mosaicstack_telemetry_server.storage.base import StorageError

__all__ = [
    "RETRY_AFTER_UNAVAILABLE",
    "ApiError",
    "ErrorBody",
    "ErrorResponse",
    "error_response",
    "install_error_handlers",
    "invalid_request",
    "validation_details",
]

logger = logging.getLogger("mosaicstack_telemetry_server")

# Seconds a client should wait before retrying when storage is down: long enough not to hammer
# a recovering database, short enough that SDK queues drain soon after it is back.
RETRY_AFTER_UNAVAILABLE = 5

# The contract's code for each status we may send (anything else falls back to its class).
_CODES: Mapping[int, str] = {
    400: "invalid_json",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}

# Cap on what a validation detail may quote back: bodies are attacker-controlled.
_MAX_DETAILS = 20
_MAX_DETAIL_CHARS = 200


def _code_for(status: int) -> str:
    return _CODES.get(status, "internal" if status >= 500 else "invalid_request")


class ErrorBody(BaseModel):
    """The `error` object of every non-2xx response."""

    code: str
    message: str
    details: list[Any] | None = None


class ErrorResponse(BaseModel):
    """Body of every non-2xx response (used in the OpenAPI document)."""

    error: ErrorBody


class ApiError(Exception):
    """A failure the client is told about with a contract error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Sequence[Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _code_for(status)
        self.message = message
        self.details = list(details) if details is not None else None
        self.headers = dict(headers or {})


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: Sequence[Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON response with the contract's error body."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = list(details)
    return JSONResponse({"error": error}, status_code=status, headers=dict(headers or {}))


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL_CHARS else text[: _MAX_DETAIL_CHARS - 3] + "..."


def validation_details(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Pydantic errors as `{"field", "rule", "message"}`, never quoting the offending input.

    Pydantic's own error dicts carry `input`, which may be a megabyte of attacker text or a
    secret; only the location, the rule's type and its message are kept.
    """
    details = []
    for error in list(errors)[:_MAX_DETAILS]:
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        details.append(
            {
                "field": _truncate(".".join(loc) or "(body)"),
                "rule": _truncate(str(error.get("type", "invalid"))),
                "message": _truncate(str(error.get("msg", "invalid value"))),
            }
        )
    return details


def invalid_request(errors: Sequence[Mapping[str, Any]]) -> ApiError:
    """The 422 for a body that fails validation against its model, one detail per problem."""
    return ApiError(
        422, "the request is invalid", code="invalid_request", details=validation_details(errors)
    )


async def _on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    exc = cast(ApiError, exc)
    return error_response(
        exc.status, exc.code, exc.message, details=exc.details, headers=exc.headers
    )


async def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    status = exc.status_code
    code = _code_for(status)
    messages = {404: "no such endpoint", 405: "method not allowed on this endpoint"}
    message = messages.get(status) or str(exc.detail)
    return error_response(status, code, message, headers=exc.headers)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    return await _on_api_error(request, invalid_request(cast(RequestValidationError, exc).errors()))


async def _on_storage_error(_request: Request, exc: Exception) -> JSONResponse:
    # The cause may name hosts or paths: log it for the operator, tell the client only to retry.
    logger.error("storage unavailable: %s", exc)
    return error_response(
        503,
        "unavailable",
        "storage is unavailable, retry later",
        headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)},
    )


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error", exc_info=exc)
    return error_response(500, "internal", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every failure the contract's error body."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StorageError, _on_storage_error)
    app.add_exception_handler(Exception, _on_unexpected)
