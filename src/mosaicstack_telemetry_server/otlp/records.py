"""An `ExportLogsServiceRequest` flattened into records: name, attributes, resource, time.

Only scalar attribute values are kept (strings, integers, doubles, booleans); an agent's
record shapes need nothing else. A record's identity is a hash of its deterministic protobuf
encoding, so a resent record, in either media type, has the identity it had the first time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from mosaicstack_telemetry_server.ingest import EARLIEST_TIMESTAMP, MAX_CLOCK_AHEAD

__all__ = ["MAX_RECORDS", "Record", "count_records", "records_of"]

# Records read from one request; more are rejected (partial success). 1 MiB holds far fewer
# of the records that matter: a Claude Code api_request is about 600 bytes.
MAX_RECORDS: Final = 20_000
# Attributes read per record (an agent's records carry a few dozen).
_MAX_ATTRIBUTES: Final = 256
# Longer strings are cut: what is read from them (ids, model names) is far shorter.
_MAX_TEXT: Final = 1_000
_EARLIEST_NS: Final = int(EARLIEST_TIMESTAMP.timestamp()) * 1_000_000_000
_MAX_AHEAD_NS: Final = int(MAX_CLOCK_AHEAD.total_seconds()) * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Record:
    """One log record: its event name, attributes, its resource's attributes and time."""

    name: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    time_ns: int
    identity: str


def _scalar(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value[:_MAX_TEXT]
    if kind in ("int_value", "double_value", "bool_value"):
        return getattr(value, kind)
    return None


def _attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs[:_MAX_ATTRIBUTES]:
        value = _scalar(pair.value)
        if value is not None:
            out[pair.key[:_MAX_TEXT]] = value
    return out


def _name(record: LogRecord) -> str:
    if record.event_name:
        return record.event_name[:_MAX_TEXT]
    pair: KeyValue
    for pair in record.attributes[:_MAX_ATTRIBUTES]:
        if pair.key == "event.name" and pair.value.WhichOneof("value") == "string_value":
            name: str = pair.value.string_value
            return name[:_MAX_TEXT]
    if record.body.WhichOneof("value") == "string_value":
        return record.body.string_value[:_MAX_TEXT]
    return ""


def _identity_bytes(record: LogRecord) -> bytes:
    if not (record.trace_id or record.span_id):
        data: bytes = record.SerializeToString(deterministic=True)
        return data
    # Without the ids: the JSON mapping drops them (wire.py), protobuf keeps them.
    plain = LogRecord()
    plain.CopyFrom(record)
    plain.ClearField("trace_id")
    plain.ClearField("span_id")
    stripped: bytes = plain.SerializeToString(deterministic=True)
    return stripped


def _plausible(time_ns: int, now_ns: int) -> int:
    """The record's time, or the time it was received when the sender's clock is wrong (the
    contract's plausible time: from 2020 to 24 hours ahead)."""
    if _EARLIEST_NS <= time_ns <= now_ns + _MAX_AHEAD_NS:
        return time_ns
    return now_ns


def count_records(request: ExportLogsServiceRequest) -> int:
    """How many log records the request holds."""
    return sum(
        len(scope.log_records)
        for resource in request.resource_logs
        for scope in resource.scope_logs
    )


def records_of(
    request: ExportLogsServiceRequest,
    wanted: Callable[[str], bool] = lambda _name: True,
    limit: int = MAX_RECORDS,
) -> Iterator[Record | None]:
    """The first `limit` records of the request, in order; None for a record whose name is
    not `wanted` (its attributes are not even read)."""
    now_ns = time.time_ns()
    left = limit
    for resource_logs in request.resource_logs:
        resource = _attributes(resource_logs.resource.attributes)
        for scope in resource_logs.scope_logs:
            for record in scope.log_records:
                if left <= 0:
                    return
                left -= 1
                name = _name(record)
                if not wanted(name):
                    yield None
                    continue
                attributes = _attributes(record.attributes)
                digest = hashlib.blake2b(_identity_bytes(record), digest_size=16)
                yield Record(
                    name=name,
                    attributes=attributes,
                    resource=resource,
                    time_ns=_plausible(
                        record.time_unix_nano or record.observed_time_unix_nano, now_ns
                    ),
                    identity=digest.hexdigest(),
                )
