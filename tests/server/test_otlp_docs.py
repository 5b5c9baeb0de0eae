"""docs/integrations.md "Fleets: OpenTelemetry": each agent's settings, tested as written.

The variables and settings are applied to the OpenTelemetry SDK's own exporter (Claude Code's
and Codex's are OTLP/HTTP protobuf) or to a JSON body as Gemini CLI's JavaScript exporter
sends it; the agents themselves are not run.
"""

from __future__ import annotations

import json
import re
import tomllib
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from _api_helpers import Served
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
from opentelemetry.sdk._logs.export import LogRecordExportResult

from mosaicstack_telemetry import TaskCompletionEvent

DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
PLACEHOLDER_URL = "https://telemetry.example.com"
PLACEHOLDER_KEY = "<instance key>"


def _block(name: str) -> str:
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(rf"<!-- fleet: {name} -->\n```\w+\n(.*?)```", text, re.S)
    assert found, f"docs/integrations.md lost its {name} block"
    return found.group(1)


def _fill(text: str, served: Served) -> str:
    return text.replace(PLACEHOLDER_URL, served.url).replace(PLACEHOLDER_KEY, served.key)


def _events(served: Served) -> list[TaskCompletionEvent]:
    rows = served.storage.export_events(
        instance_id=served.instance_id, start=None, end=None, after=0, limit=100
    )
    return [event for _, event in rows]


def test_claude_code_managed_settings_env_block(
    sqlite_server: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    env: dict[str, str] = json.loads(_fill(_block("claude-code"), sqlite_server))["env"]
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"  # what the SDK's exporter is
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    start = now_ns()
    with exporter({"service.name": "claude-code"}, headers=None) as agent:
        agent.emit(claude_request("s", "p1", start), claude_prompt("s", "p2", start + NS))
        assert agent.flush() is LogRecordExportResult.SUCCESS
    (event,) = _events(sqlite_server)
    assert (event.task_type.value, event.project) == ("implementation", "acme/api")


def test_codex_otel_toml(sqlite_server: Served) -> None:
    otel = tomllib.loads(_fill(_block("codex"), sqlite_server))["otel"]
    http = otel["exporter"]["otlp-http"]
    assert http["protocol"] == "binary"  # protobuf
    start = now_ns()
    with exporter(
        {"service.name": "codex_cli_rs"}, endpoint=http["endpoint"], headers=http["headers"]
    ) as agent:
        agent.emit(
            codex_prompt("c", start),
            codex_completed("c", start + NS, tokens=(1_000, 100, 0, 0)),
            codex_prompt("c", start + 2 * NS),
        )
        assert agent.flush() is LogRecordExportResult.SUCCESS
    (event,) = _events(sqlite_server)
    assert (event.provider.value, event.actual_input_tokens) == ("openai", 1_000)


def _json_logs(records: list[Any]) -> dict[str, Any]:
    def value(item: Any) -> dict[str, Any]:
        return {"intValue": str(item)} if isinstance(item, int) else {"stringValue": str(item)}

    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "gemini-cli"}}]
                },
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": str(r.time_ns),
                                "body": {"stringValue": r.body},
                                "attributes": [
                                    {"key": k, "value": value(v)} for k, v in r.attributes.items()
                                ],
                            }
                            for r in records
                        ]
                    }
                ],
            }
        ]
    }


def test_gemini_cli_settings_and_the_header_variable(sqlite_server: Served) -> None:
    telemetry = json.loads(_fill(_block("gemini-cli"), sqlite_server))["telemetry"]
    assert (telemetry["enabled"], telemetry["otlpProtocol"]) == (True, "http")
    docs = DOCS.read_text(encoding="utf-8")
    header = re.search(r'export OTEL_EXPORTER_OTLP_HEADERS="(.*?)"', docs)
    assert header
    name, _, value = _fill(header.group(1), sqlite_server).partition("=")
    # The JavaScript exporter adds the signal's path to the base endpoint and sends OTLP JSON.
    url = f"{telemetry['otlpEndpoint']}/v1/logs"
    start, prompt = now_ns(), f"{uuid.uuid4().hex[:8]}########0"
    records = [
        gemini_prompt("g", prompt, start),
        gemini_response("g", prompt, start + NS, tokens=(2_000, 100, 0, 50, 0)),
        gemini_prompt("g", "next", start + 2 * NS),
    ]
    headers = {name: value, "Content-Type": "application/json"}
    answer = httpx.post(url, json=_json_logs(records), headers=headers)
    assert answer.status_code == 200
    (event,) = _events(sqlite_server)
    assert (event.provider.value, event.actual_output_tokens) == ("google", 150)
    # Older releases post traces and metrics to the same URL: answered, nothing stored.
    for other in (
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]},
        {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "y"}]}]}]},
    ):
        assert httpx.post(url, json=other, headers=headers).status_code == 200
    assert len(_events(sqlite_server)) == 1
