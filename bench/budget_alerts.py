"""Budget alerts: how soon a webhook hears of the batch that crossed a threshold, and what a
check of every budget costs.

`python -m bench.budget_alerts [--rounds N] [--budgets M]`: a server on a temporary SQLite file
with the default check interval (30 s, so only the wake on ingestion can explain a fast
alert) and a webhook receiver on loopback. Each round sets a budget of its own (threshold 50%)
and posts one batch that crosses it; the time from the batch's answer to the alert's arrival is
measured. Then M budgets are set and one check of all of them (`AlertService.check_once`, the
background thread's work) is timed beside a batch's latency while checks run in a loop.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench._timing import Result, percentile
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.budgets.service import AlertService
from mosaicstack_telemetry_server.runner import serve_in_thread
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import open_storage

__all__ = ["run"]

SUITE = "budget_alerts"


def _event(instance: uuid.UUID, cost: int) -> dict[str, Any]:
    return {
        "instance_id": str(instance), "event_id": str(uuid.uuid4()),
        "timestamp": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        "task_duration_ms": 1000, "task_type": "testing", "complexity": "low",
        "harness": "claude_code", "model": "m", "provider": "anthropic",
        "estimated_input_tokens": 0, "estimated_output_tokens": 0, "actual_input_tokens": 10,
        "actual_output_tokens": 10, "estimated_cost_usd_micros": 0,
        "actual_cost_usd_micros": cost, "quality_gate_passed": True, "context_compactions": 0,
        "context_rotations": 0, "context_utilization_final": 0.1, "outcome": "success",
        "retry_count": 0,
    }  # fmt: skip


def _receiver() -> tuple[ThreadingHTTPServer, dict[str, float]]:
    arrived: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            arrived.setdefault(body["budget"], time.perf_counter())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, arrived


def run(rounds: int = 20, budgets: int = 200) -> list[Result]:
    """Alert latency over `rounds` crossings, then a check of `budgets` budgets."""
    with tempfile.TemporaryDirectory(prefix="mosaic-bench-budgets-") as directory:
        url = f"sqlite:///{Path(directory) / 'telemetry.db'}"
        storage = open_storage(url)
        storage.migrate()
        instance = uuid.uuid4()
        key, _ = issue_api_key(storage, instance, "bench")
        admin, _ = issue_api_key(storage, None, "bench", admin=True)
        httpd, arrived = _receiver()
        hook = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
        try:
            with serve_in_thread(ServerSettings(database_url=url)) as base:
                ingest = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})
                ops = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"})
                latencies = []
                for index in range(rounds):
                    name = f"round-{index}"
                    # $1 per round so far: this round's $1 batch crosses 50% of this amount.
                    amount = 2 * (index + 1) * 10**6 - 1
                    body = {"amount_usd_micros": amount, "period": "month", "thresholds": [0.5],
                            "instance_id": str(instance), "webhook_url": hook}  # fmt: skip
                    ops.put(f"/v1/budgets/{name}", json=body).raise_for_status()
                    batch = {"events": [_event(instance, 10**6)]}
                    ingest.post("/v1/events/batch", json=batch).raise_for_status()
                    answered = time.perf_counter()
                    deadline = answered + 10
                    while name not in arrived and time.perf_counter() < deadline:
                        time.sleep(0.002)
                    latencies.append((arrived.get(name, deadline) - answered) * 1000)
                    ops.delete(f"/v1/budgets/{name}").raise_for_status()
                results = [
                    Result(SUITE, "batch answered -> webhook received", percentile(latencies, 50),
                           "ms (median)", f"max {max(latencies):.0f} ms; {rounds} rounds; "
                           "check interval 30 s (woken by the batch)"),
                ]  # fmt: skip
                results += _check_cost(storage, ops, ingest, instance, budgets)
        finally:
            httpd.shutdown()
            storage.close()
    return results


def _check_cost(
    storage: Any, ops: httpx.Client, ingest: httpx.Client, instance: uuid.UUID, count: int
) -> list[Result]:
    for index in range(count):
        body = {"amount_usd_micros": 10**15, "period": ("day", "week", "month")[index % 3],
                "instance_id": None if index % 2 else str(instance)}  # fmt: skip
        ops.put(f"/v1/budgets/many-{index}", json=body).raise_for_status()
    service = AlertService(storage, check_interval=3600)
    checks = []
    for _ in range(5):
        started = time.perf_counter()
        service.check_once()
        checks.append((time.perf_counter() - started) * 1000)
    batches = []
    for _ in range(30):
        started = time.perf_counter()
        ingest.post("/v1/events/batch", json={"events": [_event(instance, 1)]})
        batches.append((time.perf_counter() - started) * 1000)
    return [
        Result(SUITE, f"one check of {count} budgets", percentile(checks, 50), "ms (median)",
               f"max {max(checks):.0f} ms; in the background thread"),
        Result(SUITE, "batch of 1 event (each wakes a check)", percentile(batches, 50),
               "ms (median)", f"p95 {percentile(batches, 95):.1f} ms"),
    ]  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.budget_alerts")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--budgets", type=int, default=200)
    arguments = parser.parse_args()
    for result in run(arguments.rounds, arguments.budgets):
        print(f"{result.name}: {result.value:.1f} {result.unit} ({result.note})")
