"""Open OTLP tasks in storage: summed once per call, closed once, bounded, forgotten in time."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace

import pytest
from _storage_helpers import run_together

from mosaicstack_telemetry_server.otlp.closer import REMEMBER_SECONDS, TaskCloser
from mosaicstack_telemetry_server.otlp.receive import close_tasks
from mosaicstack_telemetry_server.otlp.tasks import to_event
from mosaicstack_telemetry_server.storage import Storage, open_storage
from mosaicstack_telemetry_server.storage._otlp_base import (
    CLAIM_STALE_SECONDS,
    OtlpCall,
    OtlpPrompt,
)
from mosaicstack_telemetry_server.storage.base import StorageError

NOW = 1_800_000_000.0
T0 = int(NOW * 1e9)


def _call(
    call_id: str, session: str = "claude_code:s", prompt: str | None = "p", **kw: object
) -> OtlpCall:
    base = OtlpCall(
        call_id=call_id,
        session_key=session,
        prompt=prompt,
        harness="claude_code",
        model="claude-sonnet-4-5",
        task_type="unknown",
        complexity="medium",
        project=None,
        branch=None,
        user=None,
        input_tokens=100,
        output_tokens=10,
        cache_read_tokens=50,
        cache_write_tokens=5,
        reasoning_tokens=0,
        cost_usd_micros=1_000,
        failed=False,
        start_ns=T0,
        end_ns=T0 + 1_000_000_000,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _events(storage: Storage, instance: uuid.UUID) -> list[object]:
    return storage.export_events(instance_id=instance, start=None, end=None, after=0, limit=100)


def test_a_call_sent_twice_is_summed_once(storage: Storage) -> None:
    instance = uuid.uuid4()
    first = storage.otlp_record(instance, [_call("a"), _call("b")], NOW, 10)
    again = storage.otlp_record(instance, [_call("a"), _call("b"), _call("c")], NOW, 10)
    assert (first.used, again.used, again.duplicates) == (2, 1, 2)
    (task,) = storage.otlp_claim_idle(NOW + 1, NOW + 1, 10)
    assert (task.calls, task.input_tokens, task.cost_usd_micros) == (3, 300, 3_000)
    # Another instance's call of the same identity is its own.
    assert storage.otlp_record(uuid.uuid4(), [_call("a")], NOW, 10).used == 1


def test_a_prompt_closes_the_earlier_prompts_tasks_of_its_session(storage: Storage) -> None:
    instance = uuid.uuid4()
    items = [
        _call("a", prompt=None),
        _call("b", session="claude_code:other", prompt=None),
        OtlpPrompt("claude_code:s", "t2", T0 + 5_000_000_000),
        _call("c", prompt=None, start_ns=T0 + 6_000_000_000, end_ns=T0 + 7_000_000_000),
    ]
    done = storage.otlp_record(instance, items, NOW, 10)
    assert done.closed is not None
    assert [task.task_key for task in done.closed] == ["claude_code:s#"]
    assert storage.otlp_open_tasks(instance) == 3  # the claimed one stays until forgotten
    assert close_tasks(storage, done.closed) == 1
    assert storage.otlp_open_tasks(instance) == 2
    (task,) = storage.otlp_claim_idle(NOW + 1, NOW + 1, 1)  # the oldest first: either one
    assert task.task_key in ("claude_code:s#t2", "claude_code:other#")


def test_no_room_refuses_new_tasks_and_a_resend_may_be_used_later(storage: Storage) -> None:
    instance = uuid.uuid4()
    done = storage.otlp_record(
        instance, [_call("a", prompt="1"), _call("b", prompt="1"), _call("c", prompt="2")], NOW, 1
    )
    assert (done.used, done.refused) == (2, 1)
    close_tasks(storage, storage.otlp_claim_idle(NOW + 1, NOW + 1, 10))
    assert storage.otlp_record(instance, [_call("c", prompt="2")], NOW, 1).used == 1


def test_a_call_for_a_task_being_closed_is_refused(storage: Storage) -> None:
    instance = uuid.uuid4()
    storage.otlp_record(instance, [_call("a")], NOW, 10)
    assert len(storage.otlp_claim_idle(NOW + 1, NOW + 1, 10)) == 1
    done = storage.otlp_record(instance, [_call("b")], NOW + 2, 10)
    assert (done.used, done.refused) == (0, 1)


def test_each_idle_task_is_claimed_by_exactly_one_of_several_processes(
    storage: Storage, database_url: str
) -> None:
    instance = uuid.uuid4()
    calls = [_call(f"c{n}", prompt=str(n)) for n in range(200)]
    storage.otlp_record(instance, calls, NOW, 1_000)
    others = [open_storage(database_url) for _ in range(3)]
    try:
        stores = [storage, *others]
        claimed = run_together(4, lambda n: stores[n].otlp_claim_idle(NOW + 1, NOW + 1, 1_000))
    finally:
        for other in others:
            other.close()
    keys = [task.task_key for batch in claimed for task in batch]
    assert sorted(keys) == sorted(f"claude_code:s#{n}" for n in range(200))


def test_a_stale_claim_is_taken_over_and_its_event_stored_once(storage: Storage) -> None:
    instance = uuid.uuid4()
    storage.otlp_record(instance, [_call("a")], NOW, 10)
    (first,) = storage.otlp_claim_idle(NOW + 1, NOW + 1, 10)
    storage.insert_events([to_event(first)])
    # The process that claimed it stopped before forgetting it; later another takes over.
    assert storage.otlp_claim_idle(NOW + 2, NOW + 2, 10) == []
    later = NOW + 2 + CLAIM_STALE_SECONDS
    (again,) = storage.otlp_claim_idle(later, later, 10)
    assert again == first
    close_tasks(storage, [again])
    assert len(_events(storage, instance)) == 1
    assert storage.otlp_open_tasks() == 0


def test_call_identities_are_forgotten_after_a_day(storage: Storage) -> None:
    instance = uuid.uuid4()
    storage.otlp_record(instance, [_call("a"), OtlpPrompt("claude_code:s", "x", T0)], NOW, 10)
    assert storage.otlp_prune(NOW - 1) == 0
    assert storage.otlp_prune(NOW + 1) == 2


def test_the_closer_closes_idle_tasks_and_survives_a_storage_failure(
    storage: Storage, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    instance = uuid.uuid4()
    storage.otlp_record(instance, [_call("a"), _call("b", prompt="q")], NOW, 10)
    clock = [NOW + 10]
    closer = TaskCloser(storage, 60, clock=lambda: clock[0])
    seen: list[int] = []
    closer.on_closed = seen.append
    assert closer.run_once() == 0
    clock[0] = NOW + 61
    assert closer.run_once() == 2
    assert seen == [2]
    assert len(_events(storage, instance)) == 2
    broken = open_storage(database_url)
    broken.close()
    failing = TaskCloser(broken, 60, clock=lambda: NOW + REMEMBER_SECONDS)
    with caplog.at_level(logging.DEBUG, logger="mosaicstack_telemetry_server"):
        assert failing.run_once() is None
        assert failing.run_once() is None
    assert [r.levelname for r in caplog.records if "otlp" in r.getMessage()] == ["ERROR", "DEBUG"]


def test_the_closer_waits_quietly_while_storage_is_not_ready(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    def not_ready() -> None:
        raise StorageError("storage not ready (migration pending)")

    with caplog.at_level(logging.INFO, logger="mosaicstack_telemetry_server"):
        assert TaskCloser(storage, 60, ready=not_ready).run_once() is None
    assert caplog.records == []  # the runtime tells the outage, once


def test_the_closer_thread_starts_and_stops(storage: Storage) -> None:
    closer = TaskCloser(storage, 0.2)
    closer.start()
    closer.start()  # already running: no second thread
    assert closer.stop(5)
    assert closer.stop(5)  # stopped already
