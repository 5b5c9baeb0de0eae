"""The daily rollups equal a full recount of the events: after concurrent ingestion with
resends, after a backfill by the migration, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from _storage_helpers import INSTANCE, run_together
from _usage_helpers import (
    FIRST,
    LAST,
    execute,
    expected_usage,
    generated_events,
    insert_raw,
    rollups_and_recount,
)

from mosaicstack_telemetry_server.retention import prune
from mosaicstack_telemetry_server.storage import open_storage
from mosaicstack_telemetry_server.storage._common import split_statements
from mosaicstack_telemetry_server.storage._rollups import FOLD_LIMIT
from mosaicstack_telemetry_server.usage import query_usage


def test_rollups_equal_a_recount_after_concurrent_ingestion_with_resends(
    database_url: str,
) -> None:
    events = generated_events(1200, seed=3)
    batches = [events[i : i + 40] for i in range(0, len(events), 40)]
    storage = open_storage(database_url)
    try:
        storage.migrate()

        def ingest(worker: int) -> int:
            # Every worker sends every batch, in its own order, some twice: each event is
            # offered 8 to 16 times, concurrently, and must count once. Workers also fold
            # now and then, so folds race each other and the inserts.
            rng = random.Random(worker)
            order = batches + rng.sample(batches, len(batches) // 2)
            rng.shuffle(order)
            stored = 0
            for number, batch in enumerate(order):
                stored += storage.insert_events(batch)
                if number % 5 == worker % 5:
                    storage.fold_pending_usage()
            return stored

        stored = run_together(8, ingest, timeout=120)
        assert sum(stored) == len(events)
        assert storage.count_events() == len(events)
    finally:
        storage.close()
    tables = rollups_and_recount(database_url)
    for name, (stored, recount) in tables.items():
        assert stored == recount, name
    totals = [sums for key, sums in tables["daily"][0].items() if key[0] == "" and key[2] == "*"]
    assert sum(sums[0] for sums in totals) == len(events)


def test_migration_backfills_the_rollups_of_events_stored_before_it(database_url: str) -> None:
    events = generated_events(500, seed=4)
    storage = open_storage(database_url)
    try:
        storage.migrate(target=2)
        insert_raw(database_url, events)
        storage.migrate()
        # New events after the backfill add to the backfilled rows.
        assert storage.insert_events(generated_events(200, seed=5)) == 200
    finally:
        storage.close()
    tables = rollups_and_recount(database_url)
    for name, (stored, recount) in tables.items():
        assert stored == recount, name
    totals = [sums for key, sums in tables["daily"][0].items() if key[0] == "" and key[2] == "*"]
    assert sum(sums[0] for sums in totals) == 700


def test_a_database_at_schema_5_upgrades_and_answers_as_a_recount(database_url: str) -> None:
    events = generated_events(400, seed=6)
    storage = open_storage(database_url)
    try:
        storage.migrate(target=5)
        insert_raw(database_url, events)
        storage.migrate(target=6)  # the new rollups, backfilled from the stored events
        assert storage.schema_version() == 6
        storage.migrate()
        # Migration 12 emptied the rollups: every event is refolded, and read meanwhile.
        assert storage.fold_pending_usage() == 400
        for group_by in (["model", "task_type", "harness"], ["day", "instance_id", "outcome"]):
            report = query_usage(
                storage, instance_id=None, start=FIRST, end=LAST, group_by=group_by
            )
            groups, _ = expected_usage(
                events, instance_id=None, start=FIRST, end=LAST, group_by=group_by
            )
            got = {tuple(group.key.values()): group.tasks for group in report.groups}
            assert got == {key: sums["tasks"] for key, sums in groups.items()}
    finally:
        storage.close()
    for name, (stored, recount) in rollups_and_recount(database_url).items():
        assert stored == recount, name


def test_insert_events_leaves_the_fold_to_the_cursor_and_answers_count_both(
    database_url: str,
) -> None:
    events = generated_events(1_300, seed=7)
    storage = open_storage(database_url)
    try:
        storage.migrate()
        for start in range(0, len(events), 500):
            storage.insert_events(events[start : start + 500])
        expected = sum(FIRST <= event.timestamp < LAST for event in events)
        # Nothing folded yet: every answer reads the events after the cursor.
        report = query_usage(storage, instance_id=None, start=FIRST, end=LAST, group_by=[])
        assert report.totals.tasks == expected
        assert storage.fold_pending_usage(min_events=1_301) == 0  # too few wait: no fold
        assert storage.fold_pending_usage(limit=1_000) == 1_000  # one bounded chunk at a time
        report = query_usage(storage, instance_id=None, start=FIRST, end=LAST, group_by=[])
        assert report.totals.tasks == expected
        assert storage.fold_pending_usage(min_events=300, limit=1_000) == 300
        assert storage.fold_pending_usage() == 0
        assert storage.insert_events(events[:100]) == 0  # a resend adds nothing to fold
        assert storage.fold_pending_usage() == 0
        for limit in (0, FOLD_LIMIT + 1):
            with pytest.raises(ValueError, match="a fold takes"):
                storage.fold_pending_usage(limit=limit)
    finally:
        storage.close()
    for name, (stored, recount) in rollups_and_recount(database_url).items():
        assert stored == recount, name


def test_a_database_at_schema_7_folds_its_pending_events_when_it_moves_to_the_cursor(
    database_url: str,
) -> None:
    events = generated_events(700, seed=11)
    storage = open_storage(database_url)
    try:
        storage.migrate(target=7)
        # As the previous design left it: some events folded, the newest still listed as
        # pending, and one pending id whose event was pruned.
        insert_raw(database_url, events)
        execute(database_url, "INSERT INTO usage_pending (id) SELECT id FROM events")
        execute(database_url, "INSERT INTO usage_pending (id) VALUES (?)", (10**9,))
        storage.migrate(target=11)
        assert storage.fold_pending_usage() == 0  # the migration to 9 folded them all
        storage.migrate()
        assert storage.fold_pending_usage() == 700  # and 12 refolds them with attribution
        assert storage.insert_events(generated_events(200, seed=12)) == 200
        report = query_usage(storage, instance_id=None, start=FIRST, end=LAST, group_by=[])
        assert report.totals.tasks > 0
    finally:
        storage.close()
    tables = rollups_and_recount(database_url)
    for name, (stored, recount) in tables.items():
        assert stored == recount, name
    totals = [sums for key, sums in tables["daily"][0].items() if key[0] == "" and key[2] == "*"]
    assert sum(sums[0] for sums in totals) == 900


@pytest.mark.parametrize("folded", [False, True], ids=["unfolded", "folded"])
def test_events_pruned_before_or_after_their_fold_are_never_counted_and_new_ones_are(
    database_url: str, folded: bool
) -> None:
    storage = open_storage(database_url)
    try:
        storage.migrate()
        assert storage.insert_events(generated_events(300, seed=8)) == 300
        if folded:
            assert storage.fold_pending_usage() == 300
        report = prune(storage, LAST.date() + timedelta(days=1))
        assert report.events == 300
        # The table is empty: new events must still get ids after the cursor (SQLite would
        # give an emptied table's ids again), or no answer would ever count them.
        fresh = generated_events(300, seed=9)
        assert storage.insert_events(fresh) == 300
        expected = sum(FIRST <= event.timestamp < LAST for event in fresh)
        report = query_usage(storage, instance_id=None, start=FIRST, end=LAST, group_by=[])
        assert report.totals.tasks == expected
        assert storage.fold_pending_usage() == 300
        report = query_usage(storage, instance_id=None, start=FIRST, end=LAST, group_by=[])
        assert report.totals.tasks == expected
    finally:
        storage.close()
    for name, (stored, recount) in rollups_and_recount(database_url).items():
        assert stored == recount, name


def test_admin_keys_have_no_instance_and_instance_keys_need_one(database_url: str) -> None:
    storage = open_storage(database_url)
    try:
        storage.migrate(target=2)
        execute(
            database_url,
            "INSERT INTO api_keys (key_id, key_hash, instance_id, label, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            ("mk_old", "a" * 64, str(INSTANCE), None, "2026-01-01T00:00:00.000000+00:00"),
        )
        storage.migrate()  # the rebuild of api_keys keeps existing keys as instance keys
        admin = storage.create_api_key(
            key_id="mk_admin", key_hash="b" * 64, instance_id=None, label="ops", role="admin"
        )
        assert admin.is_admin
        assert admin.instance_id is None
        found = storage.find_api_key("b" * 64)
        assert found is not None
        assert (found.role, found.instance_id, found.label) == ("admin", None, "ops")
        listed = {record.key_id: record for record in storage.list_api_keys()}
        assert listed["mk_old"].role == "instance"
        assert listed["mk_old"].instance_id == INSTANCE
        with pytest.raises(ValueError, match="admin key must have none"):
            storage.create_api_key(
                key_id="mk_x", key_hash="c" * 64, instance_id=INSTANCE, label=None, role="admin"
            )
        with pytest.raises(ValueError, match="needs an instance_id"):
            storage.create_api_key(key_id="mk_y", key_hash="d" * 64, instance_id=None, label=None)
        with pytest.raises(ValueError, match="role must be"):
            storage.create_api_key(
                key_id="mk_z",
                key_hash="e" * 64,
                instance_id=None,
                label=None,
                role="root",  # type: ignore[arg-type]
            )
    finally:
        storage.close()


def test_split_statements_keeps_trigger_and_function_bodies_whole() -> None:
    script = """
-- a comment; with a semicolon
CREATE TABLE a (x int); CREATE TABLE b (y int);
CREATE TRIGGER t AFTER INSERT ON a BEGIN
    INSERT INTO b VALUES (NEW.x);
    INSERT INTO b VALUES (NEW.x + 1);
END;
CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO b VALUES (1);
    RETURN NULL;
END;
$$;
CREATE INDEX i ON a (x)
"""
    statements = split_statements(script)
    assert statements[:2] == ("CREATE TABLE a (x int)", "CREATE TABLE b (y int)")
    assert statements[2].startswith("CREATE TRIGGER t")
    assert statements[2].endswith("END")
    assert statements[2].count("INSERT INTO b") == 2
    assert statements[3].startswith("CREATE FUNCTION f()")
    assert statements[3].endswith("$$")
    assert statements[4] == "CREATE INDEX i ON a (x)"
    assert len(statements) == 5


def test_an_event_committed_after_a_fold_passed_its_id_is_counted_then_folded_once(
    postgres_url: str,
) -> None:
    import psycopg

    from mosaicstack_telemetry_server.storage._common import EVENT_COLUMNS

    storage = open_storage(postgres_url)
    try:
        storage.migrate()
        assert storage.insert_events(generated_events(100, seed=31)) == 100
        columns = ", ".join(EVENT_COLUMNS).replace("event_id", "gen_random_uuid()", 1)
        with psycopg.connect(postgres_url) as late:
            # Draws the next id and stays in flight while a later batch commits and the fold
            # moves the cursor past both ids.
            late.execute(
                f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
                f"SELECT {columns} FROM events WHERE id = (SELECT min(id) FROM events)"
            )
            assert storage.insert_events(generated_events(50, seed=32)) == 50
            assert storage.fold_pending_usage() == 150
            report = query_usage(storage, instance_id=None, start=FIRST, end=LAST, group_by=[])
            seen = report.totals.tasks
        # Committed now, below the cursor: counted at once (the cursor kept its transaction
        # as in flight), and folded by the next fold, once.
        report = query_usage(storage, instance_id=None, start=FIRST, end=LAST, group_by=[])
        assert report.totals.tasks == seen + 1
        assert storage.fold_pending_usage() == 1
        assert storage.fold_pending_usage() == 0
        report = query_usage(storage, instance_id=None, start=FIRST, end=LAST, group_by=[])
        assert report.totals.tasks == seen + 1
    finally:
        storage.close()
    for name, (stored, recount) in rollups_and_recount(postgres_url).items():
        assert stored == recount, name


def test_events_stored_at_schema_11_are_summed_by_attribution_after_migrating_to_12(
    database_url: str,
) -> None:
    # 1.0 and 1.1 events stored by a server at schema 11: its rollups hold them without
    # attribution or cache sums. Migration 12 empties them and moves the cursor back, so the
    # answers are exact at once (from the events) and after the background refold.
    events = generated_events(600, seed=21)
    storage = open_storage(database_url)
    try:
        storage.migrate(target=8)
        insert_raw(database_url, events, schema_1_1=True)
        execute(database_url, "INSERT INTO usage_pending (id) SELECT id FROM events")
        storage.migrate(target=11)  # 9 folds the pending events into the old rollups
        assert storage.schema_version() == 11

        def answers_exactly() -> None:
            for group_by, filters in (
                (["project"], {}),
                (["project", "branch", "user"], {}),
                (["day", "model"], {"project": "acme/billing"}),
                (["branch"], {"project": "acme/web", "user": "dana"}),
            ):
                query = {"instance_id": None, "start": FIRST, "end": LAST, "group_by": group_by}
                report = query_usage(storage, **query, filters=filters)  # type: ignore[arg-type]
                groups, totals = expected_usage(events, **query, filters=filters)  # type: ignore[arg-type]
                got = {
                    tuple(group.key.values()): group.model_dump(exclude={"key"})
                    for group in report.groups
                }
                assert set(got) == set(groups)
                for key, sums in groups.items():
                    for name, value in sums.items():
                        if name != "gate_passes":
                            assert got[key][name] == value, (key, name)
                assert report.totals.cache_read_tokens == totals["cache_read_tokens"]
                assert report.totals.reasoning_tokens == totals["reasoning_tokens"]

        storage.migrate()
        answers_exactly()  # every event read from the events table
        assert storage.fold_pending_usage() == 600
        answers_exactly()  # every event read from the refolded rollups
    finally:
        storage.close()
    for name, (stored, recount) in rollups_and_recount(database_url).items():
        assert stored == recount, name
