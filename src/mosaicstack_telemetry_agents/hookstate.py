"""What the Claude Code hook remembers per session, between its processes: small files.

`<session>.estimates.jsonl` is appended by the fast hook (no lock: one short line per prompt),
so a turn's event can carry the estimate shown before it. `<session>.json` is what the reporter
has reported (request keys and parts per turn), written only under the session's lock, so a turn
reported at `Stop` that goes on is reported for the rest, never twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["ReportState", "append_estimate", "estimate_before", "session_lock"]

_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]")
# Bounds, so that a session that runs for weeks cannot grow its files without limit.
_MAX_STATE_BYTES = 32 * 1024 * 1024
_MAX_ESTIMATE_BYTES = 4 * 1024 * 1024


def _path(state_dir: Path, session_id: str, suffix: str) -> Path:
    name = _SAFE_ID.sub("_", session_id)[:200] or "unknown"
    return state_dir / "sessions" / f"{name}{suffix}"


@contextlib.contextmanager
def session_lock(state_dir: Path, session_id: str) -> Iterator[None]:
    """Hold the session's lock: one reporter at a time per session."""
    path = _path(state_dir, session_id, ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class ReportState:
    """Request keys already reported, and the last part reported of each turn (by turn key)."""

    reported: set[str] = field(default_factory=set)
    parts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path, session_id: str) -> ReportState:
        """The stored state, or an empty one when there is none or it is unreadable."""
        path = _path(state_dir, session_id, ".json")
        try:
            if path.stat().st_size > _MAX_STATE_BYTES:
                return cls()
            data = json.loads(path.read_text("utf-8"))
            return cls(
                reported={k for k in data.get("reported", []) if isinstance(k, str)},
                parts={k: v for k, v in data.get("parts", {}).items() if isinstance(v, int)},
            )
        except (OSError, ValueError, AttributeError, TypeError):
            return cls()

    def save(self, state_dir: Path, session_id: str) -> None:
        """Write atomically (a temporary file renamed over the old one)."""
        path = _path(state_dir, session_id, ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"reported": sorted(self.reported), "parts": self.parts}
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data), "utf-8")
        temporary.replace(path)


def append_estimate(state_dir: Path, session_id: str, record: dict[str, Any]) -> None:
    """Remember an estimate shown (`at` ISO time, `model`, `input`, `output`, `cost`)."""
    path = _path(state_dir, session_id, ".estimates.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if path.stat().st_size > _MAX_ESTIMATE_BYTES:
            return
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _estimates(state_dir: Path, session_id: str) -> Iterator[dict[str, Any]]:
    try:
        with _path(state_dir, session_id, ".estimates.jsonl").open(encoding="utf-8") as handle:
            for line in handle:
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict):
                        yield record
    except OSError:
        return


def estimate_before(
    state_dir: Path, session_id: str, when: datetime | None
) -> dict[str, Any] | None:
    """The last estimate shown at or before `when`; the last one at all, for `model`, if None."""
    chosen = None
    for record in _estimates(state_dir, session_id):
        try:
            shown = datetime.fromisoformat(record["at"])
            if when is None or shown <= when:
                chosen = record
        except (KeyError, TypeError, ValueError):
            continue
    return chosen
