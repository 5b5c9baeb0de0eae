"""`POST /v1/logs`: agents' OTLP log records become tasks, sent by real exporters.

Where each record shape comes from is in `_otlp_helpers.py`.
"""

from __future__ import annotations

import gzip
import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from _api_helpers import Served, serve, wait_until
from _otlp_helpers import (
    NS,
    claude_prompt,
    claude_request,
    codex_completed,
    codex_prompt,
    exporter,
    gemini_prompt,
    gemini_response,
    now_ns,
)
from genai_prices import Usage, calc_price
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs.export import LogRecordExportResult

from mosaicstack_telemetry import TaskCompletionEvent
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.otlp.records import MAX_RECORDS
from mosaicstack_telemetry_server.storage.base import Storage

FLEET = {
    "service.name": "claude-code",
    "mosaic.task_type": "testing",
    "mosaic.complexity": "high",
    "mosaic.project": "acme/api",
    "mosaic.branch": "main",
    "mosaic.user": "dev-7",
}


def _events(storage: Storage, instance_id: uuid.UUID) -> list[TaskCompletionEvent]:
    rows = storage.export_events(instance_id=instance_id, start=None, end=None, after=0, limit=1000)
    return [event for _, event in rows]


def _headers(served: Served) -> dict[str, str]:
    return {"Authorization": f"Bearer {served.key}"}


def test_claude_code_calls_of_one_prompt_become_one_task_at_the_next_prompt(
    server: Served,
) -> None:
    start = now_ns()
    with exporter(FLEET, endpoint=f"{server.url}/v1/logs", headers=_headers(server)) as agent:
        agent.emit(
            claude_prompt("s1", "p1", start),
            claude_request("s1", "p1", start + 5 * NS, tokens=(10, 300, 20_000, 1_000)),
            claude_request(
                "s1",
                "p1",
                start + 9 * NS,
                model="claude-haiku-4-5",
                cost=0.001,
                tokens=(5, 40, 0, 0),
                duration_ms=1_000,
            ),
        )
        assert agent.flush() is LogRecordExportResult.SUCCESS
        assert _events(server.storage, server.instance_id) == []  # still open
        assert server.storage.otlp_open_tasks(server.instance_id) == 1
        agent.emit(claude_prompt("s1", "p2", start + 20 * NS))
        assert agent.flush() is LogRecordExportResult.SUCCESS
    (event,) = _events(server.storage, server.instance_id)
    assert event.harness.value == "claude_code"
    assert event.provider.value == "anthropic"
    assert event.model == "claude-sonnet-4-5-20250929"  # the costlier call's model
    # Input as the hook counts it: uncached + cache creation + cache read.
    assert event.actual_input_tokens == 10 + 1_000 + 20_000 + 5
    assert event.actual_output_tokens == 340
    assert event.cache_read_tokens == 20_000
    assert event.cache_write_tokens == 1_000
    assert event.actual_cost_usd_micros == 12_300 + 1_000
    # From the first call's start (5 s - 4 s) to the last call's end (9 s).
    assert event.task_duration_ms == 8_000
    assert event.outcome.value == "success"
    assert (event.task_type.value, event.complexity.value) == ("testing", "high")
    assert (event.project, event.branch, event.user) == ("acme/api", "main", "dev-7")
    assert event.schema_version == "1.1"


def test_older_clients_numbers_as_strings_and_failed_calls(sqlite_server: Served) -> None:
    start = now_ns()
    headers = _headers(sqlite_server)
    with exporter(FLEET, endpoint=f"{sqlite_server.url}/v1/logs", headers=headers) as agent:
        agent.emit(
            claude_request("s2", None, start, tokens=(1, 2, 3, 4), cost=0.5, as_strings=True),
            claude_prompt("s2", None, start + NS),
            claude_request("s2", None, start + 2 * NS, cost=0.0, tokens=(0, 0, 0, 0)),
        )
        error = claude_request("s2", None, start + 3 * NS)
        error = type(error)(
            "claude_code.api_error",
            {
                "event.name": "api_error",
                "session.id": "s2",
                "model": "claude-opus-4-1",
                "error": "overloaded",
                "status_code": "529",
                "duration_ms": "100",
                "attempt": "1",
            },
            start + 3 * NS,
        )
        agent.emit(error, claude_prompt("s2", None, start + 4 * NS))
        assert agent.flush() is LogRecordExportResult.SUCCESS
    events = sorted(
        _events(sqlite_server.storage, sqlite_server.instance_id), key=lambda e: e.timestamp
    )
    assert [e.actual_input_tokens for e in events] == [1 + 3 + 4, 0]
    assert events[0].actual_cost_usd_micros == 500_000
    assert events[1].outcome.value == "success"  # one call of two failed
    assert sqlite_server.storage.otlp_open_tasks() == 0


def _json_body(instance: str, records: list[dict[str, Any]]) -> bytes:
    """An OTLP JSON body written by hand from the OTLP specification's JSON mapping:
    lowerCamelCase keys, hex trace and span ids, 64-bit integers as strings, enums as integers."""
    body = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "codex_cli_rs"}},
                        {"key": "mosaic.project", "value": {"stringValue": instance}},
                    ]
                },
                "scopeLogs": [{"scope": {"name": "codex_otel"}, "logRecords": records}],
                "someFutureField": {"ignored": True},
            }
        ]
    }
    return json.dumps(body).encode()


def _json_record(name: str, at: int, attributes: dict[str, Any]) -> dict[str, Any]:
    def value(item: Any) -> dict[str, Any]:
        if isinstance(item, int):
            return {"intValue": str(item)}
        return {"stringValue": str(item)}

    return {
        "timeUnixNano": str(at),
        "observedTimeUnixNano": str(at),
        "severityNumber": 9,
        "severityText": "INFO",
        "body": {"stringValue": name},
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "flags": 1,
        "attributes": [{"key": k, "value": value(v)} for k, v in attributes.items()],
    }


def _codex_records(conversation: str, start: int) -> list[dict[str, Any]]:
    records = []
    for emitted in (
        codex_prompt(conversation, start),
        codex_completed(conversation, start + NS, tokens=(10_000, 500, 8_000, 200)),
        codex_completed(conversation, start + 2 * NS, tokens=(12_000, 700, 9_000, 0)),
        codex_prompt(conversation, start + 3 * NS),
    ):
        records.append(_json_record(emitted.body, emitted.time_ns, emitted.attributes))
    return records


def test_codex_json_body_built_by_hand_is_priced_and_a_resend_counts_once(
    server: Served,
) -> None:
    body = _json_body("acme/cli", _codex_records("c-1", now_ns()))
    client = server.client()
    for _ in range(2):  # an exporter's retry: the same records again
        answer = client.post("/v1/logs", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json() == {}
    (event,) = _events(server.storage, server.instance_id)
    assert event.harness.value == "custom"
    assert (event.provider.value, event.model, event.project) == ("openai", "gpt-4o", "acme/cli")
    assert event.actual_input_tokens == 22_000
    assert event.actual_output_tokens == 1_200
    assert (event.cache_read_tokens, event.reasoning_tokens) == (17_000, 200)
    expected = sum(
        calc_price(
            Usage(input_tokens=i, cache_read_tokens=c, output_tokens=o),
            "gpt-4o",
            provider_id="openai",
        ).total_price
        for i, o, c in ((10_000, 500, 8_000), (12_000, 700, 9_000))
    )
    assert event.actual_cost_usd_micros == int((expected * 1_000_000).to_integral_value())
    assert event.actual_cost_usd_micros > 0


def test_gemini_task_closes_after_the_idle_time(sqlite_url: str) -> None:
    with serve(sqlite_url, otlp_task_idle=0.3) as served:
        start = now_ns()
        resource = {"service.name": "gemini-cli", "mosaic.task_type": "debugging"}
        with exporter(
            resource, endpoint=f"{served.url}/v1/logs", headers=_headers(served)
        ) as agent:
            agent.emit(
                gemini_prompt("g1", "g1########0", start),
                gemini_response(
                    "g1", "g1########0", start + NS, tokens=(9_000, 300, 4_000, 700, 50)
                ),
                gemini_response("g1", "g1########0", start + 2 * NS, status_code=429),
            )
            assert agent.flush() is LogRecordExportResult.SUCCESS
        wait_until(lambda: len(_events(served.storage, served.instance_id)) == 1, what="idle close")
        (event,) = _events(served.storage, served.instance_id)
        assert (event.provider.value, event.task_type.value) == ("google", "debugging")
        assert event.actual_input_tokens == 9_050
        assert event.actual_output_tokens == 1_000
        assert (event.cache_read_tokens, event.reasoning_tokens) == (4_000, 700)
        assert event.actual_cost_usd_micros > 0
        assert served.storage.otlp_open_tasks() == 0


def test_exporter_configured_by_the_documented_variables(
    sqlite_server: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variables docs/integrations.md gives a fleet, read by the SDK's exporter itself."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sqlite_server.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer {sqlite_server.key}")
    start = now_ns()
    with exporter(FLEET, headers=None) as agent:
        agent.emit(claude_request("s9", "p9", start), claude_prompt("s9", "p10", start + NS))
        assert agent.flush() is LogRecordExportResult.SUCCESS
    assert len(_events(sqlite_server.storage, sqlite_server.instance_id)) == 1


def test_a_gzipped_protobuf_body_gets_a_protobuf_answer(sqlite_server: Served) -> None:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    record = scope.log_records.add()
    record.time_unix_nano = now_ns()
    record.body.string_value = "claude_code.api_request"
    attribute = record.attributes.add()
    attribute.key, attribute.value.string_value = "session.id", "x"
    scope.log_records.add().body.string_value = "claude_code.tool_result"  # ignored
    answer = sqlite_server.client().post(
        "/v1/logs",
        content=gzip.compress(request.SerializeToString()),
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-protobuf"
    parsed = ExportLogsServiceResponse.FromString(answer.content)
    assert not parsed.HasField("partial_success")


@pytest.mark.parametrize("path", ["/v1/metrics", "/v1/traces"])
@pytest.mark.parametrize("media", ["application/json", "application/x-protobuf"])
def test_metrics_and_traces_are_answered_and_dropped(
    sqlite_server: Served, path: str, media: str
) -> None:
    body = b"{}" if media == "application/json" else b""
    answer = sqlite_server.client().post(path, content=body, headers={"Content-Type": media})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == media
    if media == "application/json":
        assert "not stored" in answer.json()["partialSuccess"]["errorMessage"]
    else:
        assert b"not stored" in answer.content


def test_keys_media_types_and_bodies_are_checked(sqlite_server: Served) -> None:
    url = f"{sqlite_server.url}/v1/logs"
    proto = {"Content-Type": "application/x-protobuf"}
    assert httpx.post(url, content=b"", headers=proto).status_code == 401
    admin, _ = issue_api_key(sqlite_server.storage, None, "admin", admin=True)
    answer = httpx.post(url, content=b"", headers={**proto, "Authorization": f"Bearer {admin}"})
    assert answer.status_code == 403
    client = sqlite_server.client()
    assert (
        client.post("/v1/logs", content=b"x", headers={"Content-Type": "text/plain"}).status_code
        == 415
    )
    bad = client.post("/v1/logs", content=b"\xff\xff\xff", headers=proto)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_json"
    assert sqlite_server.key not in bad.text
    json_headers = {"Content-Type": "application/json"}
    assert client.post("/v1/logs", content=b"[1]", headers=json_headers).status_code == 400
    assert (
        client.post("/v1/logs", content=b'{"resourceLogs": 5}', headers=json_headers).status_code
        == 400
    )
    too_big = client.post("/v1/logs", content=b"\0" * (1024 * 1024 + 1), headers=proto)
    assert too_big.status_code == 413


def test_a_restart_in_the_middle_of_a_task_loses_nothing(sqlite_url: str) -> None:
    start = now_ns()
    with serve(sqlite_url) as first:
        key, instance = first.key, first.instance_id
        headers = {"Authorization": f"Bearer {key}"}
        with exporter(FLEET, endpoint=f"{first.url}/v1/logs", headers=headers) as agent:
            agent.emit(claude_request("r", "p1", start, cost=0.25))
            assert agent.flush() is LogRecordExportResult.SUCCESS
    with serve(sqlite_url) as second:
        with exporter(FLEET, endpoint=f"{second.url}/v1/logs", headers=headers) as agent:
            agent.emit(
                claude_request("r", "p1", start + NS, cost=0.5),
                claude_prompt("r", "p2", start + 2 * NS),
            )
            assert agent.flush() is LogRecordExportResult.SUCCESS
        (event,) = _events(second.storage, instance)
        assert event.actual_cost_usd_micros == 750_000
        assert Decimal(event.actual_cost_usd_micros) / 10**6 == Decimal("0.75")


def test_records_and_closed_tasks_are_counted_in_metrics(sqlite_url: str) -> None:
    from test_metrics import scrape_when, value

    with serve(sqlite_url, otlp_task_idle=0.2) as served:
        start = now_ns()
        records = [
            claude_prompt("m", "p1", start),
            claude_request("m", "p1", start + NS),
            claude_request("m", "p1", start + 2 * NS),
        ]
        tool = type(records[0])("claude_code.tool_result", {"tool_name": "Bash"}, start + NS)
        with exporter(FLEET, endpoint=f"{served.url}/v1/logs", headers=_headers(served)) as agent:
            agent.emit(*records, tool)
            assert agent.flush() is LogRecordExportResult.SUCCESS
            agent.emit(*records)  # a resend: duplicates
            assert agent.flush() is LogRecordExportResult.SUCCESS
        name = "mosaic_telemetry_otlp_tasks_closed_total"
        found = scrape_when(served.url, 1.0, name)
        counted = "mosaic_telemetry_otlp_log_records_total"
        # Two calls, and the prompt twice: a prompt is applied again (idempotent), not deduplicated.
        assert value(found, counted, outcome="used") == 4
        assert value(found, counted, outcome="duplicate") == 2
        assert value(found, counted, outcome="ignored") == 1


def _claude_call_proto(session: str, at: int, **attributes: str) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    name = resource.resource.attributes.add()
    name.key, name.value.string_value = "service.name", "claude-code"
    record = resource.scope_logs.add().log_records.add()
    record.time_unix_nano = at
    record.event_name = "claude_code.api_request"
    record.trace_id = bytes.fromhex("5b8efff798038103d269b633813fc60c")
    record.span_id = bytes.fromhex("eee19b7ec3c1b174")
    for key, value in {"session.id": session, "prompt.id": "p", **attributes}.items():
        attribute = record.attributes.add()
        attribute.key, attribute.value.string_value = key, value
    return request


def test_a_record_resent_in_the_other_encoding_counts_once(sqlite_server: Served) -> None:
    """The same record as protobuf (trace ids as bytes) and as OTLP JSON (as hex): one call."""
    from google.protobuf import json_format

    request = _claude_call_proto(
        "enc", now_ns(), model="claude-opus-4-1", cost_usd_micros="2500", input_tokens="3"
    )
    client = sqlite_server.client()
    proto = {"Content-Type": "application/x-protobuf"}
    assert client.post("/v1/logs", content=request.SerializeToString(), headers=proto).is_success
    as_json = json.loads(json_format.MessageToJson(request))
    record = as_json["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    record["traceId"], record["spanId"] = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    assert client.post("/v1/logs", json=as_json).is_success
    (task,) = sqlite_server.storage.otlp_claim_idle(2e9, 2e9, 10)
    assert (task.calls, task.cost_usd_micros, task.input_tokens) == (1, 2_500, 3)


def test_records_beyond_the_limit_are_rejected_in_partial_success(sqlite_server: Served) -> None:
    request = _claude_call_proto("many", now_ns(), model="m")
    scope = request.resource_logs[0].scope_logs[0]
    for _ in range(MAX_RECORDS):
        scope.log_records.add().body.string_value = "x"
    body = request.SerializeToString()
    proto = {"Content-Type": "application/x-protobuf"}
    answer = sqlite_server.client().post("/v1/logs", content=body, headers=proto)
    assert answer.status_code == 200
    parsed = ExportLogsServiceResponse.FromString(answer.content)
    assert parsed.partial_success.rejected_log_records == 1
    assert "20000" in parsed.partial_success.error_message


def test_over_its_rate_an_exporter_gets_429_with_retry_after(sqlite_url: str) -> None:
    with serve(sqlite_url, rate_limit_per_second=0.5, rate_limit_burst=1) as served:
        client = served.client()
        proto = {"Content-Type": "application/x-protobuf"}
        assert client.post("/v1/logs", content=b"", headers=proto).status_code == 200
        refused = client.post("/v1/logs", content=b"", headers=proto)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
