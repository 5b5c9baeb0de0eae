"""Events in storage: round trips, idempotent inserts, data versions, consistent snapshots."""

from __future__ import annotations

import threading
from uuid import uuid4

import pytest
from _storage_helpers import (
    INSTANCE,
    OTHER_INSTANCE,
    events_strategy,
    make_event,
    run_together,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaicstack_telemetry import Outcome, TaskCompletionEvent, TaskType
from mosaicstack_telemetry_server.storage import (
    MAX_EVENTS_PER_INSERT,
    PartitionSnapshot,
    Storage,
)


def test_event_round_trips_field_for_field(storage: Storage) -> None:
    event = make_event(
        quality_gates_failed=["lint"], language=None, repo_size_category=None, retry_count=3
    )
    assert storage.insert_events([event]) == 1
    assert storage.get_event(event.instance_id, event.event_id) == event


def test_unknown_event_is_none(storage: Storage) -> None:
    assert storage.get_event(INSTANCE, uuid4()) is None


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(events_strategy, min_size=1, max_size=3))
def test_any_valid_event_round_trips(storage: Storage, batch: list[TaskCompletionEvent]) -> None:
    # Fresh ids: the database outlives the examples, and hypothesis repeats uuids freely.
    batch = [event.model_copy(update={"event_id": uuid4()}) for event in batch]
    assert storage.insert_events(batch) == len(batch)
    for event in batch:
        assert storage.get_event(event.instance_id, event.event_id) == event


def test_resent_batch_is_stored_once(storage: Storage) -> None:
    batch = [make_event(), make_event(), make_event()]
    assert storage.insert_events(batch) == 3
    assert storage.insert_events(batch) == 0
    assert storage.count_events() == 3


def test_same_event_id_from_another_instance_is_another_event(storage: Storage) -> None:
    event = make_event()
    twin = event.model_copy(update={"instance_id": OTHER_INSTANCE, "model": "other"})
    assert storage.insert_events([event]) == 1
    assert storage.insert_events([twin]) == 1
    assert storage.get_event(INSTANCE, event.event_id) == event
    assert storage.get_event(OTHER_INSTANCE, event.event_id) == twin


def test_duplicate_within_one_batch_is_stored_once(storage: Storage) -> None:
    event = make_event()
    changed = event.model_copy(update={"model": "second-copy"})
    assert storage.insert_events([event, changed, make_event()]) == 2
    # The first copy wins; a resend never overwrites what is stored.
    assert storage.get_event(INSTANCE, event.event_id) == event


def test_empty_batch_stores_nothing_and_bumps_nothing(storage: Storage) -> None:
    assert storage.insert_events([]) == 0
    assert storage.partition_versions() == {}


def test_oversized_batch_is_refused_before_touching_the_database(storage: Storage) -> None:
    event = make_event()
    with pytest.raises(ValueError, match="at most"):
        storage.insert_events([event] * (MAX_EVENTS_PER_INSERT + 1))
    assert storage.count_events() == 0


def test_concurrent_identical_batches_are_stored_once(storage: Storage) -> None:
    batch = [make_event(task_type=TaskType.TESTING) for _ in range(50)]
    stored = run_together(4, lambda _: storage.insert_events(batch))
    assert sorted(stored) == [0, 0, 0, 50]
    assert storage.count_events() == 50
    assert storage.partition_versions() == {"testing": 1}


def test_concurrent_overlapping_batches_lose_and_double_nothing(storage: Storage) -> None:
    events = [make_event(task_type=task_type) for task_type in TaskType for _ in range(6)]
    # Each thread sends a different, overlapping slice in a different order.
    slices = [events[i * 10 : i * 10 + 30][:: 1 if i % 2 else -1] for i in range(4)]
    stored = run_together(4, lambda i: storage.insert_events(slices[i]))
    expected = len({e.event_id for piece in slices for e in piece})
    assert sum(stored) == expected
    assert storage.count_events() == expected


def test_partition_version_bumps_only_for_task_types_with_new_rows(storage: Storage) -> None:
    testing = make_event(task_type=TaskType.TESTING)
    planning = make_event(task_type=TaskType.PLANNING)
    storage.insert_events([testing, planning])
    assert storage.partition_versions() == {"testing": 1, "planning": 1}

    storage.insert_events([testing, planning])  # a pure resend
    assert storage.partition_versions() == {"testing": 1, "planning": 1}

    storage.insert_events([testing, make_event(task_type=TaskType.PLANNING)])
    assert storage.partition_versions() == {"testing": 1, "planning": 2}

    # One batch is one bump per task type, however many rows it adds.
    storage.insert_events([make_event(task_type=TaskType.TESTING) for _ in range(5)])
    assert storage.partition_versions() == {"testing": 2, "planning": 2}


def test_read_partition_returns_the_documented_columns(storage: Storage) -> None:
    event = make_event(task_type=TaskType.DEBUGGING, quality_gate_passed=False)
    storage.insert_events([event, make_event(task_type=TaskType.TESTING)])
    snapshot = storage.read_partition("debugging")
    assert snapshot == PartitionSnapshot(
        task_type="debugging",
        version=1,
        rows=[
            (
                "claude-sonnet-4-5",
                "anthropic",
                "medium",
                1200,
                450,
                9500,
                120_000,
                1000,
                500,
                False,
                "success",
            )
        ],
    )
    assert type(snapshot.rows[0][9]) is bool


def test_read_partition_of_unknown_task_type_is_empty_at_version_zero(storage: Storage) -> None:
    assert storage.read_partition("security_audit") == PartitionSnapshot("security_audit", 0, [])


def test_read_partition_sees_version_and_rows_from_one_snapshot(storage: Storage) -> None:
    # Each batch adds 4 rows and one version: a snapshot torn between the two reads would
    # show a row count that is not 4 x version.
    done = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(25):
                batch = [make_event(task_type=TaskType.REFACTORING) for _ in range(4)]
                storage.insert_events(batch)
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    reads = 0
    while not done.is_set() or reads == 0:
        snapshot = storage.read_partition("refactoring")
        assert len(snapshot.rows) == 4 * snapshot.version
        reads += 1
    writer.join(30)
    assert not failures
    final = storage.read_partition("refactoring")
    assert (final.version, len(final.rows)) == (25, 100)


def test_read_partition_values_match_inserted_events(storage: Storage) -> None:
    batch = [
        make_event(
            task_type=TaskType.CODE_REVIEW,
            actual_input_tokens=i,
            outcome=Outcome.FAILURE if i % 2 else Outcome.SUCCESS,
        )
        for i in range(10)
    ]
    storage.insert_events(batch)
    rows = storage.read_partition("code_review").rows
    assert sorted((row[3], row[10]) for row in rows) == [
        (i, "failure" if i % 2 else "success") for i in range(10)
    ]
