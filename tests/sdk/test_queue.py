"""EventQueue invariants, checked against a plain-list model by a hypothesis state machine."""

from __future__ import annotations

import threading

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mosaicstack_telemetry import EventQueue, TaskCompletionEvent

from .conftest import make_event

_POOL = [make_event() for _ in range(64)]


class QueueMachine(RuleBasedStateMachine):
    """Every operation is mirrored on a list; the queue must always agree with it."""

    @initialize(
        max_size=st.integers(min_value=1, max_value=8),
        keep=st.integers(min_value=0, max_value=5),
    )
    def create(self, max_size: int, keep: int) -> None:
        self.queue = EventQueue(max_size, keep_evicted=keep)
        self.model: list[TaskCompletionEvent] = []
        self.max_size = max_size
        self.keep = keep
        self.kept: list[TaskCompletionEvent] = []  # evicted, kept aside for the spool
        self.dropped = 0
        self.dropped_total = 0
        self.evictions = 0  # kept aside or dropped: what makes the submitter try sooner
        self.added = 0
        self.next = 0

    def _evict(self, event: TaskCompletionEvent) -> None:
        self.evictions += 1
        if len(self.kept) < self.keep:
            self.kept.append(event)
        else:
            self.dropped += 1
            self.dropped_total += 1

    def _fresh(self) -> TaskCompletionEvent:
        event = _POOL[self.next % len(_POOL)].model_copy()
        self.next += 1
        return event

    @rule()
    def put(self) -> None:
        event = self._fresh()
        self.queue.put(event)
        self.added += 1
        self.model.append(event)
        if len(self.model) > self.max_size:
            self._evict(self.model.pop(0))  # the oldest is evicted

    @rule(n=st.integers(min_value=-2, max_value=10))
    def drain(self, n: int) -> None:
        taken = self.queue.drain(n)
        assert len(taken) <= max(n, 0)
        expected, self.model = self.model[: max(n, 0)], self.model[max(n, 0) :]
        assert taken == expected  # FIFO: oldest first

    @rule(count=st.integers(min_value=0, max_value=10))
    def put_back(self, count: int) -> None:
        events = [self._fresh() for _ in range(count)]
        self.queue.put_back(events)
        room = self.max_size - len(self.model)
        cut = len(events) - room if room < len(events) else 0
        for event in events[:cut]:
            self._evict(event)
        self.model = events[cut:] + self.model  # at the front, in their order

    @precondition(lambda self: hasattr(self, "queue"))
    @rule()
    def take_dropped(self) -> None:
        assert self.queue.take_dropped() == self.dropped
        self.dropped = 0

    @precondition(lambda self: hasattr(self, "queue"))
    @rule()
    def take_evicted(self) -> None:
        assert self.queue.take_evicted() == self.kept  # oldest first
        self.kept = []

    @invariant()
    def agrees_with_the_model(self) -> None:
        if hasattr(self, "queue"):
            assert self.queue.size == len(self.model) <= self.max_size
            assert self.queue.is_empty == (not self.model)
            assert self.queue.evicted_kept == len(self.kept) <= self.keep
            assert self.queue.evicted_total == self.dropped_total
            assert self.queue.evictions == self.evictions
            assert self.queue.added == self.added


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_size"):
        EventQueue(0)


def test_default_capacity_and_clear() -> None:
    queue = EventQueue()
    assert queue.max_size == 1000
    queue.put(make_event())
    queue.clear()
    assert queue.is_empty
    assert queue.take_dropped() == 0


def test_concurrent_puts_and_drains_lose_nothing() -> None:
    queue = EventQueue(100_000)
    events = [[make_event() for _ in range(500)] for _ in range(4)]
    drained: list[TaskCompletionEvent] = []
    done = threading.Event()

    def consume() -> None:
        while not done.is_set() or not queue.is_empty:
            drained.extend(queue.drain(7))

    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [threading.Thread(target=lambda es=es: [queue.put(e) for e in es]) for es in events]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join()
    done.set()
    consumer.join()
    assert sorted(str(e.event_id) for e in drained) == sorted(
        str(e.event_id) for es in events for e in es
    )


def test_concurrent_puts_each_learn_their_own_resulting_size() -> None:
    # The client wakes the submitter from this size: read outside the lock, two racing puts
    # could both see the later size and the threshold would be skipped.
    queue = EventQueue(max_size=100_000)
    event = make_event()
    sizes: list[list[int]] = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def work(seen: list[int]) -> None:
        barrier.wait()
        for _ in range(1000):
            seen.append(queue.offer(event))

    threads = [threading.Thread(target=work, args=(seen,)) for seen in sizes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(size for seen in sizes for size in seen) == list(range(1, 8001))
