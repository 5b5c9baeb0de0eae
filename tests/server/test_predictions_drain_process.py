"""A large backlog drained by a real child process, on real SQLite and PostgreSQL databases.

The child is a real interpreter (`python -m ...drain_process`) working on the same database as
the test: what is checked is what the database ends up holding, what the service answers and
what it logs.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from _api_helpers import Served, serve, wait_until
from _prediction_events import DAY0, TASK, TASK_WIDE, event, query
from _storage_helpers import run_together

from mosaicstack_telemetry_server.predictions import compute_partition_stats
from mosaicstack_telemetry_server.predictions.drain_process import (
    DRAIN_FAILED,
    DrainEnd,
    DrainProcess,
    Ended,
    drain,
)
from mosaicstack_telemetry_server.predictions.partial import PARTIAL_OFFSET
from mosaicstack_telemetry_server.predictions.recency import Recency
from mosaicstack_telemetry_server.predictions.service import REQUEST_MAX_EVENTS, PredictionService
from mosaicstack_telemetry_server.runtime import Runtime
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import Storage, open_storage

BACKLOG = REQUEST_MAX_EVENTS + 500
# A child imports the server and opens its database before folding: allow for a slow machine.
DRAINED_WITHIN = 120.0


@pytest.fixture
def backlog(storage: Storage) -> int:
    """More events than a request folds itself, spread over a week."""
    rng = random.Random(20261130)
    storage.insert_events([event(rng, day=rng.randrange(7)) for _ in range(BACKLOG)])
    return BACKLOG


def bucket_total(storage: Storage) -> int:
    return sum(size for _, size in storage.bucket_sizes(TASK.value))


def test_a_backlog_is_folded_by_another_process_and_then_served_in_full(
    storage: Storage, database_url: str, backlog: int
) -> None:
    service = PredictionService(
        storage,
        min_sample_size=1,
        stats_max_age_seconds=0,
        recency=Recency(window_days=0),
        drain_url=database_url,
    )
    [first] = service.predict_batch([query()])
    assert first.prediction is None
    assert "backlog" in (first.metadata.fallback_note or "")
    pid = service.drain_pid
    assert pid is not None
    assert pid != os.getpid()
    wait_until(
        lambda: service.predict_batch([query()])[0].metadata.sample_size == backlog,
        DRAINED_WITHIN,
        "the drain process to fold the backlog",
    )
    [later] = service.predict_batch([query()])
    assert "backlog" not in (later.metadata.fallback_note or "")
    # Folded by the child, exactly once each; served with the numbers of one computation.
    assert bucket_total(storage) == backlog
    assert storage.event_backlog() == 0
    full = compute_partition_stats(storage.read_partition(TASK.value), DAY0)
    level0 = next(row for row in full if row.key.level == 0)
    assert later.prediction is not None
    # Above 10,000 events a group is sketched: within the contract's 1% of the exact median.
    exact = level0.stats["input_tokens"]["median"]
    assert later.prediction.input_tokens.median == pytest.approx(exact, rel=0.01)
    assert service.drain_pid == pid  # one child was enough
    assert service.stop_background()


class Ends:
    """What a `DrainProcess` reported, in order; `again` is what `on_end` answers."""

    def __init__(self) -> None:
        self.seen: list[DrainEnd] = []

    def __call__(self, end: DrainEnd) -> bool:
        self.seen.append(end)
        return False


def test_a_drain_process_stopped_midway_leaves_whole_chunks_and_the_next_one_finishes(
    storage: Storage, database_url: str, backlog: int
) -> None:
    ends = Ends()
    first = DrainProcess(database_url, ends, chunk=1_000)
    assert first.start()
    assert not first.start()  # one at a time
    wait_until(lambda: bucket_total(storage) > 0, DRAINED_WITHIN, "a first chunk")
    assert first.stop(timeout=30)
    assert not first.running
    assert not first.start()
    stopped_at = bucket_total(storage)
    assert stopped_at % 1_000 == 0 or stopped_at == backlog  # no chunk half-stored
    assert ends.seen == []  # a stop is not an end to take over
    first.open()
    assert first.start()
    wait_until(lambda: ends.seen != [], DRAINED_WITHIN, "the second drain to end")
    assert ends.seen == [DrainEnd(Ended.DRAINED)]
    assert bucket_total(storage) == backlog  # every event once, across both children
    assert first.stop(timeout=30)


def test_a_drain_process_publishes_what_it_has_folded_as_it_goes(
    storage: Storage, database_url: str, backlog: int
) -> None:
    ends = Ends()
    child = DrainProcess(database_url, ends, chunk=1_000, recency=Recency(window_days=0))
    assert child.start()
    wait_until(lambda: ends.seen != [], DRAINED_WITHIN, "the drain to end")
    assert ends.seen == [DrainEnd(Ended.DRAINED)]
    # Published by the child between chunks (the first at once, the next 10 s later): the
    # numbers of the events folded by then, under the generation of then (one per chunk)
    # less 2**62. The last chunk is the server's to rebuild from.
    version, _ = storage.stats_versions()[TASK.value]
    published = storage.get_stats([TASK_WIDE])[TASK_WIDE].sample_size
    assert published % 1_000 == 0
    assert 1_000 <= published < backlog
    assert version == published // 1_000 - PARTIAL_OFFSET
    assert child.stop(timeout=30)


def test_drains_at_once_take_turns_under_the_lease_and_the_later_finds_nothing_left(
    storage: Storage, database_url: str, backlog: int
) -> None:
    # As the drain children of two server processes on one database would: without the lease
    # both fold chunks, and the loser of each compare-and-set folds it again.
    folded = run_together(2, lambda _: drain(database_url, chunk=1_000), DRAINED_WITHIN)
    assert sorted(folded) == [0, backlog]
    assert bucket_total(storage) == backlog


def test_a_drain_waiting_for_the_lease_leaves_once_its_server_is_gone(
    storage: Storage, database_url: str, backlog: int
) -> None:
    held = storage.drain_lease()
    assert held.try_acquire()
    try:
        other = storage.drain_lease()
        assert not other.try_acquire()  # one holder at a time
        other.release()
        # This test process is not the parent of itself: as if the server had gone.
        [folded] = run_together(1, lambda _: drain(database_url, parent_pid=os.getpid()))
        assert folded == 0
    finally:
        held.release()
        held.release()  # idempotent
    assert bucket_total(storage) == 0
    again = storage.drain_lease()
    assert again.try_acquire()
    again.release()


def test_a_holder_that_folds_nothing_is_waited_for_only_so_long(
    storage: Storage, database_url: str, backlog: int
) -> None:
    # A lease held by a connection that does no work (behind a pooler, say): the drain goes
    # ahead once the cursor has not moved for the stall time, exact all the same.
    held = storage.drain_lease()
    assert held.try_acquire()
    try:
        [folded] = run_together(
            1, lambda _: drain(database_url, chunk=4_000, lease_stall=1.0), DRAINED_WITHIN
        )
        assert folded == backlog
    finally:
        held.release()
    assert bucket_total(storage) == backlog


def test_a_lease_holder_killed_frees_the_lease(storage: Storage, database_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LEASE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdin is not None
        assert holder.stdout is not None
        holder.stdin.write(database_url + "\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "held"
        lease = storage.drain_lease()
        assert not lease.try_acquire()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    wait_until(lease.try_acquire, 30.0, "the killed holder's lease to be freed")
    lease.release()


_HOLD_LEASE = """
import sys, time
from mosaicstack_telemetry_server.storage import open_storage
lease = open_storage(sys.stdin.readline().strip()).drain_lease()
print("held" if lease.try_acquire() else "refused", flush=True)
time.sleep(120)
"""


def test_a_drain_returns_between_chunks_once_its_server_is_gone(
    storage: Storage, database_url: str, backlog: int
) -> None:
    # This test process is not the parent of itself: as if the server had gone.
    assert drain(database_url, parent_pid=os.getpid(), chunk=1_000) == 1_000
    assert drain(database_url, parent_pid=os.getppid(), chunk=4_000) == backlog - 1_000
    assert drain(database_url) == 0
    assert bucket_total(storage) == backlog


def test_a_child_killed_by_a_signal_is_a_warning_and_the_answers_keep_saying_so(
    storage: Storage, database_url: str, backlog: int, caplog: pytest.LogCaptureFixture
) -> None:
    service = PredictionService(
        storage, min_sample_size=1, stats_max_age_seconds=0, drain_url=database_url
    )
    with caplog.at_level(logging.WARNING, logger="mosaicstack_telemetry_server"):
        service.predict_batch([query()])
        pid = service.drain_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # an OOM killer, say: long before it folds 10,500 events
        wait_until(
            lambda: any("signal 9" in r.getMessage() for r in caplog.records),
            DRAINED_WITHIN,
            "the end to be logged",
        )
    [record] = [r for r in caplog.records if "signal 9" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    [answer] = service.predict_batch([query()])
    assert "backlog" in (answer.metadata.fallback_note or "")
    assert service.drain_pid == pid  # not started again before DRAIN_RETRY_SECONDS
    assert bucket_total(storage) == 0
    assert service.stop_background()


def test_where_no_drain_process_can_run_the_service_drains_in_a_thread(
    storage: Storage, database_url: str, backlog: int, caplog: pytest.LogCaptureFixture
) -> None:
    # /bin/false stands for a Python that cannot run the module (a frozen or embedded app).
    service = PredictionService(
        storage,
        min_sample_size=1,
        stats_max_age_seconds=0,
        drain_url=database_url,
        drain_executable="/bin/false",
    )
    with caplog.at_level(logging.ERROR, logger="mosaicstack_telemetry_server"):
        service.predict_batch([query()])
        wait_until(lambda: not service.drains_in_process, DRAINED_WITHIN, "the fallback")
    assert any("in a thread instead" in r.getMessage() for r in caplog.records)
    wait_until(
        lambda: service.predict_batch([query()])[0].metadata.sample_size == backlog,
        DRAINED_WITHIN,
        "the thread drain",
    )
    assert bucket_total(storage) == backlog
    assert service.stop_background()


def test_a_drain_process_that_cannot_be_started_says_why(tmp_path: Path) -> None:
    missing = DrainProcess("sqlite://:memory:", Ends(), executable=str(tmp_path / "no-python"))
    with pytest.raises(FileNotFoundError, match="no-python"):
        missing.start()
    assert not missing.running
    assert missing.pid is None


def test_a_failing_child_reports_its_traceback_without_the_password() -> None:
    # An order whose parent_pid is the password: the error names the value it could not read.
    secret = "s3cr@t/pw"
    url = f"postgresql://someone:{quote(secret, safe='')}@127.0.0.1:1/db"
    child = subprocess.run(
        [sys.executable, "-P", "-m", "mosaicstack_telemetry_server.predictions.drain_child"],
        input=json.dumps({"url": url, "parent_pid": secret, "chunk": 10}).encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == DRAIN_FAILED
    report = child.stderr.decode()
    assert report.startswith("Traceback")  # nothing else: no warning either
    assert "invalid literal for int()" in report
    assert secret not in report
    assert quote(secret, safe="") not in report
    assert "***" in report


def test_a_failing_drain_process_is_logged_once_with_its_error_and_not_restarted_at_once(
    storage: Storage, backlog: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A database without the schema: the child cannot read a cursor there.
    broken = f"sqlite:///{tmp_path / 'unmigrated.db'}"
    service = PredictionService(
        storage, min_sample_size=1, stats_max_age_seconds=0, drain_url=broken
    )
    with caplog.at_level(logging.ERROR, logger="mosaicstack_telemetry_server"):
        [answer] = service.predict_batch([query()])
        pid = service.drain_pid
        wait_until(
            lambda: any("predictions failed" in r.getMessage() for r in caplog.records),
            DRAINED_WITHIN,
            "the failure to be logged",
        )
    [message] = [r.getMessage() for r in caplog.records if "predictions failed" in r.getMessage()]
    assert "Traceback" in message
    assert "prediction_cursor" in message
    # Still answering from what exists, saying so, without starting a child per request.
    [again] = service.predict_batch([query()])
    assert "backlog" in (again.metadata.fallback_note or "")
    assert answer.prediction is None
    assert service.drain_pid == pid
    assert service.stop_background()


def test_an_app_drains_in_a_process_only_on_a_database_another_process_can_open(
    sqlite_url: str,
) -> None:
    def drains_in_process(url: str, *, owns: bool) -> bool:
        store = open_storage(url)
        try:
            settings = ServerSettings(database_url=url)
            runtime = Runtime(settings=settings, storage=store, owns_storage=owns)
            return runtime.predictions.drains_in_process
        finally:
            store.close()

    assert drains_in_process(sqlite_url, owns=True)
    assert not drains_in_process("sqlite://:memory:", owns=True)
    assert not drains_in_process(sqlite_url, owns=False)  # the caller's storage: URL unknown


def test_over_http_a_bulk_load_is_answered_at_once_then_in_full(database_url: str) -> None:
    with serve(database_url, stats_window_days=0) as served:
        _bulk_load(served)
        api = served.client()
        body = {"queries": [query().model_dump(mode="json")]}
        first = api.post("/v1/predictions/batch", json=body)
        assert first.status_code == 200, first.text
        assert "backlog" in (first.json()["results"][0]["metadata"]["fallback_note"] or "")

        def answered_in_full() -> bool:
            answer = api.post("/v1/predictions/batch", json=body).json()["results"][0]
            return bool(answer["metadata"]["sample_size"] == BACKLOG)

        wait_until(answered_in_full, DRAINED_WITHIN, "the server to answer with the bulk load")


def _bulk_load(served: Served) -> None:
    rng = random.Random(7)
    served.storage.insert_events([event(rng, day=rng.randrange(3)) for _ in range(BACKLOG)])
    assert served.storage.event_backlog() == BACKLOG
    assert httpx.get(f"{served.url}/v1/health", timeout=10).status_code == 200
