"""The SDK's hot path beside PostHog, Segment and OpenTelemetry, plus builder, memory, import.

Every client runs its real background submitter against the local sink (`bench._sink`), the
OTel one through a `BatchSpanProcessor` into an exporter that discards. Contenders take turns
batch by batch, so a noisy neighbour on the machine hurts them all alike.
"""

from __future__ import annotations

import gc
import logging
import random
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from bench._sink import sink_server
from bench._timing import Result, deadline_wait, percentile, time_batches
from mosaicstack_telemetry import (
    Complexity,
    EventBuilder,
    Harness,
    Outcome,
    Provider,
    QualityGate,
    TaskCompletionEvent,
    TaskType,
    TelemetryClient,
    TelemetryConfig,
)
from mosaicstack_telemetry_server.demo_data import random_uuid, simulate_events

__all__ = ["run"]

SUITE = "track"
_BATCH = 100  # calls timed together
_FLUSH_EVERY = 10  # batches between untimed drains, well inside every queue's capacity
_QUEUE = 10_000
_API_KEY = "0" * 64


@dataclass
class _Contender:
    name: str
    call: Callable[[int], object]
    drain: Callable[[], object]
    close: Callable[[], object]


def _events(count: int) -> list[TaskCompletionEvent]:
    rng = random.Random(1)
    return [event for _, event in simulate_events(rng, [random_uuid(rng)], count)]


def _ours(url: str, events: list[TaskCompletionEvent]) -> _Contender:
    config = TelemetryConfig(
        server_url=url,
        api_key=_API_KEY,
        instance_id=str(events[0].instance_id),
        max_queue_size=_QUEUE,
        submit_interval_seconds=1.0,
    )
    client = TelemetryClient(config)
    client.start()
    size = len(events)
    return _Contender(
        "mosaicstack track()",
        lambda i: client.track(events[i % size]),
        lambda: deadline_wait(lambda: client.queue_size == 0, 30, "our queue to drain"),
        client.stop,
    )


def _posthog(url: str, properties: dict[str, object]) -> _Contender:
    from posthog import Posthog

    client = Posthog("phc_bench", host=url, max_queue_size=_QUEUE, disable_geoip=True)
    return _Contender(
        "PostHog capture()",
        lambda i: client.capture("task_completed", distinct_id="bench", properties=properties),
        client.flush,
        client.shutdown,
    )


def _segment(url: str, properties: dict[str, object]) -> _Contender:
    from segment.analytics import Client

    client = Client("bench-write-key", host=url, max_queue_size=_QUEUE)
    return _Contender(
        "Segment track()",
        lambda i: client.track("bench", "task_completed", properties),
        client.flush,
        client.shutdown,
    )


def _otel() -> _Contender:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class _Discard(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Discard(), max_queue_size=_QUEUE))
    tracer = provider.get_tracer("bench")
    attributes = {
        "task.type": "implementation",
        "llm.model": "claude-sonnet-4",
        "llm.provider": "anthropic",
        "llm.tokens.input": 52_311,
        "llm.cost.usd_micros": 293_400,
    }

    def call(_: int) -> None:
        tracer.start_span("agent.task", attributes=attributes).end()

    return _Contender(
        "OTel span + BatchSpanProcessor", call, provider.force_flush, provider.shutdown
    )


def _hot_path(quick: bool) -> list[Result]:
    rounds = 60 if quick else 400
    events = _events(1000)
    properties = events[0].model_dump(mode="json")
    with sink_server() as sink:
        url = sink.url
        contenders = [
            _ours(url, events),
            _posthog(url, properties),
            _segment(url, properties),
            _otel(),
        ]
        samples: dict[str, list[float]] = {c.name: [] for c in contenders}
        try:
            for _ in range(3):  # warm-up: connections, caches, lazy imports
                for contender in contenders:
                    time_batches(contender.call, rounds=1, batch=_BATCH)
                    contender.drain()
            for round_ in range(rounds):
                for contender in contenders:
                    samples[contender.name] += time_batches(contender.call, rounds=1, batch=_BATCH)
                    if round_ % _FLUSH_EVERY == _FLUSH_EVERY - 1:
                        contender.drain()
        finally:
            for contender in contenders:
                contender.close()
    ours = statistics.median(samples[contenders[0].name])
    results = []
    for name, values in samples.items():
        median = statistics.median(values)
        ratio = "" if name == contenders[0].name else f"{median / ours:.1f}x ours"
        results.append(Result(SUITE, f"{name} median", median, "ns/call", ratio))
        results.append(Result(SUITE, f"{name} p99", percentile(values, 99), "ns/call"))
    sent = ", ".join(f"{path}: {count}" for path, count in sorted(sink.requests.items()))
    results.append(
        Result(SUITE, "requests the sink received", sum(sink.requests.values()), "requests", sent)
    )
    return results


def _full_builder(instance_id: UUID) -> EventBuilder:
    return (
        EventBuilder(instance_id)
        .task_type(TaskType.IMPLEMENTATION)
        .complexity_level(Complexity.MEDIUM)
        .harness_type(Harness.CLAUDE_CODE)
        .model("claude-sonnet-4")
        .provider(Provider.ANTHROPIC)
        .duration_ms(93_000)
        .tokens(estimated_in=40_000, estimated_out=8_000, actual_in=52_311, actual_out=9_120)
        .cost(estimated=250_000, actual=293_400)
        .quality(passed=True, gates_run=[QualityGate.BUILD, QualityGate.TEST])
        .context(compactions=1, utilization=0.62)
        .outcome_value(Outcome.SUCCESS)
    )


def _builder(quick: bool) -> list[Result]:
    rounds = 50 if quick else 300
    instance_id = UUID(int=1, version=4)
    reused = _full_builder(instance_id)
    chain = time_batches(lambda _: _full_builder(instance_id).build(), rounds=rounds, batch=_BATCH)
    build = time_batches(lambda _: reused.build(), rounds=rounds, batch=_BATCH)
    return [
        Result(SUITE, "EventBuilder(...) chain + build() median", statistics.median(chain), "ns"),
        Result(SUITE, "EventBuilder(...) chain + build() p99", percentile(chain, 99), "ns"),
        Result(SUITE, "reused builder .build() median", statistics.median(build), "ns"),
    ]


def _memory(quick: bool) -> list[Result]:
    count = 2_000 if quick else 10_000
    instance_id = UUID(int=2, version=4)
    config = TelemetryConfig(
        server_url="http://127.0.0.1:9",
        api_key=_API_KEY,
        instance_id=str(instance_id),
        max_queue_size=count,
    )
    client = TelemetryClient(config)  # never started: the queue only fills
    builder = _full_builder(instance_id)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        events = [builder.build() for _ in range(count)]
        built = tracemalloc.get_traced_memory()[0]
        for event in events:
            client.track(event)
        del events, event
        gc.collect()
        queued = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    if client.queue_size != count:
        raise RuntimeError(f"expected {count} queued events, found {client.queue_size}")
    return [
        Result(
            SUITE,
            "memory per queued event (event + queue slot)",
            (queued - before) / count,
            "bytes",
            f"{count} events, tracemalloc",
        ),
        Result(SUITE, "  of which the event object", (built - before) / count, "bytes"),
    ]


_IMPORTTIME = re.compile(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|\s*(\S+)")


def _import_us(module: str) -> float:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in done.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match and match.group(2) == module:
            return float(match.group(1))
    raise RuntimeError(f"no importtime line for {module}")


def _wall_ms(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return (time.perf_counter() - started) * 1000


def import_times_ms(modules: Sequence[str], runs: int) -> dict[str, float]:
    """Median cumulative import time of each module, in turns (a noisy neighbour hits all)."""
    samples: dict[str, list[float]] = {module: [] for module in modules}
    for _ in range(runs):
        for module in modules:
            samples[module].append(_import_us(module) / 1000)
    return {module: statistics.median(values) for module, values in samples.items()}


def _import_time(quick: bool) -> list[Result]:
    runs = 5 if quick else 15
    modules = (
        "mosaicstack_telemetry",
        "posthog",
        "segment.analytics",
        "opentelemetry.sdk.trace",
    )
    medians = import_times_ms(modules, runs)
    results = [
        Result(
            SUITE,
            f"import {module} (-X importtime)",
            median,
            "ms",
            f"median of {runs}, cumulative, in turns",
        )
        for module, median in medians.items()
    ]
    results.append(
        Result(
            SUITE,
            "import mosaicstack_telemetry / import posthog",
            medians["mosaicstack_telemetry"] / medians["posthog"],
            "ratio",
            "same run; goal <= 0.6 (issue 7)",
        )
    )
    bare = statistics.median(_wall_ms("pass") for _ in range(runs))
    ours = statistics.median(_wall_ms("import mosaicstack_telemetry") for _ in range(runs))
    results.append(
        Result(
            SUITE,
            "import mosaicstack_telemetry (wall, minus bare python)",
            ours - bare,
            "ms",
            f"bare python {bare:.0f} ms",
        )
    )
    return results


def run(quick: bool) -> list[Result]:
    """Run the whole suite; `quick` trades precision for time."""
    # The peers log every dropped or failed request; nothing should fail, keep it visible.
    logging.basicConfig(level=logging.WARNING)
    return _hot_path(quick) + _builder(quick) + _memory(quick) + _import_time(quick)
