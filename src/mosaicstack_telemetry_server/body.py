"""Reading a request body safely: media type, encoding, size cap, gzip, UTF-8, JSON, depth.

Every POST endpoint reads its body with `read_body`, then parses it with `decode_json` (in a
worker thread), so the limits hold everywhere:
- `Content-Type` must be `application/json` (or `+json`), with no `charset` other than
  `utf-8`, else 415 `unsupported_media_type`;
- `Content-Encoding` must be `gzip` or `identity`, else 415;
- the body is capped at `max_bytes` *after* decompression (413 `payload_too_large`): checked
  against `Content-Length` before reading, while streaming, and while inflating gzip, which is
  decompressed incrementally so a gzip bomb never inflates beyond `max_bytes + 1`;
- not UTF-8, not JSON (NaN and Infinity included), or nested deeper than `MAX_JSON_DEPTH` →
  400 `invalid_json`.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from starlette.requests import Request

from mosaicstack_telemetry_server.errors import ApiError

__all__ = ["MAX_JSON_DEPTH", "decode_json", "read_body"]

# A valid batch nests 4 deep ({"events": [{"quality_gates_run": [...]}]}); this leaves room
# for unknown extra fields while keeping parsers and validators far from recursion limits.
MAX_JSON_DEPTH = 32
# A gzip body is allowed a little more on the wire than inflated: incompressible data grows.
_GZIP_OVERHEAD_DIVISOR = 64


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body exceeds {limit} bytes", code="payload_too_large")


def _check_content_type(request: Request) -> None:
    media_type, *parameters = request.headers.get("content-type", "").split(";")
    media_type = media_type.strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise ApiError(415, "Content-Type must be application/json", code="unsupported_media_type")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        # The contract's bodies are UTF-8: a body declared otherwise would be misread.
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise ApiError(415, "the only charset accepted is utf-8", code="unsupported_media_type")


def _content_encoding(request: Request) -> str:
    encoding = request.headers.get("content-encoding", "identity").strip().lower() or "identity"
    if encoding not in ("identity", "gzip"):
        raise ApiError(
            415, "Content-Encoding must be gzip or identity", code="unsupported_media_type"
        )
    return encoding


class _Inflater:
    """Incremental gzip decompression that stops as soon as the output passes `limit`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._size = 0
        self.chunks: list[bytes] = []

    def feed(self, data: bytes) -> None:
        while data:
            if self._inflater.eof:
                # Concatenated gzip members are valid gzip: start the next member.
                self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            try:
                out = self._inflater.decompress(data, self._limit - self._size + 1)
            except zlib.error:
                raise ApiError(400, "body is not valid gzip", code="invalid_json") from None
            self._size += len(out)
            if self._size > self._limit:
                raise _too_large(self._limit)
            self.chunks.append(out)
            # Past a member's end the rest is in unused_data; before it, input held back by
            # the output cap is in unconsumed_tail.
            if self._inflater.eof:
                data = self._inflater.unused_data
            else:
                data = self._inflater.unconsumed_tail

    def finish(self) -> bytes:
        if not self._inflater.eof:
            raise ApiError(400, "body is not valid gzip (truncated)", code="invalid_json")
        return b"".join(self.chunks)


async def read_body(request: Request, max_bytes: int, *, json_only: bool = True) -> bytes:
    """The request body, decompressed, at most `max_bytes` long (413 beyond).

    `json_only=False` leaves the media type to the caller (OTLP also takes protobuf).
    """
    if json_only:
        _check_content_type(request)
    gzipped = _content_encoding(request) == "gzip"
    wire_limit = max_bytes + max_bytes // _GZIP_OVERHEAD_DIVISOR if gzipped else max_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise ApiError(400, "Content-Length is not a number", code="invalid_json") from None
        if length > wire_limit:
            raise _too_large(max_bytes)
    inflater = _Inflater(max_bytes) if gzipped else None
    chunks: list[bytes] = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > wire_limit:
                raise _too_large(max_bytes)
            if inflater is not None:
                inflater.feed(chunk)
            else:
                chunks.append(chunk)
    finally:
        request.state.bytes_in = received  # for the access log
    return inflater.finish() if inflater is not None else b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth_exceeds(value: Any, limit: int) -> bool:
    # Breadth-first, one level at a time, with exact type checks (json.loads makes only plain
    # dicts and lists): iterative, so the check cannot hit the recursion limit, and about
    # three times cheaper on a full batch than a stack of (item, depth) pairs.
    level: list[Any] = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below += [child for child in children if type(child) is dict or type(child) is list]
        level = below
    return False


def decode_json(body: bytes) -> Any:
    """Parse a UTF-8 JSON document, or raise a 400 `invalid_json` `ApiError`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "body is not valid UTF-8", code="invalid_json") from None
    too_deep = ApiError(
        400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels", code="invalid_json"
    )
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:
        # JSONDecodeError's message names a position, never the body: safe to pass on.
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else "number or constant"
        raise ApiError(400, f"body is not valid JSON: {message}", code="invalid_json") from None
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise too_deep
    return value
