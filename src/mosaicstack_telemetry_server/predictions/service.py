"""Serving predictions from statistics kept in the database, and keeping them fresh.

A request never scans the events table: it reads two tiny version tables, refreshes only
the task types whose statistics are stale, then takes every group it needs from this
process's row cache (`row_cache`), reading only rows of a newer version. A refresh folds the
events not read yet into per-group, per-day buckets (`incremental`), then rebuilds the stale
task types' statistics from their buckets (`served`): its cost follows what arrived, not the
table's size. A request never waits for a backlog of more than `REQUEST_MAX_EVENTS` events
(a bulk load, a first start): it answers from the statistics there are, saying so, while a
background drain folds the backlog: in a process of its own when the service knows the
database's URL (`drain_process`, so that requests do not queue behind it for the
interpreter), else in a thread. Statistics live in the database and are replaced by
compare-and-set on the data version, so every server process sharing it serves the same
numbers, and a process that loses the race simply keeps the newer statistics.

Freshness: statistics are never served older than `stats_max_age_seconds`. Their time
(`computed_at`, served as `last_updated`) is when they were last known to reflect every stored
event of their task type. Younger ones are served as they are, even if events arrived since.
Once they reach the maximum age they are recomputed if events arrived since (the data version
moved), else only re-stamped: recomputing would give the same numbers, since no event was
added, so the time is moved forward without reading the partition. With a maximum age of 0 a
prediction therefore reflects every event accepted before the request.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Final

from mosaicstack_telemetry import PredictionQuery, PredictionResponse
from mosaicstack_telemetry.models import MAX_BATCH_SIZE
from mosaicstack_telemetry_server.predictions.answers import AnswerCache, AnswerKey, answer_key
from mosaicstack_telemetry_server.predictions.drain_process import DrainEnd, DrainProcess, Ended
from mosaicstack_telemetry_server.predictions.fallback import build_response, chain_keys
from mosaicstack_telemetry_server.predictions.group_bases import GroupBases
from mosaicstack_telemetry_server.predictions.incremental import CHUNK_EVENTS, CatchUp, catch_up
from mosaicstack_telemetry_server.predictions.partial import PartialPublisher
from mosaicstack_telemetry_server.predictions.recency import DEFAULT_RECENCY, Recency
from mosaicstack_telemetry_server.predictions.row_cache import RowCache
from mosaicstack_telemetry_server.predictions.served import served_stats
from mosaicstack_telemetry_server.predictions.widening import widen_task_types
from mosaicstack_telemetry_server.storage.base import Storage

__all__ = ["MAX_QUERIES_PER_BATCH", "Clock", "PredictionService"]

logger = logging.getLogger(__name__)

# The contract's limit on queries per `POST /v1/predictions/batch`: the SDK's one limit on
# batch sizes, shared so that the two can never disagree.
MAX_QUERIES_PER_BATCH: Final = MAX_BATCH_SIZE
# Most new events a request folds itself; a larger backlog is drained in the background.
REQUEST_MAX_EVENTS: Final = 10_000
# After a drain process failed, how long before another is started.
DRAIN_RETRY_SECONDS: Final = 5.0
# How long a request waits for this process's fold in progress (a small one: see _update).
_REQUEST_WAIT: Final = 2.0
# Bounds of the background refresher's default period.
_MIN_INTERVAL_SECONDS: Final = 0.5
_MAX_INTERVAL_SECONDS: Final = 30.0

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PredictionService:
    """Answers prediction queries from precomputed statistics, recomputing stale ones.

    Thread-safe. `min_sample_size` is the fewest events a fallback level needs;
    `stats_max_age_seconds` is the oldest served statistics may be (see the module's
    docstring: recomputed or re-stamped once they reach it); `clock` returns the current
    time (aware, UTC) and is injectable for tests. `drain_url`, the URL of the database
    `storage` opened, has large backlogs folded in a child process (see the module's
    docstring); without it (storage of a private in-memory database) they are folded in a
    thread; `drain_executable` is the Python that process runs (this one).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        min_sample_size: int,
        stats_max_age_seconds: float,
        clock: Clock = _utc_now,
        recency: Recency = DEFAULT_RECENCY,
        drain_url: str | None = None,
        drain_executable: str = sys.executable,
    ) -> None:
        if min_sample_size < 1:
            raise ValueError("min_sample_size must be at least 1")
        if not stats_max_age_seconds >= 0:  # also rejects NaN
            raise ValueError("stats_max_age_seconds must be >= 0")
        self._storage = storage
        self._min_sample_size = min_sample_size
        self._max_age = float(stats_max_age_seconds)
        self._clock = clock
        self._locks: dict[str, threading.Lock] = {}
        # task type -> (generation, data version) of the last computation in this process
        self._computed: dict[str, tuple[int, int]] = {}
        self._generation = itertools.count(1)
        self._locks_guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._thread_guard = threading.Lock()
        self._recency = recency
        self._rows = RowCache()
        self._answers = AnswerCache()
        self._bases = GroupBases()
        # One fold of new events at a time in this process (others: the cursor's CAS).
        self._update_lock = threading.Lock()
        self._behind = False  # a backlog is being drained: requests do not wait for it
        self._wake = threading.Event()
        self._drain: threading.Thread | None = None
        self._drain_process = (
            None
            if drain_url is None
            else DrainProcess(
                drain_url, self._drained, executable=drain_executable, recency=recency
            )
        )
        # A drain in a thread publishes partial statistics as a drain process does.
        self._publisher = PartialPublisher(storage, recency, clock, bases=self._bases)
        self._drain_retry_at = 0.0  # monotonic time before which no drain process is started
        self._drain_failing = False

    @property
    def min_sample_size(self) -> int:
        """Fewest events a fallback level needs before its statistics are served."""
        return self._min_sample_size

    @property
    def stats_max_age_seconds(self) -> float:
        """Oldest served statistics may be: at that age they are recomputed or re-stamped."""
        return self._max_age

    @property
    def drains_in_process(self) -> bool:
        """Whether large backlogs are folded in a child process (else in a thread)."""
        return self._drain_process is not None

    @property
    def drain_pid(self) -> int | None:
        """Process id of the current or last drain process (None: none started yet, or
        backlogs are drained in a thread)."""
        drainer = self._drain_process
        return None if drainer is None else drainer.pid

    @property
    def background_running(self) -> bool:
        """Whether the background refresher thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    # --- serving

    def predict_batch(self, queries: Sequence[PredictionQuery]) -> list[PredictionResponse]:
        """One answer per query, in order; refreshes stale statistics of the queried types.

        `cache_hit` is False for the queries whose task type this call refreshed (recomputed,
        or re-stamped because they reached the maximum age with no new event): the request
        did the freshness work itself. True for the others, answered from statistics already
        stored and young enough.
        """
        if len(queries) > MAX_QUERIES_PER_BATCH:
            raise ValueError(f"at most {MAX_QUERIES_PER_BATCH} queries per batch")
        if not queries:
            return []
        refreshed, stamps = self._refresh({q.task_type.value for q in queries}, ahead_seconds=0.0)
        if stamps is None:
            stamps = self._storage.stats_versions()  # something was stale: read them again
        behind = self._behind
        hits = [q.task_type.value not in refreshed for q in queries]
        # Partial statistics (a version <= 0, `partial`) always say so, behind here or not.
        partial = {t for t, (version, _) in stamps.items() if version <= 0}
        catching_up = [behind or q.task_type.value in partial for q in queries]
        keys = [
            answer_key(q, stamps.get(q.task_type.value), cache_hit=hit, catching_up=late)
            for q, hit, late in zip(queries, hits, catching_up, strict=True)
        ]
        answers: dict[AnswerKey, PredictionResponse] = {}
        missing = {}
        for key, query, hit, late in zip(keys, queries, hits, catching_up, strict=True):
            kept = self._answers.get(key)
            if kept is None:
                missing[key] = (query, hit, late)
            else:
                answers[key] = kept
        if missing:
            answers.update(self._build(missing, stamps))
        return [answers[key] for key in keys]

    def _build(
        self,
        missing: dict[AnswerKey, tuple[PredictionQuery, bool, bool]],
        stamps: dict[str, tuple[int, datetime]],
    ) -> dict[AnswerKey, PredictionResponse]:
        """Answers not kept yet: from the rows of their chains, then kept for next time."""
        chains = dict.fromkeys(k for query, _, _ in missing.values() for k in chain_keys(query))
        found = self._rows.get(self._storage, list(chains), stamps)
        built = {}
        for key, (query, hit, catching_up) in missing.items():
            built[key] = build_response(
                query,
                found,
                min_sample_size=self._min_sample_size,
                cache_hit=hit,
                catching_up=catching_up,
            )
            self._answers.put(key, built[key])
        return built

    # --- freshness

    def refresh_stale(self, *, ahead_seconds: float = 0.0) -> int:
        """Refresh every stale task type now; returns how many were recomputed or re-stamped.

        `ahead_seconds` also counts as stale the statistics that will be stale that much
        later, so a periodic caller can refresh them before a request has to.
        """
        return len(self._refresh(None, ahead_seconds=ahead_seconds)[0])

    def _refresh(
        self, only: Collection[str] | None, *, ahead_seconds: float
    ) -> tuple[set[str], dict[str, tuple[int, datetime]] | None]:
        """The task types refreshed, and the statistics stamps read to decide, if they still
        hold (None: read them again)."""
        with self._locks_guard:
            seen = dict(self._computed)  # taken before the versions are read: see _recompute
        # Also taken before the versions are read: statistics found to be of the current data
        # version did reflect every stored event at this instant, whatever arrives next.
        checked_at = self._clock()
        refreshed: set[str] = set()
        stale: dict[str, int] = {}
        found, stamps = self._stale(only, ahead_seconds, checked_at)
        for task_type, version, restamp in found:
            if not restamp:
                stale[task_type] = version
            elif self._restamp(task_type, version, checked_at, seen.get(task_type)):
                refreshed.add(task_type)
        if stale:
            refreshed |= self._update(stale, seen, request=only is not None)
        # The stamps hold only if nothing was stale: a stale task type may have been
        # refreshed meanwhile by another call (the background refresher) even if not by us.
        return refreshed, None if found else stamps

    def _stale(
        self, only: Collection[str] | None, ahead_seconds: float, now: datetime
    ) -> tuple[list[tuple[str, int, bool]], dict[str, tuple[int, datetime]] | None]:
        """(task type, version, re-stamp only?) of each stale task type with events, and the
        statistics stamps read (None when there was nothing to compare).

        The version is the data version to recompute at, or, for a re-stamp, the version of
        the stored statistics (already the current one).
        """
        partitions = self._storage.partition_versions()
        if only is not None:
            partitions = {t: v for t, v in partitions.items() if t in only}
            if not partitions:  # nothing to compare: spare the second read
                return [], None
        stored = self._storage.stats_versions()
        limit = self._max_age - ahead_seconds
        stale = []
        for task_type, version in sorted(partitions.items()):
            if task_type not in stored:
                stale.append((task_type, version, False))
                continue
            stats_version, computed_at = stored[task_type]
            if stats_version > 0 and _age_seconds(now, computed_at) < limit:
                # Young enough: served as they are, even if events arrived since. Partial
                # statistics (a version <= 0, `partial`) never are: a drain is not finished.
                continue
            if stats_version < version:
                stale.append((task_type, version, False))
            elif self._max_age > 0 or ahead_seconds <= 0:
                # With a maximum age of 0 every request re-stamps for itself: re-stamping
                # ahead of it as well would only add writes.
                stale.append((task_type, stats_version, True))
        return stale, stored

    def _restamp(
        self, task_type: str, version: int, checked_at: datetime, seen: tuple[int, int] | None
    ) -> bool:
        """Move the time of statistics still of the current data version to `checked_at`.

        No partition read: no event was added since they were computed, so recomputing them
        would give the same numbers. Skipped when a concurrent call of this process refreshed
        them since `seen`; the storage's compare-and-set also refuses it if another process
        stored newer statistics or a later time meanwhile.
        """
        with self._lock_for(task_type):
            if self._refreshed_since(task_type, version, seen):
                return False
            if not self._storage.touch_stats(task_type, version, checked_at):
                return False
            self._record(task_type, version)
            return True

    def _update(
        self, stale: dict[str, int], seen: dict[str, tuple[int, int]], *, request: bool
    ) -> set[str]:
        """Fold new events into the buckets, then rebuild the stale task types' statistics.

        A request never waits on a large backlog (a bulk load, a first start): it serves the
        statistics there are and leaves the backlog to the background drain. A small one
        (at most `REQUEST_MAX_EVENTS` events) it folds itself, so that with a maximum age of
        0 an answer reflects every event accepted before the request.
        """
        # Sized before folding anything: a request must not spend its time on a backlog, nor
        # this process's interpreter when a drain process can take it.
        if (request or self._drain_process is not None) and (
            self._behind or self._storage.event_backlog() > REQUEST_MAX_EVENTS
        ):
            self._behind = True
            self._kick()
            return set()
        if request:
            if not self._update_lock.acquire(timeout=_REQUEST_WAIT):
                return set()  # a fold still running after that long: serve what there is
        else:
            self._update_lock.acquire()
        try:
            if all(self._refreshed_since(t, v, seen.get(t)) for t, v in stale.items()):
                return set()  # a concurrent call of this process just did it
            limit = REQUEST_MAX_EVENTS if request else CHUNK_EVENTS
            done = catch_up(self._storage, self._clock, chunk=limit, max_events=limit)
            self._behind = not done.complete
            if not done.complete:
                self._kick()
                return set()
            return self._rebuild(stale, done)
        finally:
            self._update_lock.release()

    def _rebuild(self, stale: dict[str, int], done: CatchUp) -> set[str]:
        """Rebuild the statistics of the stale task types from their buckets."""
        rebuilt = set()
        merged = {
            task_type: served_stats(
                self._storage,
                task_type,
                done.read_at,
                self._recency,
                bases=self._bases,
                fresh=done.buckets,
            )
            for task_type in sorted(stale)
        }
        widened = widen_task_types(merged, self._storage.stats_at_level(0))
        for task_type, rows in widened.items():
            version = done.versions.get(task_type, stale[task_type])
            # False means another process stored statistics of this version or newer: fine.
            self._storage.replace_stats(task_type, version, done.read_at, rows)
            self._record(task_type, version)
            rebuilt.add(task_type)
        return rebuilt

    def _kick(self) -> None:
        """Have the backlog drained in the background: by a drain process, or else by the
        refresher (woken) or a drain thread."""
        drainer = self._drain_process
        if drainer is not None:
            if time.monotonic() >= self._drain_retry_at:
                self._start_drain(drainer)  # no-op while one runs
            return
        if self.background_running:
            self._wake.set()
            return
        with self._thread_guard:
            if self._drain is not None and self._drain.is_alive():
                return
            self._drain = threading.Thread(
                target=self._drain_backlog, name="mosaic-telemetry-stats-drain", daemon=True
            )
            self._drain.start()

    def _drain_backlog(self) -> None:
        try:
            self._drain_step()
            while self._behind:
                self._drain_step()
        except Exception:  # a thread of its own: log, the next request kicks again
            logger.exception("summarizing new events for predictions failed")

    def _start_drain(self, drainer: DrainProcess) -> None:
        try:
            drainer.start()
        except OSError as exc:
            self._drained(DrainEnd(Ended.CANNOT_RUN, str(exc)))

    def _drained(self, end: DrainEnd) -> bool:
        """A drain process ended: take its work over here; returns whether to start another.

        Called in the drain process's watcher thread. Drained: fold what arrived meanwhile and
        rebuild the statistics it made stale, here (another drain process if what arrived is
        a backlog again). Failed: log it (one traceback per outage) and stay behind (requests
        answer from what exists); the next request or refresher period at least
        `DRAIN_RETRY_SECONDS` later starts another. Cannot run here (no process can be
        started, or it cannot import the server): drain in a thread from now on.
        """
        if end.how is Ended.DRAINED:
            if self._drain_failing:
                logger.info("summarizing new events for predictions works again")
            self._drain_failing = False
            try:
                return self._after_drain()
            except Exception:
                logger.exception("rebuilding prediction statistics after a drain failed")
                return False
        if end.how is Ended.CANNOT_RUN:
            logger.error(
                "cannot summarize new events for predictions in a process of its own, "
                "summarizing in a thread instead: %s",
                end.detail,
            )
            self._drain_process = None
            self._kick()
            return False
        self._drain_retry_at = time.monotonic() + DRAIN_RETRY_SECONDS
        if end.how is Ended.SIGNALLED:
            logger.warning("%s; another is started when due", end.detail)
        elif self._drain_failing:
            logger.debug("summarizing new events for predictions still fails: %s", end.detail)
        else:
            logger.error("summarizing new events for predictions failed: %s", end.detail)
            self._drain_failing = True
        return False

    def _after_drain(self) -> bool:
        """Fold what arrived during a drain and rebuild; True if that is a backlog again."""
        if self._storage.event_backlog() > REQUEST_MAX_EVENTS:
            return True
        self._drain_step()
        return self._behind

    def _drain_step(self) -> None:
        """Fold one chunk of a backlog; once none is left, rebuild what it made stale."""
        with self._update_lock:
            done = catch_up(self._storage, self._clock, chunk=CHUNK_EVENTS, max_events=CHUNK_EVENTS)
            self._behind = not done.complete
            if not done.complete:
                self._publisher.between_chunks()
            else:
                stored = self._storage.stats_versions()
                stale = {
                    t: v for t, v in done.versions.items() if t not in stored or stored[t][0] < v
                }
                self._rebuild(stale, done)

    def _refreshed_since(self, task_type: str, version: int, seen: tuple[int, int] | None) -> bool:
        # Another call of this process refreshed it after `seen`, at `version` or newer.
        latest = self._computed.get(task_type)
        return latest is not None and latest != seen and latest[1] >= version

    def _record(self, task_type: str, version: int) -> None:
        with self._locks_guard:
            self._computed[task_type] = (next(self._generation), version)

    def _lock_for(self, task_type: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(task_type, threading.Lock())

    # --- background refresher

    def default_interval_seconds(self) -> float:
        """Background period: half the maximum age, at most 30 s, at least 0.5 s."""
        return max(_MIN_INTERVAL_SECONDS, min(self._max_age / 2, _MAX_INTERVAL_SECONDS))

    def start_background(self, interval_seconds: float | None = None) -> None:
        """Start a daemon thread that calls `refresh_stale` every `interval_seconds`.

        It refreshes statistics one period before they would go stale, so requests rarely
        recompute. No-op if already running.
        """
        interval = self.default_interval_seconds() if interval_seconds is None else interval_seconds
        if not interval > 0:
            raise ValueError("interval_seconds must be > 0")
        drainer = self._drain_process
        if drainer is not None:
            drainer.open()
        with self._thread_guard:
            if self.background_running:
                return
            # A fresh event per thread: a stop() timing out must not leave the next one stopped.
            self._stop = stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run,
                args=(interval, stop),
                name="mosaic-telemetry-stats-refresher",
                daemon=True,
            )
            self._thread.start()

    def stop_background(self, timeout: float | None = 5.0) -> bool:
        """Stop the refresher (at once, even mid-wait) and any drain process, and start no
        drain process until `start_background`; True when the refresher, the drain process
        and the thread taking its work over have ended."""
        with self._thread_guard:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._wake.set()
        started = time.monotonic()
        drainer = self._drain_process
        # The child first: it ends at once, and its watcher may be rebuilding meanwhile.
        ended = drainer is None or drainer.stop(timeout)
        if thread is not None:
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            thread.join(left)
            ended = ended and not thread.is_alive()
        return ended

    def _run(self, interval: float, stop: threading.Event) -> None:
        failing = False
        while not stop.is_set():
            try:
                if self._behind and self.drains_in_process:
                    self._kick()  # a failed drain process is started again when due
                elif self._behind:
                    self._drain_step()
                else:
                    self.refresh_stale(ahead_seconds=interval)
            except Exception:  # never die: the next period may find the database back
                # One traceback per outage, not one per period.
                if not failing:
                    logger.exception("refreshing prediction statistics failed")
                else:
                    logger.debug("refreshing prediction statistics still fails", exc_info=True)
                failing = True
            else:
                if failing:
                    logger.info("refreshing prediction statistics works again")
                failing = False
            # Woken early by a request that found a backlog; back at once while behind
            # (unless failing: then once a period, like any retry).
            if failing or not self._behind or self.drains_in_process:
                self._wake.wait(interval)
                self._wake.clear()


def _age_seconds(now: datetime, computed_at: datetime) -> float:
    # Backends may hand back naive datetimes; stored times are UTC.
    if computed_at.tzinfo is None:
        computed_at = computed_at.replace(tzinfo=UTC)
    return (now - computed_at).total_seconds()
