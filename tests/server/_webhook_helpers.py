"""A real webhook receiver on loopback for the budget alert tests: it records every POST and
answers 503 while it is `down` (or for its first `fail_first` requests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request the receiver got, and what it answered."""

    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict[str, Any]:
        """The body, parsed."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """What the receiver got; set `down` to make it answer 503."""

    url: str
    down: bool = False
    # What a request that is not refused is answered (a redirect, to check none is followed).
    answer: int = 200
    location: str = ""
    fail_first: int = 0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self) -> list[dict[str, Any]]:
        """The bodies it answered 2xx to, in order."""
        with self.lock:
            return [item.json for item in self.received if item.status == 200]

    def attempts(self) -> int:
        """Every request, answered or refused."""
        with self.lock:
            return len(self.received)


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """A receiver on a free loopback port, stopped afterwards."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                failing = receiver.down or receiver.fail_first > 0
                receiver.fail_first = max(receiver.fail_first - 1, 0)
                status = 503 if failing else receiver.answer
                receiver.received.append(Received(dict(self.headers.items()), body, status))
            self.send_response(status)
            if receiver.location:
                self.send_header("Location", receiver.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        httpd.shutdown()
        httpd.server_close()
