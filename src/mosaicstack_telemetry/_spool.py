"""The disk spool: events that could not be sent in time, kept in files for the next sender.

Opt-in (`TelemetryConfig.spool_dir`). It takes what the shutdown budget could not send and what a
full queue would evict. Each file is a batch (one event per JSON line), written to a temporary
name and renamed into place (readers never see half a file), mode 0600 in a 0700 directory.
Names sort oldest first: `<time_ns>-<pid>-<token>-<count>.events`.

Several processes may share a directory. A sender claims a file by renaming it to
`<name>.claimed-<pid>-<token>`; a rename succeeds for one process only. After delivery it deletes
the file; if delivery fails it renames it back. A crash between a send and the deletion resends
the batch, which the server's idempotency by `event_id` stores once. A claim nobody works on is
put back by the next sender: its process is gone, or it bears our pid without being one we hold
(in a container the app is pid 1 after every restart), or it is older than any delivery takes.
The size cap deletes the oldest unclaimed files first, and counts them.

The directory is used only if it is a real directory (not a symlink) of our user that nobody else
may enter: its files are read back and sent, so another user who can write them could send
events in our name. Spool files are opened without following symlinks.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mosaicstack_telemetry._logs import logger
from mosaicstack_telemetry.models.events import TaskCompletionEvent
from mosaicstack_telemetry.stats import Tally

__all__ = ["Claim", "Spool", "reads_inline"]

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
# A claim older than this is put back even if its owner seems alive (a pid reused by another
# process, or a pid of another container): with the default settings a file's delivery and its
# retries take about a minute, and a longer one risks only a duplicate send, which the server
# stores once (idempotency by event_id).
_STALE_CLAIM_SECONDS = 600.0
# A file of at most this many events (about 800 bytes each, so a few KB) is read and parsed in
# tens of microseconds, less than an asyncio loop's hop to a worker thread and back: the async
# submitter reads it on the loop. A larger one (up to 100 events, ~80 KB, milliseconds to read and
# parse) is read in a thread. Writes always go to a thread: each ends with an fsync, which waits
# for the disk whatever the file's size.
_INLINE_READ_EVENTS = 4
# Not following a symlink planted in place of a spool file, nor waiting on a FIFO; 0 where the OS
# has no such flag.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


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


def reads_inline(path: Path) -> bool:
    """Whether the spool file at `path` is small enough to read on an event loop."""
    return 0 < _count_of(path) <= _INLINE_READ_EVENTS


class _HeldClaims:
    """The claim paths this process holds now, from any thread and any Spool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: set[Path] = set()

    def add(self, path: Path) -> None:
        with self._lock:
            self._paths.add(path)

    def discard(self, path: Path) -> None:
        with self._lock:
            self._paths.discard(path)

    def __contains__(self, path: object) -> bool:
        with self._lock:
            return path in self._paths

    def reset(self) -> None:
        # After fork: the parent's claims are not the child's, and the lock may be held by a
        # thread that does not exist in the child.
        self._lock = threading.Lock()
        self._paths = set()


_HELD = _HeldClaims()
if hasattr(os, "register_at_fork"):  # POSIX only
    os.register_at_fork(after_in_child=_HELD.reset)


def _directory_problem(directory: Path) -> str | None:
    """Why `directory` must not be used as a spool, or None when it may."""
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode):
        return "not a directory (a symlink?)"
    if not hasattr(os, "getuid"):
        return None  # no owner or mode bits to judge on this OS
    if info.st_uid != os.getuid():
        return f"owned by uid {info.st_uid}, not {os.getuid()}"
    if info.st_mode & 0o022:
        # Others could have planted files that we would send as ours: refuse.
        return f"mode {stat.S_IMODE(info.st_mode):o} lets other users write in it (0700 wanted)"
    if info.st_mode & 0o077:
        # Ours, readable by others but not writable (a plain `mkdir` gives 0755): nothing can
        # have been planted, so tighten it rather than leave the application without a spool.
        os.chmod(directory, 0o700)
    return None


def _lines(source: BinaryIO) -> Iterator[bytes | None]:
    """Up to _MAX_LINES_READ lines of `source`; None for a line longer than _MAX_LINE_BYTES."""
    for _ in range(_MAX_LINES_READ):
        # Bounded reads: a huge line must not be held in memory whole.
        line = source.readline(_MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) <= _MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line
            continue
        while (rest := source.readline(_MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
            pass
        yield None


def _abandoned(path: Path, now: float) -> bool:
    """Whether the claim at `path` is one nobody is working on."""
    owner = path.name.rsplit(_CLAIMED, 1)[1].split("-")[0]
    if not owner.isdigit() or path in _HELD:
        return False
    if int(owner) == os.getpid() or not _pid_alive(int(owner)):
        return True  # ours but not held: a predecessor's with the same pid (pid 1 in containers)
    try:
        return now - path.lstat().st_mtime > _STALE_CLAIM_SECONDS
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    """Whether a process of this pid may live. Only POSIX can ask harmlessly: on Windows,
    `os.kill(pid, 0)` sends CTRL_C_EVENT to a process group, so there every pid may live (a
    claim is then taken back by its age alone)."""
    if os.name != "posix":  # pragma: no cover - the tests run on Linux
        return True
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
        self._refused = False

    def _usable(self) -> bool:
        """Whether the directory, if it exists, is one we may use; told once when it is not."""
        if self._refused:
            return False
        try:
            problem = _directory_problem(self.directory)
        except OSError:
            return True  # missing or unreachable: writing creates it, or says why it cannot
        if problem is not None:
            # Refused for good: the client goes on as without a spool.
            self._refused = True
            logger.warning("spool directory %s is not used: %s", self.directory, problem)
        return problem is None

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def write(self, events: list[TaskCompletionEvent]) -> int:
        """Spool `events` (in files of one batch each); return how many were written."""
        written = 0
        with contextlib.suppress(OSError):  # told below, when the first file cannot be written
            self._ensure_directory()
        if not self._usable():
            return 0
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
        if not self._usable():
            return []
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
        while (taken := self.take()) is not None:
            claim = self.read_claim(*taken)
            if claim is not None:
                return claim
        return None

    def take(self) -> tuple[Path, Path] | None:
        """Claim the oldest unclaimed file without reading it: (claimed path, original path)."""
        for path in self._ready():
            # The token keeps a claim's name unique even between processes with one pid
            # (containers sharing the directory): nobody deletes another's claim by its name.
            claimed = path.with_name(f"{path.name}{_CLAIMED}{os.getpid()}-{os.urandom(4).hex()}")
            _HELD.add(claimed)  # before the rename: a recover() meanwhile must not put it back
            try:
                os.rename(path, claimed)
            except OSError:
                _HELD.discard(claimed)
                continue  # another sender claimed it first
            with contextlib.suppress(OSError):
                os.utime(claimed)  # a rename keeps the old mtime; staleness counts from the claim
            return claimed, path
        return None

    def read_claim(self, claimed: Path, original: Path) -> Claim | None:
        """The events of a file `take()` claimed; None, and the file removed, when it has none."""
        events = self._read(claimed)
        if events:
            return Claim(claimed, original, events)
        with contextlib.suppress(OSError):
            claimed.unlink()
        _HELD.discard(claimed)
        return None

    def _read(self, path: Path) -> list[TaskCompletionEvent]:
        try:
            # No symlink followed, no FIFO waited on: only a regular file is read.
            with os.fdopen(os.open(path, _OPEN_FLAGS), "rb") as source:
                if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                    raise OSError("not a regular file")
                return self._parse(source, path.name)
        except OSError as exc:
            logger.warning("could not read spool file %s (%s)", path.name, type(exc).__name__)
            return []

    def _parse(self, source: BinaryIO, name: str) -> list[TaskCompletionEvent]:
        events: list[TaskCompletionEvent] = []
        bad = 0
        for line in _lines(source):
            if line is None:
                bad += 1
            elif line.strip():
                try:
                    events.append(TaskCompletionEvent.model_validate_json(line))
                except ValueError:
                    bad += 1
        if source.read(1):
            logger.warning(
                "spool file %s has more than %d lines: the rest is skipped", name, _MAX_LINES_READ
            )
        if bad:
            logger.warning("skipped %d unreadable lines in spool file %s", bad, name)
        return events

    def finish(self, claim: Claim) -> None:
        """Delete a claimed file whose events were all delivered."""
        with contextlib.suppress(FileNotFoundError):
            claim.path.unlink()
        _HELD.discard(claim.path)

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
        finally:
            _HELD.discard(claim.path)

    def recover(self) -> None:
        """Put back the claims nobody works on, and remove half-written files of dead writers."""
        if not self._usable():
            return
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        now = time.time()
        for name in names:
            path = self.directory / name
            if _CLAIMED in name:
                if _abandoned(path, now):
                    with contextlib.suppress(OSError):
                        os.rename(path, self.directory / name.rsplit(_CLAIMED, 1)[0])
            elif name.startswith(_TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    if now - path.lstat().st_mtime > _STALE_TEMP_SECONDS:
                        path.unlink()

    def _enforce_cap(self) -> None:
        ready = self._ready()
        sizes: dict[Path, int] = {}
        for path in ready:
            with contextlib.suppress(OSError):
                sizes[path] = path.lstat().st_size
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
