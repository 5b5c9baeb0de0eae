"""The server in-process under a sampling profiler: `python -m bench._profiled_server URL`.

cProfile sees one thread, but the server's work is spread over the event loop and its worker
threads, so this samples every thread's stack (`sys._current_frames()`) every millisecond or
so instead. Prints the base URL, serves until stdin closes, then prints one JSON summary:
the busiest functions by own time ("self") and by time including callees ("inclusive").
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from types import FrameType

from mosaicstack_telemetry_server.runner import serve_in_thread
from mosaicstack_telemetry_server.settings import ServerSettings

_INTERVAL = 0.001
# A thread whose innermost Python frame is one of these is waiting, not working.
_IDLE = {
    ("threading.py", "wait"),
    ("selectors.py", "select"),
    ("queue.py", "get"),
    ("threading.py", "_wait_for_tstate_lock"),
    ("thread.py", "_worker"),
}


def _where(frame: FrameType) -> str:
    path = frame.f_code.co_filename
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{frame.f_code.co_name} ({path}:{frame.f_code.co_firstlineno})"


def _idle(frame: FrameType) -> bool:
    name = frame.f_code.co_filename.rsplit("/", 1)[-1]
    return (name, frame.f_code.co_name) in _IDLE


class _Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True, name="sampler")
        self.own: Counter[str] = Counter()
        self.inclusive: Counter[str] = Counter()
        self.busy = 0
        self.samples = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        skip = {threading.get_ident(), threading.main_thread().ident}
        while not self.stopping.is_set():
            for ident, frame in sys._current_frames().items():
                if ident in skip:
                    continue
                self.samples += 1
                if _idle(frame):
                    continue
                self.busy += 1
                self.own[_where(frame)] += 1
                seen = set()
                walker: FrameType | None = frame
                while walker is not None:
                    seen.add(_where(walker))
                    walker = walker.f_back
                self.inclusive.update(seen)
            time.sleep(_INTERVAL)


def main() -> None:
    """Serve the database named on the command line, profiled, until stdin closes."""
    settings = ServerSettings(database_url=sys.argv[1])
    with serve_in_thread(settings, "127.0.0.1") as base_url:
        print(base_url, flush=True)
        sampler = _Sampler()
        sampler.start()
        sys.stdin.read()
        sampler.stopping.set()
        sampler.join()
    summary = {
        "busy": sampler.busy,
        "samples": sampler.samples,
        "self": sampler.own.most_common(15),
        "inclusive": sampler.inclusive.most_common(40),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
