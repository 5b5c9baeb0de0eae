"""The OpenAPI document's pieces the routes cannot infer: request bodies (read by `body.py`,
not by FastAPI), each route's responses, error responses and their `Retry-After` headers, the
usage query's parameter descriptions, and the bearer security scheme.

The document states what the server does, so a tool such as schemathesis can drive it: the
request schemas are the SDK's own models, except that an entry of `events` may be anything
(the server judges each entry on its own and rejects an invalid one in a 207 verdict, so the
request as a whole is not refused for it).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from mosaicstack_telemetry import BatchEventResponse
from mosaicstack_telemetry.models import (
    BatchEventRequest,
    BatchPredictionRequest,
    BatchPredictionResponse,
)
from mosaicstack_telemetry_server.body import MAX_JSON_DEPTH
from mosaicstack_telemetry_server.errors import ErrorBody, ErrorResponse
from mosaicstack_telemetry_server.usage import UsageReport

__all__ = [
    "BATCH_EVENTS_BODY",
    "BATCH_PREDICTIONS_BODY",
    "BEARER",
    "EVENTS_RESPONSES",
    "HEALTH_RESPONSES",
    "OTLP_BODY",
    "OTLP_RESPONSES",
    "PREDICTIONS_RESPONSES",
    "RETRY_AFTER_HEADER",
    "USAGE_ATTRIBUTION_FILTER",
    "USAGE_FROM",
    "USAGE_GROUP_BY",
    "USAGE_INSTANCE_ID",
    "USAGE_RESPONSES",
    "USAGE_TO",
    "HealthResponse",
    "error_responses",
    "install_openapi",
]

# Declared for the OpenAPI document (bearer scheme); the header itself is checked by auth.py,
# so every failure gets the same 401 body.
BEARER = HTTPBearer(auto_error=False, description="`Authorization: Bearer <64-hex API key>`")

_REF = "#/components/schemas/{model}"
_BODY_NOTE = (
    "JSON, optionally gzip-compressed (`Content-Encoding: gzip`); at most 1 MiB after "
    f"decompression (413), nested at most {MAX_JSON_DEPTH} levels (400)."
)

BATCH_EVENTS_BODY: dict[str, Any] = {
    "required": True,
    "description": (
        "1 to 100 events (else 422). Each event is judged on its own: an invalid event, or one "
        "of another instance than the API key's, is rejected in the response (207), never "
        f"stored. {_BODY_NOTE}"
    ),
    "content": {"application/json": {"schema": {"$ref": _REF.format(model="BatchEventRequest")}}},
}

BATCH_PREDICTIONS_BODY: dict[str, Any] = {
    "required": True,
    "description": f"1 to 100 queries; any invalid query fails the request (422). {_BODY_NOTE}",
    "content": {
        "application/json": {"schema": {"$ref": _REF.format(model="BatchPredictionRequest")}}
    },
}

# OTLP's own messages (opentelemetry-proto), described, not modelled: they are the OTLP
# specification's, in protobuf or in its JSON mapping.
_OTLP_MESSAGE: dict[str, Any] = {"type": "object", "additionalProperties": True}
OTLP_BODY: dict[str, Any] = {
    "required": True,
    "description": (
        "An OTLP export request (`ExportLogsServiceRequest` on /v1/logs) as protobuf "
        "(`application/x-protobuf`) or in the OTLP JSON mapping (`application/json`), "
        "optionally gzip-compressed; at most 1 MiB after decompression (413)."
    ),
    "content": {
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": _OTLP_MESSAGE},
    },
}

_DESCRIPTIONS = {
    400: "Body not UTF-8 JSON, or nested too deeply (`invalid_json`).",
    401: "Missing, malformed, unknown or revoked API key (`unauthorized`).",
    403: "The API key may not do this (`forbidden`): an admin key submitting events, or an "
    "instance key asking for another instance's usage.",
    413: "Body over the size limit (`payload_too_large`).",
    415: "Content-Type not JSON (or with a charset other than utf-8), or Content-Encoding not "
    "gzip/identity (`unsupported_media_type`).",
    422: "Invalid envelope (`invalid_request`), with details.",
    429: "Rate limit of this API key, or of failed authentications from this client address, "
    "exceeded (`rate_limited`).",
    500: "Unexpected failure (`internal`).",
    503: "Storage unavailable (`unavailable`).",
}


class HealthResponse(BaseModel):
    """Body of `GET /v1/health`; `error` is set only with status 503."""

    status: str
    api_version: str
    schema_version: str
    version: str
    error: ErrorBody | None = None


RETRY_AFTER_HEADER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "The authentication scheme to use: `Bearer`.",
        "required": True,
        "schema": {"type": "string"},
    }
}
_HEADERS = {401: _WWW_AUTHENTICATE, 429: RETRY_AFTER_HEADER, 503: RETRY_AFTER_HEADER}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` entries of error statuses, all with the contract's error body."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        responses[status] = entry
    return responses


EVENTS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": BatchEventResponse, "description": "Every event was accepted."},
    207: {"model": BatchEventResponse, "description": "Some events were rejected."},
    **error_responses(400, 401, 403, 413, 415, 422, 429, 500, 503),
}
PREDICTIONS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": BatchPredictionResponse, "description": "One result per query."},
    **error_responses(400, 401, 413, 415, 422, 429, 500, 503),
}
USAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": UsageReport, "description": "Sums by group, and totals."},
    **error_responses(401, 403, 422, 429, 500, 503),
}
OTLP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An OTLP export response in the request's media type, with "
        "`partial_success` when some records could not be used (or were not stored).",
        "content": {
            "application/json": {"schema": _OTLP_MESSAGE},
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **error_responses(400, 401, 403, 413, 415, 429, 500, 503),
}
HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": HealthResponse, "description": "Up."},
    503: {
        "model": HealthResponse,
        "description": "Storage cannot be reached.",
        "headers": RETRY_AFTER_HEADER,
    },
}

USAGE_FROM = (
    "ISO 8601 date-time with an offset, or a date (00:00 UTC); inclusive. "
    "Default: `to` minus 30 days."
)
USAGE_TO = "ISO 8601 date-time with an offset, or a date (00:00 UTC); exclusive. Default: now."
USAGE_GROUP_BY = (
    "Comma-separated, at most 3 of day, week (ISO), month, task_type, complexity, harness, "
    "model, provider, outcome, instance_id (admin keys only), project, branch, user (schema "
    "1.1's attribution: events without it group under the key value null, sorted first)."
)
USAGE_INSTANCE_ID = "Admin keys only: narrow to one instance (an instance key gets 403)."
USAGE_ATTRIBUTION_FILTER = (
    "Only events whose {} equals this value exactly (1 to 200 characters, no control "
    "characters; events without the field never match)."
)


def _request_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    models: tuple[type[BaseModel], ...] = (BatchEventRequest, BatchPredictionRequest)
    for model in models:
        schema = model.model_json_schema(ref_template=_REF, mode="validation")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    events = schemas["BatchEventRequest"]["properties"]["events"]
    events["items"] = {
        # Honest about what is accepted: any entry, judged on its own.
        "anyOf": [events["items"], {}],
        "description": (
            "A TaskCompletionEvent. An entry that is not a valid one (or is of another "
            "instance than the API key's) does not fail the request: it is rejected in its "
            "own result of the response (207)."
        ),
    }
    return schemas


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` include the request schemas the routes read by hand."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in _request_schemas().items():
            schemas.setdefault(name, schema)
        app.openapi_schema = document
        return document

    setattr(app, "openapi", openapi)  # noqa: B010 - FastAPI's documented way to customise it
