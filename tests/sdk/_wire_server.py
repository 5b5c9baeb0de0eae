"""A scriptable Telemetry API stand-in on 127.0.0.1 that records every request it receives.

Tests queue up answers (`script`), or flip `down`/`hang`; anything unscripted gets the contract's
happy answer (every event accepted, one prediction per query).
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    """One request as it arrived on the wire."""

    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    received_at: float
    status: int = 0

    @property
    def event_ids(self) -> list[str]:
        """The event ids of an events batch, in order."""
        return [event["event_id"] for event in self.body.get("events", [])]


@dataclass
class Answer:
    """A scripted response: a status with headers and a JSON body, or a hang (no response)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    hang: bool = False
    # Send the body one byte per this many seconds: no single read ever times out.
    trickle: float = 0.0


def accepted_answer(request: Recorded) -> Answer:
    """Every event of the batch accepted."""
    results = [{"event_id": i, "status": "accepted", "error": None} for i in request.event_ids]
    return Answer(200, body={"accepted": len(results), "rejected": 0, "results": results})


def prediction_for(query: dict[str, Any], sample_size: int = 42) -> dict[str, Any]:
    """A plausible level-0 prediction for `query`."""
    dist = {"p10": 10, "p25": 20, "median": 30, "p75": 40, "p90": 50}
    return {
        "prediction": {
            "input_tokens": dist,
            "output_tokens": dist,
            "cost_usd_micros": {"median": 1234},
            "duration_ms": {"median": 5678},
            "correction_factors": {"input": 1.1, "output": 0.9},
            "quality": {"gate_pass_rate": 0.8, "success_rate": 0.7},
        },
        "metadata": {
            "sample_size": sample_size,
            "fallback_level": 0,
            "confidence": "low",
            "last_updated": "2026-01-01T00:00:00Z",
            "dimensions_matched": {k: query[k] for k in ("task_type", "model", "provider")}
            | {"complexity": query["complexity"]},
            "fallback_note": None,
            "cache_hit": False,
        },
    }


def default_answer(request: Recorded) -> Answer:
    """The contract's happy path for both batch endpoints."""
    if request.path == "/v1/predictions/batch":
        return Answer(200, body={"results": [prediction_for(q) for q in request.body["queries"]]})
    return accepted_answer(request)


class WireServer:
    """The running server: `url`, the recorded `requests`, and the knobs tests turn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: list[Answer | Callable[[Recorded], Answer]] = []
        self._requests: list[Recorded] = []
        self.down = False
        self.hang = False
        self.release = threading.Event()
        server = self
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(server))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def script(self, *answers: Answer | Callable[[Recorded], Answer]) -> None:
        """Answer the next requests with these, in order; then the default answer again."""
        with self._lock:
            self._script.extend(answers)

    @property
    def requests(self) -> list[Recorded]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def event_requests(self) -> list[Recorded]:
        """The requests to the events endpoint."""
        return [r for r in self.requests if r.path == "/v1/events/batch"]

    def delivered(self) -> Counter[str]:
        """How many times each event id was answered with a 2xx."""
        return Counter(
            i for r in self.event_requests() if 200 <= r.status < 300 for i in r.event_ids
        )

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll `condition` until it holds; fail the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            time.sleep(0.01)

    def close(self) -> None:
        """Release hanging requests and stop serving."""
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, request: Recorded) -> Answer:
        with self._lock:
            self._requests.append(request)
            scripted = self._script.pop(0) if self._script else None
        if scripted is not None:
            return scripted(request) if callable(scripted) else scripted
        if self.hang:
            return Answer(hang=True)
        if self.down:
            return Answer(503, body={"error": {"code": "unavailable", "message": "down"}})
        return default_answer(request)


def _handler_for(server: WireServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            data = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
            try:
                body = json.loads(data)
            except ValueError:
                body = None
            request = Recorded(self.path, headers, raw, body, time.monotonic())
            answer = server._answer(request)
            if answer.hang:
                server.release.wait(30)
                self.close_connection = True
                return
            request.status = answer.status
            payload = json.dumps(answer.body if answer.body is not None else {}).encode()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if not answer.trickle:
                self.wfile.write(payload)
                return
            for i in range(len(payload)):
                if server.release.wait(answer.trickle):
                    return
                self.wfile.write(payload[i : i + 1])
                self.wfile.flush()

    return Handler
