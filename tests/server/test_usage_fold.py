"""The usage rollups folded in the background: batches' answers say what was stored, answers
count every accepted event before and after the fold, and a fold killed half-way leaves
nothing behind."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from _api_helpers import make_event, serve, wait_until
from _usage_helpers import FIRST, LAST, generated_events, rollups_and_recount
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.storage import open_storage
from mosaicstack_telemetry_server.usage import query_usage
from mosaicstack_telemetry_server.usage_fold import MAX_TAIL, FoldSchedule, UsageFolder

_CLIENTS = 8
_BATCHES = 12
_BATCH = 100


def _events(instance_id: uuid.UUID, rng: random.Random) -> list[dict[str, Any]]:
    """A batch spread over the last ten days: every fold touches many days and instances."""
    now = datetime.now(UTC)
    return [
        make_event(
            instance_id,
            timestamp=(now - timedelta(minutes=rng.randrange(10 * 24 * 60))).isoformat(),
            model=rng.choice(["m-a", "m-b", "m-c"]),
            task_type=rng.choice(["implementation", "testing", "debugging"]),
            outcome=rng.choice(["success", "failure"]),
        )
        for _ in range(_BATCH)
    ]


def _stored(database: str, ids: list[str]) -> int:
    with closing(sqlite3.connect(database)) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM events WHERE event_id IN (SELECT value FROM json_each(?))",
                (str(ids).replace("'", '"'),),
            ).fetchone()[0]
        )


def _cursor_at_end(database: str) -> bool:
    with closing(sqlite3.connect(database)) as conn:
        last, newest = conn.execute(
            "SELECT last_id, (SELECT max(id) FROM events) FROM usage_cursor"
        ).fetchone()
    return bool(last == newest)


def _total(admin: httpx.Client) -> int:
    """Every event's count, as `GET /v1/usage` answers an admin key."""
    now = datetime.now(UTC)
    span = {"from": (now - timedelta(days=11)).isoformat(), "to": now.isoformat()}
    response = admin.get("/v1/usage", params=span)
    assert response.status_code == 200, response.text
    return int(response.json()["totals"]["tasks"])


def test_eight_clients_get_answers_that_say_what_was_stored_while_the_fold_runs(
    sqlite_url: str,
) -> None:
    database = sqlite_url.removeprefix("sqlite:///")
    with serve(sqlite_url) as served:
        instances = [uuid.uuid4() for _ in range(_CLIENTS)]
        keys = [served.issue(instance_id)[0] for instance_id in instances]
        admin = served.client(issue_api_key(served.storage, None, "admin", admin=True)[0])
        answers: list[tuple[int, list[str]]] = []
        lock = threading.Lock()

        def post(index: int) -> None:
            rng = random.Random(index)
            client = served.client(keys[index])
            for _ in range(_BATCHES):
                batch = _events(instances[index], rng)
                response = client.post("/v1/events/batch", json={"events": batch})
                with lock:
                    answers.append((response.status_code, [e["event_id"] for e in batch]))

        # The test folds too, as a second server process would: folds and inserts contend.
        folder = UsageFolder(served.storage, interval=0.05)
        folder.start()
        threads = [threading.Thread(target=post, args=(index,)) for index in range(_CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert folder.stop(30)
        assert len(answers) == _CLIENTS * _BATCHES
        stored_total = 0
        for status, ids in answers:
            stored = _stored(database, ids)
            if status == 200:
                assert stored == len(ids)
            else:  # refused: nothing of it was stored
                assert status == 503
                assert stored == 0
            stored_total += stored
        # Every accepted event is counted, folded or not, and the server's fold catches up.
        assert _total(admin) == stored_total
        wait_until(lambda: _cursor_at_end(database), 30, "the background fold to catch up")
        assert _total(admin) == stored_total
    for name, (rows, recount) in rollups_and_recount(sqlite_url).items():
        assert rows == recount, name


def _fold_in_child(database_url: str) -> subprocess.Popen[bytes]:
    """A process that folds one chunk, as a server's background fold does."""
    script = (
        "import sys\n"
        "from mosaicstack_telemetry_server.storage import open_storage\n"
        "open_storage(sys.argv[1]).fold_pending_usage()\n"
    )
    return subprocess.Popen([sys.executable, "-c", script, database_url])


def _sqlite_write_lock_taken(path: str) -> bool:
    with closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as conn:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return True
        conn.execute("ROLLBACK")
    return False


def _kill_mid_fold_sqlite(database_url: str) -> None:
    """Kill a fold while it holds the write lock: it is adding the chunk's rows."""
    path = database_url.removeprefix("sqlite:///")
    child = _fold_in_child(database_url)
    try:
        wait_until(lambda: _sqlite_write_lock_taken(path), 60, "the fold to take the lock")
    finally:
        child.kill()
        child.wait(30)


def _kill_mid_fold_postgres(database_url: str) -> None:
    """Kill a fold stopped on its last upsert (the test holds that table's lock)."""
    import psycopg

    waiting = (
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE 'INSERT INTO usage_token_blocks%'"
    )
    # Watched from a connection of its own: the activity view is a snapshot per transaction.
    with (
        psycopg.connect(database_url) as holder,
        psycopg.connect(database_url, autocommit=True) as watcher,
    ):
        holder.execute("LOCK TABLE usage_token_blocks IN ACCESS EXCLUSIVE MODE")
        child = _fold_in_child(database_url)
        try:
            wait_until(lambda: bool(watcher.execute(waiting).fetchall()), 60, "the fold to wait")
            (pid,) = watcher.execute(waiting).fetchone() or (None,)
        finally:
            child.kill()
            child.wait(30)
    # The lock is released: the orphaned backend ends its statement, finds its client gone
    # and rolls the fold back.
    with psycopg.connect(database_url, autocommit=True) as conn:
        gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
        wait_until(lambda: conn.execute(gone, (pid,)).fetchone() == (0,), 30, "the backend")


def test_a_fold_killed_half_way_leaves_rollups_and_cursor_as_they_were(
    database_url: str,
) -> None:
    events = generated_events(20_000, seed=21)
    expected = sum(FIRST <= event.timestamp < LAST for event in events)
    storage = open_storage(database_url)
    try:
        storage.migrate()
        for start in range(0, len(events), 5_000):
            storage.insert_events(events[start : start + 5_000])
        if database_url.startswith("sqlite:"):
            _kill_mid_fold_sqlite(database_url)
        else:
            _kill_mid_fold_postgres(database_url)
        # Nothing of the killed fold remains: every event is still after the cursor, and
        # answers count each once; the next fold takes them all.
        report = query_usage(storage, instance_id=None, start=FIRST, end=LAST, group_by=[])
        assert report.totals.tasks == expected
        assert storage.fold_pending_usage() == 20_000
        report = query_usage(storage, instance_id=None, start=FIRST, end=LAST, group_by=[])
        assert report.totals.tasks == expected
    finally:
        storage.close()
    for name, (rows, recount) in rollups_and_recount(database_url).items():
        assert rows == recount, name


def test_the_folder_counts_what_it_folds_and_survives_a_failing_fold(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    try:
        # Not migrated yet: the fold fails, is logged and tried again, never raised.
        folder = UsageFolder(storage, interval=0.01)
        assert folder.run_once() is None
        assert folder.run_once() is None
        storage.migrate()
        assert storage.insert_events(generated_events(300, seed=22)) == 300
        assert folder.run_once() == 300
        assert folder.run_once() == 0
        assert folder.folded == 300
        folder.start()
        folder.start()  # already running: nothing more
        assert storage.insert_events(generated_events(200, seed=23)) == 200
        # Nothing more arrives: the thread folds them once it sees the waiting events stop growing.
        wait_until(lambda: folder.folded == 500, 30, "the thread to fold the new events")
        assert folder.stop(10)
        assert folder.stop(10)  # stopped already
        with pytest.raises(ValueError, match="interval"):
            UsageFolder(storage, interval=0)
    finally:
        storage.close()


def test_the_schedule_waits_for_a_lull_a_full_tail_or_the_longest_wait() -> None:
    schedule = FoldSchedule(max_tail=1_000, max_wait=60.0)
    assert not schedule.due(0, 0.0)
    # A burst: what waits grows at every look, so the fold keeps out of ingestion's way.
    assert not schedule.due(100, 0.5)
    assert not schedule.due(400, 1.0)
    # The burst pauses: the fold runs.
    assert schedule.due(400, 1.5)
    schedule.folded()
    # A tail as long as max_tail is folded at once, growing or not.
    assert not schedule.due(200, 2.0)
    assert schedule.due(1_000, 2.5)
    schedule.folded()
    # A stream that never pauses is folded max_wait after it was first seen waiting.
    assert not schedule.due(10, 3.0)
    assert not all(schedule.due(10 + n, 3.0 + n) for n in range(1, 60))
    assert schedule.due(80, 63.0)


@given(st.lists(st.tuples(st.integers(0, 2_000), st.floats(0, 5)), max_size=60))
def test_the_schedule_never_lets_events_wait_past_max_wait_or_max_tail(
    looks: list[tuple[int, float]],
) -> None:
    schedule, now, waiting_since = FoldSchedule(max_tail=1_000, max_wait=60.0), 0.0, None
    for waiting, step in looks:
        now += step
        due = schedule.due(waiting, now)
        if waiting == 0:
            assert not due
            waiting_since = None
            continue
        waiting_since = now if waiting_since is None else waiting_since
        if waiting >= 1_000 or now - waiting_since >= 60.0:
            assert due
        if due:
            schedule.folded()
            waiting_since = None


def test_a_burst_is_stored_without_folding_and_folded_after_it(database_url: str) -> None:
    storage = open_storage(database_url)
    try:
        storage.migrate()
        folder = UsageFolder(storage, interval=0.05)
        batches = [generated_events(500, seed=40 + n) for n in range(6)]
        now = 0.0
        for batch in batches:
            storage.insert_events(batch)
            now += 0.05
            assert folder.look_once(now) == 0  # still growing: the fold waits
        assert storage.usage_waiting(MAX_TAIL) == 3_000
        # Answers count the waiting events all the same.
        report = query_usage(storage, instance_id=None, start=FIRST, end=LAST, group_by=[])
        assert report.totals.tasks == 3_000
        assert folder.look_once(now + 0.05) == 3_000  # the lull: one fold takes the burst
        assert storage.usage_waiting(MAX_TAIL) == 0
        assert storage.usage_waiting(10) == 0
    finally:
        storage.close()
    for name, (rows, recount) in rollups_and_recount(database_url).items():
        assert rows == recount, name


_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["2026-01-01", "2026-01-02", "2026-01-17"]),
        st.sampled_from(["i-1", "i-2"]),
        *(st.sampled_from(["a", "b"]) for _ in range(5)),
        st.sampled_from(["success", "failure"]),
        # project, branch, user: "" is how the fold is given an event without one.
        *(st.sampled_from(["", "p"]) for _ in range(3)),
        *(st.integers(0, 2**58) for _ in range(4)),
        st.integers(0, 1),
        *(st.integers(0, 2**58) for _ in range(3)),  # cache read and write, reasoning
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(rows=_ROWS)
def test_fold_rows_equal_a_plain_recount_even_past_what_floats_hold(
    rows: list[tuple[Any, ...]],
) -> None:
    from mosaicstack_telemetry_server.storage._rollup_fold import fold_rows
    from mosaicstack_telemetry_server.storage._rollups import CATEGORICAL, CUBOIDS

    daily: dict[tuple[Any, ...], list[int]] = {}
    for row in rows:
        values = dict(zip(CATEGORICAL, row[2:11], strict=True))
        sums = (1, *row[11:15], int(row[7] == "success"), row[15], *row[16:19])
        for owner in (row[1], "*"):
            for cuboid in CUBOIDS:
                padded = [*(values[name] for name in cuboid), "", "", ""][:3]
                total = daily.setdefault((",".join(cuboid), row[0], owner, *padded), [0] * 10)
                for index, value in enumerate(sums):
                    total[index] += value
    folded = fold_rows(rows)
    assert {row[:6]: list(row[6:]) for row in folded.daily} == daily
    assert len(folded.daily) == len(daily)
    # Each event is in one bucket per kind, owner and period.
    for table in (folded.buckets, folded.blocks):
        assert sum(row[5] for row in table) == 2 * 2 * len(rows)
    assert fold_rows([]).daily == []
