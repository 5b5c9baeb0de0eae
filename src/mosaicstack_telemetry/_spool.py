"""The disk spool: events that could not be sent in time, kept in files for the next sender.

Opt-in (`TelemetryConfig.spool_dir`). It takes what the shutdown budget could not send and what a
full queue would evict. Each file is a batch (one event per JSON line), written to a temporary
name and renamed into place (readers never see half a file), mode 0600 in a 0700 directory.
Names sort oldest first: `<time_ns>-<pid>-<token>-<count>.events`.

Several processes may share a directory. A sender claims a file by renaming it to
`<name>.claimed-<pid>`; a rename succeeds for one process only. After delivery it deletes the file;
if delivery fails it renames it back. A crash between a send and the deletion resends the batch,
which the server's idempotency by `event_id` stores once. A claim whose process is gone is put
back by the next sender. The size cap deletes the oldest unclaimed files first, and counts them.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from mosaicstack_telemetry._logs import logger
from mosaicstack_telemetry.models.events import TaskCompletionEvent
from mosaicstack_telemetry.stats import Tally

__all__ = ["Claim", "Spool"]

_SUFFIX = ".events"
_CLAIMED = ".claimed-"
_TEMP_PREFIX = ".tmp-"
# A temporary file older than this belongs to a writer that died mid-write.
_STALE_TEMP_SECONDS = 3600.0
# Events per file: one request's worth, so a claim is one batch.
_EVENTS_PER_FILE = 100
# A line longer than this is not an event the SDK wrote (an event is about 800 bytes).
_MAX_LINE_BYTES = 64 * 1024
# The SDK writes at most _EVENTS_PER_FILE per file; a file with more lines was not written by it,
# and reading it whole could take any amount of memory.
_MAX_LINES_READ = 10 * _EVENTS_PER_FILE


@dataclass(frozen=True)
class Claim:
    """A spool file this process holds, with its events."""

    path: Path
    original: Path
    events: list[TaskCompletionEvent]


def _count_of(path: Path) -> int:
    try:
        return int(path.name.split(_CLAIMED)[0].removesuffix(_SUFFIX).rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or a pid we cannot judge): leave its claim alone
    return True


class Spool:
    """One spool directory: write batches, claim the oldest, give back or delete what was sent."""

    def __init__(self, directory: Path, max_bytes: int, tally: Tally) -> None:
        self.directory = directory
        self._max_bytes = max_bytes
        self._tally = tally

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def write(self, events: list[TaskCompletionEvent]) -> int:
        """Spool `events` (in files of one batch each); return how many were written."""
        written = 0
        for start in range(0, len(events), _EVENTS_PER_FILE):
            chunk = events[start : start + _EVENTS_PER_FILE]
            try:
                self._write_file(chunk)
            except (OSError, ValueError) as exc:
                logger.warning(
                    "could not spool %d events to %s (%s)",
                    len(events) - written,
                    self.directory,
                    type(exc).__name__,
                )
                break
            written += len(chunk)
        self._tally.add("spooled", written)
        if written:
            self._enforce_cap()
        return written

    def _write_file(self, events: list[TaskCompletionEvent], name: str | None = None) -> None:
        lines = b"".join(e.model_dump_json(warnings=False).encode() + b"\n" for e in events)
        self._ensure_directory()
        # Unique within the directory together with the time and pid; not a secret.
        token = os.urandom(4).hex()
        name = name or f"{time.time_ns():020d}-{os.getpid()}-{token}-{len(events)}{_SUFFIX}"
        temp = self.directory / f"{_TEMP_PREFIX}{os.getpid()}-{token}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(lines)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.directory / name)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise

    def _ready(self) -> list[Path]:
        try:
            names = sorted(os.listdir(self.directory))
        except OSError:
            return []
        return [self.directory / n for n in names if n.endswith(_SUFFIX)]

    def pending(self) -> int:
        """How many events wait in unclaimed files (from any process)."""
        return sum(_count_of(path) for path in self._ready())

    def claim(self) -> Claim | None:
        """Claim the oldest unclaimed file and read it; None when there is none."""
        for path in self._ready():
            claimed = path.with_name(f"{path.name}{_CLAIMED}{os.getpid()}")
            try:
                os.rename(path, claimed)
            except OSError:
                continue  # another sender claimed it first
            events = self._read(claimed)
            if events:
                return Claim(claimed, path, events)
            with contextlib.suppress(OSError):
                claimed.unlink()
        return None

    def _read(self, path: Path) -> list[TaskCompletionEvent]:
        events: list[TaskCompletionEvent] = []
        bad = 0
        try:
            with path.open("rb") as source:
                for number, line in enumerate(source):
                    if number >= _MAX_LINES_READ:
                        logger.warning(
                            "spool file %s has more than %d lines: the rest is skipped",
                            path.name,
                            _MAX_LINES_READ,
                        )
                        break
                    if line.strip():
                        try:
                            events.append(
                                TaskCompletionEvent.model_validate_json(line[:_MAX_LINE_BYTES])
                            )
                        except ValueError:
                            bad += 1
        except OSError as exc:
            logger.warning("could not read spool file %s (%s)", path.name, type(exc).__name__)
        if bad:
            logger.warning("skipped %d unreadable lines in spool file %s", bad, path.name)
        return events

    def finish(self, claim: Claim) -> None:
        """Delete a claimed file whose events were all delivered."""
        with contextlib.suppress(FileNotFoundError):
            claim.path.unlink()

    def give_back(self, claim: Claim, unsent: list[TaskCompletionEvent]) -> None:
        """Return the `unsent` events of `claim` to the spool for a later sender."""
        try:
            if len(unsent) == len(claim.events):
                os.rename(claim.path, claim.original)
                return
            # Part was delivered: the rest keeps the file's place in the order (its time).
            stem = claim.original.name.removesuffix(_SUFFIX).rsplit("-", 1)[0]
            self._write_file(unsent, f"{stem}-{len(unsent)}{_SUFFIX}")
            claim.path.unlink()
        except OSError as exc:
            logger.warning("could not return events to the spool (%s)", type(exc).__name__)

    def recover(self) -> None:
        """Put back the claims of processes that died, and remove their half-written files."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            path = self.directory / name
            if _CLAIMED in name:
                owner = name.rsplit(_CLAIMED, 1)[1]
                if owner.isdigit() and not _pid_alive(int(owner)):
                    with contextlib.suppress(OSError):
                        os.rename(path, self.directory / name.rsplit(_CLAIMED, 1)[0])
            elif name.startswith(_TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    if time.time() - path.stat().st_mtime > _STALE_TEMP_SECONDS:
                        path.unlink()

    def _enforce_cap(self) -> None:
        ready = self._ready()
        sizes: dict[Path, int] = {}
        for path in ready:
            with contextlib.suppress(OSError):
                sizes[path] = path.stat().st_size
        total = sum(sizes.values())
        evicted = 0
        for path in ready:  # oldest first
            if total <= self._max_bytes:
                break
            try:
                path.unlink()
            except OSError:
                continue  # claimed or removed by another process meanwhile
            total -= sizes.get(path, 0)
            evicted += _count_of(path)
        if evicted:
            self._tally.add("spool_evicted", evicted)
            logger.warning(
                "spool %s is over %d bytes: deleted its %d oldest events",
                self.directory,
                self._max_bytes,
                evicted,
            )
