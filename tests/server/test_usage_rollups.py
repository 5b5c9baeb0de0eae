"""The daily rollups equal a full recount of the events: after concurrent ingestion with
resends, after a backfill by the migration, on SQLite and PostgreSQL."""

from __future__ import annotations

import random

import pytest
from _storage_helpers import INSTANCE, run_together
from _usage_helpers import execute, generated_events, insert_raw, rollups_and_recount

from mosaicstack_telemetry_server.storage import open_storage
from mosaicstack_telemetry_server.storage._common import split_statements


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
            # offered 8 to 16 times, concurrently, and must count once.
            rng = random.Random(worker)
            order = batches + rng.sample(batches, len(batches) // 2)
            rng.shuffle(order)
            return sum(storage.insert_events(batch) for batch in order)

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
