"""Any body sent to `POST /v1/logs` gets 200 or 400, never a 500 (Hypothesis)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from _api_helpers import Served
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_NAMES = st.sampled_from(
    [
        "claude_code.api_request",
        "api_request",
        "claude_code.user_prompt",
        "codex.sse_event",
        "codex.user_prompt",
        "gemini_cli.api_response",
        "gemini_cli.api_error",
        "other",
    ]
)
_KEYS = st.sampled_from(
    [
        "session.id",
        "prompt.id",
        "prompt_id",
        "conversation.id",
        "event.kind",
        "model",
        "cost_usd",
        "input_tokens",
        "output_token_count",
        "status_code",
        "duration_ms",
    ]
)
_VALUES = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.booleans(),
    st.just("response.completed"),
)


def _post(served: Served, body: bytes, media: str) -> int:
    headers = {"Authorization": f"Bearer {served.key}", "Content-Type": media}
    return httpx.post(f"{served.url}/v1/logs", content=body, headers=headers).status_code


@_SETTINGS
@given(body=st.binary(max_size=2_000))
def test_any_bytes_as_protobuf(shared_server: Served, body: bytes) -> None:
    assert _post(shared_server, body, "application/x-protobuf") in (200, 400)


@_SETTINGS
@given(body=st.binary(max_size=2_000))
def test_any_bytes_as_json(shared_server: Served, body: bytes) -> None:
    assert _post(shared_server, body, "application/json") in (200, 400)


def _value(item: Any) -> dict[str, Any]:
    if isinstance(item, bool):
        return {"boolValue": item}
    if isinstance(item, int):
        return {"intValue": str(item)}
    if isinstance(item, float):
        return {"doubleValue": item if item == item else "NaN"}
    return {"stringValue": item}


_RECORD = st.fixed_dictionaries(
    {
        "timeUnixNano": st.integers(min_value=0, max_value=2**64 - 1).map(str),
        "body": _NAMES.map(lambda name: {"stringValue": name}),
        "attributes": st.lists(
            st.tuples(_KEYS, _VALUES).map(lambda kv: {"key": kv[0], "value": _value(kv[1])}),
            max_size=8,
        ),
    }
)


@_SETTINGS
@given(records=st.lists(_RECORD, max_size=6))
def test_agent_like_records_in_json_and_protobuf(shared_server: Served, records: list[Any]) -> None:
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}
    text = json.dumps(body)
    assert _post(shared_server, text.encode(), "application/json") in (200, 400)
    message = ExportLogsServiceRequest()
    for record in records:
        log = message.resource_logs.add().scope_logs.add().log_records.add()
        log.time_unix_nano = int(record["timeUnixNano"])
        log.body.string_value = record["body"]["stringValue"]
        for pair in record["attributes"]:
            attribute = log.attributes.add()
            attribute.key = pair["key"]
            kind, value = next(iter(pair["value"].items()))
            if kind == "intValue":
                attribute.value.int_value = int(value)
            elif kind == "doubleValue":
                attribute.value.double_value = float(value)
            elif kind == "boolValue":
                attribute.value.bool_value = value
            else:
                attribute.value.string_value = value
    assert _post(shared_server, message.SerializeToString(), "application/x-protobuf") == 200
