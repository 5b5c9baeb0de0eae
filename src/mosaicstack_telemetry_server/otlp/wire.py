"""OTLP/HTTP on the wire: the two media types, decoding requests, encoding responses.

Bodies are decoded with `opentelemetry-proto`'s generated classes: protobuf as it is, JSON
through protobuf's JSON mapping after the OTLP JSON mapping's one difference is undone (trace
and span ids are hex, not base64; the receiver uses neither, so they are dropped). Unknown
fields are ignored, as the OTLP specification asks. A response is written in the request's
media type.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response

from mosaicstack_telemetry_server.body import decode_json
from mosaicstack_telemetry_server.errors import ApiError

__all__ = ["JSON", "PROTOBUF", "Media", "decode", "encode", "media_of"]

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
Media = Literal["application/x-protobuf", "application/json"]
_M = TypeVar("_M", bound=Message)


def media_of(request: Request) -> Media:
    """The request's OTLP media type, or a 415 `ApiError`."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == PROTOBUF:
        return PROTOBUF
    if media_type == JSON:
        return JSON
    raise ApiError(
        415,
        "Content-Type must be application/x-protobuf or application/json",
        code="unsupported_media_type",
    )


def _drop_hex_ids(value: Any) -> None:
    """Remove `traceId`/`spanId` from every log record (hex in OTLP JSON, base64 in proto3)."""
    if not isinstance(value, dict):
        return
    for resource in _list(value.get("resourceLogs")):
        for scope in _list(resource.get("scopeLogs") if isinstance(resource, dict) else None):
            for record in _list(scope.get("logRecords") if isinstance(scope, dict) else None):
                if isinstance(record, dict):
                    for name in ("traceId", "spanId", "trace_id", "span_id"):
                        record.pop(name, None)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def decode(body: bytes, media: Media, message: _M) -> _M:
    """Fill `message` from the body, or raise a 400 `invalid_json` `ApiError`."""
    if media == PROTOBUF:
        try:
            message.ParseFromString(body)
        except Exception:  # DecodeError, or a nesting beyond protobuf's recursion limit
            raise ApiError(
                400, "body is not a valid OTLP protobuf message", code="invalid_json"
            ) from None
        return message
    value = decode_json(body)
    _drop_hex_ids(value)
    if not isinstance(value, dict):
        raise ApiError(400, "body is not an OTLP JSON object", code="invalid_json")
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=True)
    except Exception as exc:  # ParseError, and type errors on values of the wrong kind
        text = str(exc)[:200]
        raise ApiError(400, f"body is not valid OTLP JSON: {text}", code="invalid_json") from None
    return message


def encode(message: Message, media: Media) -> Response:
    """A 200 response holding `message` in `media`."""
    if media == PROTOBUF:
        return Response(message.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(message, indent=None), media_type=JSON)
