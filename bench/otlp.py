"""OTLP log records per second into the server, beside plain event ingestion in the same run.

One `mosaic-telemetry serve` process per backend; `_CLIENTS` threads, each a developer
machine's exporter with one request in flight: OTLP protobuf requests of 512 records (the SDK's
default batch), shaped as Claude Code sends them (a prompt, its API calls, and the tool records
the receiver counts and ignores), against `POST /v1/events/batch` requests of 100 events.
Bodies are built before the clock starts: the server is measured, not the client.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from bench._server import database, serve_process
from bench._timing import Result
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.demo_data import random_uuid, simulate_events
from mosaicstack_telemetry_server.storage import open_storage

__all__ = ["run"]

SUITE = "otlp"
_CLIENTS = 4
_RECORDS_PER_REQUEST = 512
_EVENTS_PER_REQUEST = 100
# Per prompt: the prompt, its API calls, and tool records (ignored by the receiver).
_CALLS_PER_PROMPT = 6
_TOOLS_PER_PROMPT = 9


def _attribute(record: object, key: str, value: str) -> None:
    attribute = record.attributes.add()  # type: ignore[attr-defined]
    attribute.key, attribute.value.string_value = key, value


def _codex_bodies(client: int, requests: int, rng: random.Random) -> list[bytes]:
    """Codex-shaped requests: per prompt a `codex.user_prompt`, 6 `response.completed` events
    (priced with genai-prices: Codex sends no cost) and 9 other `codex.sse_event`s."""
    bodies = []
    start = time.time_ns() - 3_600 * 10**9
    prompt = 0
    for number in range(requests):
        request = ExportLogsServiceRequest()
        resource = request.resource_logs.add()
        _attribute(resource.resource, "service.name", "codex_cli_rs")
        scope = resource.scope_logs.add()
        while len(scope.log_records) < _RECORDS_PER_REQUEST:
            prompt += 1
            kinds = ["response.completed"] * _CALLS_PER_PROMPT
            kinds += ["response.output_text.delta"] * _TOOLS_PER_PROMPT
            conversation = f"c{client}-s{prompt // 20}"
            for kind in [None, *kinds]:
                record = scope.log_records.add()
                record.time_unix_nano = start + (number * 10_000 + len(scope.log_records)) * 10**6
                record.event_name = "codex.user_prompt" if kind is None else "codex.sse_event"
                _attribute(record, "conversation.id", conversation)
                if kind is not None:
                    _attribute(record, "event.kind", kind)
                if kind == "response.completed":
                    _attribute(record, "model", "gpt-5-codex")
                    for name, top in (
                        ("input_token_count", 90_000),
                        ("output_token_count", 3_000),
                        ("cached_token_count", 80_000),
                        ("reasoning_token_count", 1_000),
                    ):
                        count = record.attributes.add()
                        count.key, count.value.int_value = name, rng.randint(0, top)
        del scope.log_records[_RECORDS_PER_REQUEST:]
        bodies.append(request.SerializeToString())
    return bodies


def _otlp_bodies(client: int, requests: int, rng: random.Random) -> list[bytes]:
    bodies = []
    start = time.time_ns() - 3_600 * 10**9
    prompt = 0
    for number in range(requests):
        request = ExportLogsServiceRequest()
        resource = request.resource_logs.add()
        _attribute(resource.resource, "service.name", "claude-code")
        _attribute(resource.resource, "mosaic.task_type", "implementation")
        scope = resource.scope_logs.add()
        while len(scope.log_records) < _RECORDS_PER_REQUEST:
            prompt += 1
            session, prompt_id = f"c{client}-s{prompt // 20}", f"c{client}-p{prompt}"
            names = ["claude_code.user_prompt"]
            names += ["claude_code.api_request"] * _CALLS_PER_PROMPT
            names += ["claude_code.tool_result"] * _TOOLS_PER_PROMPT
            for index, name in enumerate(names):
                record = scope.log_records.add()
                record.time_unix_nano = start + (number * 10_000 + len(scope.log_records)) * 10**6
                record.body.string_value = name
                _attribute(record, "session.id", session)
                _attribute(record, "prompt.id", prompt_id)
                if name.endswith("api_request"):
                    _attribute(record, "model", "claude-sonnet-4-5-20250929")
                    _attribute(record, "cost_usd", f"{rng.random() / 20:.6f}")
                    _attribute(record, "input_tokens", str(rng.randint(1, 500)))
                    _attribute(record, "output_tokens", str(rng.randint(10, 3_000)))
                    _attribute(record, "cache_read_tokens", str(rng.randint(0, 80_000)))
                    _attribute(record, "cache_creation_tokens", str(rng.randint(0, 5_000)))
                    _attribute(record, "duration_ms", str(rng.randint(500, 20_000)))
                else:
                    _attribute(record, "tool_name", f"Tool{index}")
        del scope.log_records[_RECORDS_PER_REQUEST:]
        bodies.append(request.SerializeToString())
    return bodies


def _event_bodies(instance: UUID, requests: int, rng: random.Random) -> list[bytes]:
    events = [
        event for _, event in simulate_events(rng, [instance], requests * _EVENTS_PER_REQUEST)
    ]
    bodies = []
    for start in range(0, len(events), _EVENTS_PER_REQUEST):
        chunk = events[start : start + _EVENTS_PER_REQUEST]
        payload = ",".join(event.model_dump_json() for event in chunk)
        bodies.append(f'{{"events": [{payload}]}}'.encode())
    return bodies


def _drive(url: str, path: str, media: str, keys: list[str], bodies: list[list[bytes]]) -> float:
    """Seconds to send every client's bodies (one request in flight per client)."""

    def client(index: int) -> None:
        headers = {"Authorization": f"Bearer {keys[index]}", "Content-Type": media}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            for body in bodies[index]:
                answer = http.post(path, content=body)
                if answer.status_code not in (200, 207):
                    raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:200]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(_CLIENTS) as pool:
        list(pool.map(client, range(_CLIENTS)))
    return time.perf_counter() - started


def _backend(backend: str, requests: int) -> list[Result]:
    rng = random.Random(19)
    with database(backend) as url:
        storage = open_storage(url)
        storage.migrate()
        instances = [random_uuid(rng) for _ in range(_CLIENTS)]
        keys = [issue_api_key(storage, instance, "bench")[0] for instance in instances]
        otlp = [_otlp_bodies(n, requests, rng) for n in range(_CLIENTS)]
        events = [_event_bodies(instance, requests // 2, rng) for instance in instances]
        codex = [_codex_bodies(n, requests // 2, rng) for n in range(_CLIENTS)]
        with serve_process(url) as base:
            send: Callable[[str, str, list[list[bytes]]], float]

            def send(path: str, media: str, bodies: list[list[bytes]]) -> float:
                return _drive(base, path, media, keys, bodies)

            send("/v1/logs", "application/x-protobuf", [b[:2] for b in otlp])  # warm up
            otlp_seconds = send("/v1/logs", "application/x-protobuf", [b[2:] for b in otlp])
            event_seconds = send("/v1/events/batch", "application/json", events)
            codex_seconds = send("/v1/logs", "application/x-protobuf", codex)
        open_tasks = storage.otlp_open_tasks()
        storage.close()
    records = _CLIENTS * (requests - 2) * _RECORDS_PER_REQUEST
    stored = _CLIENTS * (requests // 2) * _EVENTS_PER_REQUEST
    note = f"{_CLIENTS} clients, 1 process, {_RECORDS_PER_REQUEST} records per request"
    return [
        Result(
            SUITE,
            f"OTLP log records ({backend})",
            records / otlp_seconds,
            "records/s",
            f"{note}; {records:,} records, {open_tasks:,} tasks open after",
        ),
        Result(
            SUITE,
            f"OTLP API calls summed ({backend})",
            records
            * _CALLS_PER_PROMPT
            / (1 + _CALLS_PER_PROMPT + _TOOLS_PER_PROMPT)
            / otlp_seconds,
            "calls/s",
            "the records that are API calls",
        ),
        Result(
            SUITE,
            f"OTLP log records, Codex-shaped ({backend})",
            _CLIENTS * (requests // 2) * _RECORDS_PER_REQUEST / codex_seconds,
            "records/s",
            "after the events; its calls priced with genai-prices (Codex sends no cost)",
        ),
        Result(
            SUITE,
            f"events, POST /v1/events/batch ({backend})",
            stored / event_seconds,
            "events/s",
            f"same server, same run; {stored:,} events, 100 per request",
        ),
    ]


def run(quick: bool) -> list[Result]:
    """Run the suite on both backends; `quick` sends fewer requests."""
    requests = 12 if quick else 42
    return [result for backend in ("sqlite", "postgres") for result in _backend(backend, requests)]
