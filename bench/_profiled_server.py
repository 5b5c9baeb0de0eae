"""The server in-process under cProfile: `python -m bench._profiled_server URL`.

The server's work is spread over the event loop's thread and anyio's worker threads, and a
`cProfile.Profile` sees only the thread that enabled it; so `threading.setprofile` makes every
new thread start a profile of its own, and the profiles are merged at the end. Prints the base
URL, serves until stdin closes, then prints one JSON summary: the functions with the most own
CPU time ("self") and our functions by CPU time including callees ("inclusive").
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import threading
import time
from types import FrameType
from typing import Any

from mosaicstack_telemetry_server.runner import serve_in_thread
from mosaicstack_telemetry_server.settings import ServerSettings

_profiles: list[cProfile.Profile] = []
_guard = threading.Lock()
# Time spent in these is a thread waiting for work, not doing it.
_IDLE = ("select.epoll", "_thread.lock", "_thread.RLock", "time.sleep", "'poll'")
_LOOPS = {"_run", "run", "serve"}


def _profile_this_thread(frame: FrameType, event: str, arg: Any) -> None:
    # CPU time of this thread, not wall time: a thread blocked on SQLite's write lock or a
    # socket is not working, and must not look as if it were.
    profile = cProfile.Profile(time.thread_time)
    with _guard:
        _profiles.append(profile)
    profile.enable()  # replaces this bootstrap hook for the rest of the thread


class _Snapshot:
    """What `pstats.Stats` reads, taken from a profile without disabling it."""

    def __init__(self, profile: cProfile.Profile) -> None:
        profile.snapshot_stats()
        self.stats = profile.stats  # type: ignore[attr-defined]

    def create_stats(self) -> None:
        """Already created."""


def _name(key: tuple[str, int, str]) -> str:
    path, line, function = key
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return function if path == "~" else f"{function} ({path}:{line})"


def _summary() -> dict[str, Any]:
    merged = pstats.Stats(_Snapshot(_profiles[0]))
    for profile in _profiles[1:]:
        merged.add(_Snapshot(profile))
    rows = {
        key: (value[2], value[3], value[1])
        for key, value in merged.stats.items()  # type: ignore[attr-defined]
        if not any(idle in key[2] for idle in _IDLE)
    }
    busy = sum(own for own, _, _ in rows.values())
    by_own = sorted(rows.items(), key=lambda item: item[1][0], reverse=True)[:15]
    # Background loops are left out: the time under them is mostly waiting.
    ours = [
        item
        for item in rows.items()
        if "mosaicstack_telemetry" in item[0][0] and item[0][2] not in _LOOPS
    ]
    by_total = sorted(ours, key=lambda item: item[1][1], reverse=True)[:15]
    return {
        "busy_seconds": busy,
        "threads": len(_profiles),
        "self": [(_name(key), own, calls) for key, (own, _, calls) in by_own],
        "inclusive": [(_name(key), total, calls) for key, (_, total, calls) in by_total],
    }


def main() -> None:
    """Serve the database named on the command line, profiled, until stdin closes."""
    threading.setprofile(_profile_this_thread)
    settings = ServerSettings(database_url=sys.argv[1])
    with serve_in_thread(settings, "127.0.0.1") as base_url:
        print(base_url, flush=True)
        sys.stdin.read()
    threading.setprofile(None)  # type: ignore[arg-type]
    print(json.dumps(_summary()), flush=True)


if __name__ == "__main__":
    main()
