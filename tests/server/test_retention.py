"""Retention on SQLite and PostgreSQL: after a prune the server answers as a database that only
ever held the remaining events; prunes go in bounded chunks, a dry run changes nothing, the
background task of `serve --retention-days` runs, and pruners may run beside ingestion."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _api_helpers import Served, serve, wait_until
from _storage_helpers import run_together
from _usage_helpers import generated_events, rollups_and_recount

from mosaicstack_telemetry import Complexity, TaskCompletionEvent
from mosaicstack_telemetry_server.auth import issue_api_key
from mosaicstack_telemetry_server.cli import main
from mosaicstack_telemetry_server.predictions.service import PredictionService
from mosaicstack_telemetry_server.retention import RetentionTask, cutoff_day, prune
from mosaicstack_telemetry_server.runner import settings_from_env
from mosaicstack_telemetry_server.storage import Storage, StorageError, open_storage
from mosaicstack_telemetry_server.storage._retention_sql import midnight

# generated_events spans 2025-12-20 to 2026-02-05: this cut keeps about the newer half.
CUT = date(2026, 1, 10)
_AFTER_ALL = date(2026, 2, 6)
_SEARCH_PATH = "options=-csearch_path%3D"


@contextmanager
def _another_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second fresh database of the same backend (a file, or a schema of its own)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    prefix, _, _ = database_url.rpartition(_SEARCH_PATH)
    base = prefix[:-1]  # without the "?" or "&" before the options
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{prefix}{_SEARCH_PATH}{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _insert(storage: Storage, events: list[TaskCompletionEvent]) -> None:
    """Store events in batches of 500; all but the last batch folded into the usage rollups,
    so a prune meets both folded and pending events."""
    for start in range(0, len(events), 500):
        if start:
            while storage.fold_pending_usage():
                pass
        storage.insert_events(events[start : start + 500])


def _answers(served: Served) -> dict[str, Any]:
    """GET /v1/usage in several shapes (whole and partial days) and predictions for every
    group, with the fields that only say when they were computed left out."""
    key, _ = issue_api_key(served.storage, None, "ops", admin=True)
    admin = served.client(key)
    answers: dict[str, Any] = {}
    for start in ("2025-12-01T00:00:00Z", "2026-01-09T06:30:00Z", "2026-01-10T00:00:00Z"):
        for group_by in ("", "day", "model,outcome", "task_type,complexity,harness", "instance_id"):
            params = {"from": start, "to": "2026-02-10T00:00:00Z", "group_by": group_by}
            response = admin.get("/v1/usage", params=params)
            assert response.status_code == 200, response.text
            answers[f"usage {start} {group_by}"] = response.json()
    queries = [
        {"task_type": task_type, "model": model, "provider": provider, "complexity": complexity}
        for task_type in ("implementation", "testing", "debugging")
        for model, provider in (("claude-sonnet-4-5", "anthropic"), ("gpt-5", "openai"))
        for complexity in (c.value for c in Complexity)
    ]
    response = admin.post("/v1/predictions/batch", json={"queries": queries})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    for result in results:
        result["metadata"].pop("last_updated")
        result["metadata"].pop("cache_hit")
    answers["predictions"] = results
    return answers


def test_after_a_prune_the_api_answers_as_a_database_of_the_remaining_events(
    database_url: str, tmp_path: Path
) -> None:
    events = generated_events(900, seed=21)
    kept = [event for event in events if event.timestamp >= midnight(CUT)]
    settings = {"stats_max_age_seconds": 0, "stats_window_days": 0}
    with (
        _another_database(database_url, tmp_path) as fresh_url,
        serve(database_url, **settings) as pruned,
        serve(fresh_url, **settings) as fresh,
    ):
        _insert(pruned.storage, events)
        _insert(fresh.storage, kept)
        # Folds every event into the prediction buckets, and serves statistics of all of them.
        before = _answers(pruned)
        report = prune(pruned.storage, CUT, chunk=97)
        assert report.events == len(events) - len(kept) > 0
        assert report.rollup_rows > 0
        assert report.buckets > 0
        after, expected = _answers(pruned), _answers(fresh)
        assert after != before  # the pruned days counted before
        assert after == expected
    for name, (stored, recount) in rollups_and_recount(database_url).items():
        assert stored == recount, name


def test_a_prune_commits_chunks_of_at_most_the_chunk_size(database_url: str) -> None:
    storage = open_storage(database_url)
    try:
        storage.migrate()
        _insert(storage, generated_events(230, seed=22))
        PredictionService(storage, min_sample_size=1, stats_max_age_seconds=0).refresh_stale()
        seen: list[int] = []

        def pause(seconds: float) -> bool:
            # Another connection, between two transactions: what each chunk committed.
            seen.append(storage.count_events())
            return False

        report = prune(storage, _AFTER_ALL, chunk=50, pause=pause)
        assert seen[:4] == [180, 130, 80, 30]
        assert max(report.chunks) <= 50
        assert report.events == 230
        assert not report.stopped
        rows = report.rollup_rows + report.buckets
        assert report.transactions >= 5 + math.ceil(rows / 50)
        assert all(not storage.bucket_sizes(t) for t in ("implementation", "testing", "debugging"))
    finally:
        storage.close()
    for name, (stored, recount) in rollups_and_recount(database_url).items():
        assert stored == recount == {}, name


@pytest.mark.parametrize(
    ("cut", "chunk"),
    [
        (date(2026, 1, 11), 50),  # a block's first day: whole blocks go, none straddles
        (date(2026, 1, 12), 50),  # one day into a block: rebuilt, its day in several chunks
        (date(2026, 1, 26), 10_000),  # its last day: rebuilt from one day, in one transaction
    ],
)
def test_token_blocks_straddling_the_cut_answer_as_the_days_they_keep(
    database_url: str, cut: date, chunk: int
) -> None:
    events = generated_events(700, seed=29)  # 500 folded, the rest pending
    kept = [event for event in events if event.timestamp >= midnight(cut)]
    storage = open_storage(database_url)
    try:
        storage.migrate()
        _insert(storage, events)
        report = prune(storage, cut, chunk=chunk, pause=lambda s: False)
        assert report.events == len(events) - len(kept)
        assert max(report.chunks) <= chunk
        end = datetime(2026, 3, 1, tzinfo=UTC)
        found = storage.token_buckets(instance_id=None, start=midnight(cut), end=end)
        assert sum(row.count for row in found) == 2 * len(kept)
        whole = storage.token_buckets(
            instance_id=None, start=datetime(2025, 1, 1, tzinfo=UTC), end=end
        )
        assert whole == found  # the blocks before and around the cut hold only kept days
    finally:
        storage.close()
    for name, (stored, recount) in rollups_and_recount(database_url).items():
        assert stored == recount, name


def test_a_prune_asked_to_stop_stops_between_chunks(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    try:
        storage.migrate()
        _insert(storage, generated_events(120, seed=23))
        report = prune(storage, _AFTER_ALL, chunk=50, pause=lambda seconds: True)
        assert report.stopped
        assert report.chunks == [50]
        assert storage.count_events() == 70
        with pytest.raises(ValueError, match="chunk"):
            prune(storage, _AFTER_ALL, chunk=0)
        with pytest.raises(ValueError, match="limit"):
            storage.prune_events(_AFTER_ALL, 0)
    finally:
        storage.close()


def test_prune_command_dry_run_counts_and_changes_nothing(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = generated_events(300, seed=24)
    old = [event for event in events if event.timestamp < midnight(CUT)]
    days = sorted({event.timestamp.astimezone(UTC).date() for event in old})
    storage = open_storage(database_url)
    try:
        storage.migrate()
        _insert(storage, events)
        rollups = rollups_and_recount(database_url)
        argv = ["prune", "--before", CUT.isoformat(), "--database", database_url]
        assert main([*argv, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert f"would delete {len(old)} events on {len(days)} UTC days" in out
        assert f"({days[0]} to {days[-1]})" in out
        assert storage.count_events() == len(events)
        assert rollups_and_recount(database_url) == rollups
        assert main(argv) == 0
        assert f"deleted {len(old)} events on {len(days)} UTC days" in capsys.readouterr().out
        assert storage.count_events() == len(events) - len(old)
        assert main([*argv, "--dry-run"]) == 0
        assert "would delete 0 events on 0 UTC days," in capsys.readouterr().out
    finally:
        storage.close()


@pytest.mark.parametrize(
    ("before", "message"),
    [("2026-13-01", "is not a date"), ("yesterday", "is not a date"), ("2999-01-01", "after")],
)
def test_prune_command_refuses_a_bad_or_future_day(
    sqlite_url: str, before: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["prune", "--before", before, "--database", sqlite_url])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_serve_with_retention_days_deletes_old_events_in_the_background(
    database_url: str,
) -> None:
    now = datetime.now(UTC)
    recent = [
        event.model_copy(update={"timestamp": now - timedelta(days=1 + i % 5)})
        for i, event in enumerate(generated_events(40, seed=25))
    ]
    old = [
        event.model_copy(update={"timestamp": now - timedelta(days=31 + i % 9)})
        for i, event in enumerate(generated_events(60, seed=26))
    ]
    storage = open_storage(database_url)
    try:
        storage.migrate()
        _insert(storage, recent + old)
    finally:
        storage.close()
    with serve(database_url, retention_days=30) as served:
        wait_until(
            lambda: served.storage.count_events() == len(recent),
            timeout=20,
            what="the retention task to delete the old events",
        )
        # Only the old ones went.
        assert all(served.storage.get_event(e.instance_id, e.event_id) for e in recent)


def test_pruners_in_several_processes_beside_ingestion_keep_the_rollups_exact(
    database_url: str,
) -> None:
    old, new = generated_events(600, seed=27), generated_events(600, seed=28)
    new = [e.model_copy(update={"timestamp": e.timestamp + timedelta(days=60)}) for e in new]
    storages = [open_storage(database_url) for _ in range(3)]
    try:
        storages[0].migrate()
        _insert(storages[0], old)

        def work(index: int) -> int:
            if index == 0:  # ingestion of new events while two pruners run
                _insert(storages[0], new)
                return 0
            return prune(storages[index], _AFTER_ALL, chunk=40, pause=lambda s: False).events

        deleted = run_together(3, work, timeout=120)
        assert sum(deleted) == len(old)
        assert storages[0].count_events() == len(new)
    finally:
        for storage in storages:
            storage.close()
    for name, (stored, recount) in rollups_and_recount(database_url).items():
        assert stored == recount, name


def test_retention_days_comes_from_the_environment_or_the_flag() -> None:
    assert settings_from_env({}).retention_days == 0  # default: keep forever
    assert settings_from_env({"MOSAIC_TELEMETRY_RETENTION_DAYS": "90"}).retention_days == 90
    with pytest.raises(ValueError, match="MOSAIC_TELEMETRY_RETENTION_DAYS"):
        settings_from_env({"MOSAIC_TELEMETRY_RETENTION_DAYS": "-1"})
    from mosaicstack_telemetry_server.cli import build_parser, settings_from_args

    args = build_parser().parse_args(["serve", "--retention-days", "7"])
    assert settings_from_args(args).retention_days == 7


def test_the_cut_keeps_the_last_n_whole_days_and_today() -> None:
    late = datetime(2026, 3, 10, 23, 59, tzinfo=UTC)
    assert cutoff_day(late, 7) == date(2026, 3, 3)
    # The UTC day counts, not the local one.
    east = datetime(2026, 3, 11, 1, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=5)))
    assert cutoff_day(east, 1) == date(2026, 3, 10)
    with pytest.raises(ValueError, match="at least 1"):
        cutoff_day(late, 0)


def test_the_retention_task_logs_one_failure_then_recovers(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = open_storage(sqlite_url)
    failures = [StorageError("down"), StorageError("still down")]

    def ready() -> None:
        if failures:
            raise failures.pop(0)
        storage.migrate()

    try:
        task = RetentionTask(storage, 30, ready=ready, interval=60)
        with caplog.at_level(logging.DEBUG, logger="mosaicstack_telemetry_server"):
            assert task.run_once() is None
            assert task.run_once() is None
            report = task.run_once()
        assert report is not None
        assert task.passes == 1
        assert task.last is report
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        assert any("works again" in r.getMessage() for r in caplog.records)
        with pytest.raises(ValueError, match="interval"):
            RetentionTask(storage, 30, interval=0)
        assert task.stop() is True  # never started
    finally:
        storage.close()


def test_a_catch_up_that_read_events_before_a_prune_cannot_fold_them_afterwards(
    database_url: str,
) -> None:
    storage = open_storage(database_url)
    try:
        storage.migrate()
        _insert(storage, generated_events(50, seed=29))
        # A catch-up has read the events, not yet stored its buckets; then the prune runs.
        cursor = storage.event_cursor()
        read = storage.read_new_events(cursor, 1000)
        assert len(read.rows) == 50
        prune(storage, _AFTER_ALL)
        assert storage.advance_events(cursor, read.cursor, []) is False
        PredictionService(storage, min_sample_size=1, stats_max_age_seconds=0).refresh_stale()
        assert all(not storage.bucket_sizes(t) for t in ("implementation", "testing", "debugging"))
    finally:
        storage.close()
