"""A tiny HTTP server that answers 200 to everything: where every client under test sends.

It runs in a subprocess (`python -m bench._sink`) so that its work never competes with the
clients for the benchmark process's GIL; it prints its port on stdout, serves until stdin
closes, then prints how many requests and events it got per path (proof that every client's
submitter really sent).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Sink", "sink_server"]

_requests: Counter[str] = Counter()
_lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, as every real client and collector does.
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with _lock:
            _requests[self.path.split("?")[0]] += 1
        # Our SDK reads per-event verdicts; the peers ignore the body.
        reply = {"status": 1, "accepted": 0, "rejected": 0, "results": []}
        if self.path.startswith("/v1/events/batch") and body:
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            events = json.loads(body).get("events", [])
            reply["accepted"] = len(events)
            reply["results"] = [
                {"event_id": e.get("event_id"), "status": "accepted", "error": None} for e in events
            ]
        payload = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET = do_PUT = _answer  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: a line per request would cost more than the request."""


def _serve() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.shutdown()
    with _lock:
        print(json.dumps(dict(_requests)), flush=True)


@dataclass
class Sink:
    """A running sink: its base URL; once stopped, the request count of each path."""

    url: str
    requests: dict[str, int] = field(default_factory=dict)


@contextmanager
def sink_server() -> Iterator[Sink]:
    """Start the sink in a subprocess; yield it, with `requests` filled in on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._sink"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        sink = Sink(f"http://127.0.0.1:{int(process.stdout.readline())}")
        yield sink
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)
    assert process.stdout is not None
    sink.requests = json.loads(process.stdout.readline() or "{}")


if __name__ == "__main__":
    _serve()
