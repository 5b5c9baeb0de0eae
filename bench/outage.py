"""Outages and exits: what the default config delivers through one, and how long exit takes.

`python -m bench.outage [--quick] [--rate N] [--outages S,S,...]`. A producer tracks at 100
events/s (`--rate`; paced to the rate, so it is achieved) into a client with the default config
(300 s interval, queue of 1,000) while the server goes away (nothing listens on its port) for
5 s, 10 s and 60 s, then comes back; the figures are issue 7's: time from the server's return to
the first stored batch, and the share of events delivered, with issue 17's: the events evicted
after the server's return, and how many of those tracked after it were never delivered. Then a
child process tracks and exits (no stop()) against a server that never answers and one that
refuses the connection, timed from its last track() to its end.
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mosaicstack_telemetry import EventBuilder, TelemetryClient, TelemetryConfig

_KEY = "0" * 64
_INSTANCE = "00000000-0000-4000-8000-000000000000"
_RATE = 100


class _Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: set[str] = set()
        self.first_after: float | None = None


def _handler(store: _Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            ids = [e["event_id"] for e in json.loads(raw).get("events", [])]
            with store.lock:
                store.ids.update(ids)
                if store.first_after is None:
                    store.first_after = time.monotonic()
            body = json.dumps({"accepted": len(ids), "rejected": 0, "results": []}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    return Handler


def _serve(port: int, store: _Store) -> ThreadingHTTPServer:
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(store))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    return server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _produce(client: TelemetryClient, seconds: float, tracked: list[str], rate: float) -> None:
    started = time.monotonic()
    sent = 0
    while (now := time.monotonic()) - started < seconds:
        # Paced on the clock, not by a fixed sleep: the rate is the one asked for.
        due = started + sent / rate
        if due > now:
            time.sleep(due - now)
        event = EventBuilder(_INSTANCE).model("bench").build()
        client.track(event)
        tracked.append(str(event.event_id))
        sent += 1


def outage(seconds: float, after: float = 20.0, rate: float = _RATE) -> dict[str, float]:
    """One outage of `seconds` with the default config; the issues' figures."""
    port, store = _free_port(), _Store()
    config = TelemetryConfig(
        server_url=f"http://127.0.0.1:{port}", api_key=_KEY, instance_id=_INSTANCE
    )
    client = TelemetryClient(config)
    client.start()
    tracked: list[str] = []
    _produce(client, seconds, tracked, rate)  # nothing listens: the outage
    server = _serve(port, store)
    back = time.monotonic()
    evicted_at_return, tracked_at_return = client.stats().evicted, len(tracked)
    _produce(client, after, tracked, rate)
    with store.lock:
        before_stop = len(store.ids & set(tracked))
        first = (store.first_after - back) if store.first_after else float("nan")
    client.stop()
    server.shutdown()
    server.server_close()
    stats = client.stats()
    after_return = set(tracked[tracked_at_return:])
    return {
        "outage_s": seconds,
        "rate_per_s": rate,
        "tracked": len(tracked),
        "first_batch_after_return_s": round(first, 2),
        "delivered_before_stop_pct": round(100 * before_stop / len(tracked), 1),
        "delivered_pct": round(100 * len(store.ids & set(tracked)) / len(tracked), 1),
        "evicted": stats.evicted,
        "evicted_after_return": stats.evicted - evicted_at_return,
        "tracked_after_return_lost": len(after_return - store.ids),
    }


_EXIT_CHILD = """
from mosaicstack_telemetry import EventBuilder, TelemetryClient, TelemetryConfig
client = TelemetryClient(TelemetryConfig(server_url={url!r}, api_key={key!r},
                                         instance_id={iid!r}))
client.start()
for _ in range(5):
    client.track(EventBuilder({iid!r}).model("bench").build())
print("tracked", flush=True)
"""


def exit_seconds(url: str) -> float:
    """Seconds from a child's last track() to its end (interpreter exit, no stop())."""
    code = _EXIT_CHILD.format(url=url, key=_KEY, iid=_INSTANCE)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    child.stdout.readline()
    started = time.monotonic()
    child.wait(timeout=60)
    return round(time.monotonic() - started, 2)


def _hanging_server() -> tuple[socket.socket, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # accepts (the kernel does) and never answers
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def main() -> None:
    """Run the outages and the exits; print one JSON line per measure."""
    parser = argparse.ArgumentParser(prog="python -m bench.outage", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 s and 10 s only (no 60 s)")
    parser.add_argument("--rate", type=float, default=_RATE, help="events/s (default: 100)")
    parser.add_argument("--outages", help="outage lengths in seconds, e.g. 60 or 5,10")
    parser.add_argument("--no-exit", action="store_true", help="skip the exit timings")
    args = parser.parse_args()
    lengths = (5.0, 10.0) if args.quick else (5.0, 10.0, 60.0)
    if args.outages:
        lengths = tuple(float(part) for part in args.outages.split(","))
    for seconds in lengths:
        print(json.dumps(outage(seconds, rate=args.rate)), flush=True)
    if args.no_exit:
        return
    sock, url = _hanging_server()
    with sock:
        print(json.dumps({"exit_hanging_server_s": exit_seconds(url)}), flush=True)
    print(
        json.dumps({"exit_connection_refused_s": exit_seconds(f"http://127.0.0.1:{_free_port()}")})
    )


if __name__ == "__main__":
    main()
