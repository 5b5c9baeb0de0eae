"""Statistics published while a backlog is drained, on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime

import pytest
from _api_helpers import wait_until
from _prediction_events import TASK, TASK_WIDE, event, query
from _usage_helpers import execute

from mosaicstack_telemetry import TaskType
from mosaicstack_telemetry_server.predictions.drain_process import drain
from mosaicstack_telemetry_server.predictions.group_bases import GroupBases
from mosaicstack_telemetry_server.predictions.incremental import catch_up
from mosaicstack_telemetry_server.predictions.partial import (
    PARTIAL_OFFSET,
    PartialPublisher,
    publish_partial,
)
from mosaicstack_telemetry_server.predictions.recency import Recency
from mosaicstack_telemetry_server.predictions.service import REQUEST_MAX_EVENTS, PredictionService
from mosaicstack_telemetry_server.storage import Storage
from mosaicstack_telemetry_server.storage.base import WILDCARD, StatsKey

ALL_DAYS = Recency(window_days=0)


def now() -> datetime:
    return datetime.now(UTC)


def insert(storage: Storage, count: int, *, seed: int = 1) -> None:
    rng = random.Random(seed)
    storage.insert_events([event(rng, day=rng.randrange(5)) for _ in range(count)])


def served_size(storage: Storage) -> int:
    return storage.get_stats([TASK_WIDE])[TASK_WIDE].sample_size


def test_a_drain_publishes_what_it_has_folded_and_the_service_then_completes_it(
    storage: Storage, database_url: str
) -> None:
    insert(storage, 3_000)
    assert storage.stats_versions() == {}
    folded = drain(database_url, chunk=1_000, recency=ALL_DAYS, publish_every=0.0)
    assert folded == 3_000
    # Published after the first two chunks (the last one is the server's to rebuild), under
    # the cursor generation of then, below every data version.
    version, _ = storage.stats_versions()[TASK.value]
    assert version == storage.event_cursor().generation - 1 - PARTIAL_OFFSET
    assert version < 0
    assert served_size(storage) == 2_000
    service = PredictionService(
        storage, min_sample_size=1, stats_max_age_seconds=300, recency=ALL_DAYS
    )
    [answer] = service.predict_batch([query()])
    assert answer.metadata.sample_size == 3_000
    assert answer.metadata.cache_hit is False  # partial statistics are never fresh
    assert storage.stats_versions()[TASK.value][0] >= 1
    assert "backlog" not in (answer.metadata.fallback_note or "")


def test_publications_only_move_forward_and_never_replace_complete_statistics(
    storage: Storage,
) -> None:
    insert(storage, 400)
    service = PredictionService(
        storage, min_sample_size=1, stats_max_age_seconds=300, recency=ALL_DAYS
    )
    service.predict_batch([query()])
    complete = storage.stats_versions()[TASK.value]
    # A bulk load: more of the same task type, and a task type never seen.
    rng = random.Random(2)
    others = [event(rng).model_copy(update={"task_type": TaskType.TESTING}) for _ in range(300)]
    insert(storage, 300, seed=3)
    storage.insert_events(others)
    catch_up(storage, now, chunk=450, max_events=450)
    bases = GroupBases()
    testing_wide = StatsKey(3, TaskType.TESTING.value, WILDCARD, WILDCARD, WILDCARD)
    assert publish_partial(storage, ALL_DAYS, now(), bases=bases) == [TaskType.TESTING.value]
    assert storage.stats_versions()[TASK.value] == complete  # whole, if older: kept
    first = storage.stats_versions()[TaskType.TESTING.value][0]
    assert first < 0
    assert storage.get_stats([testing_wide])[testing_wide].sample_size == 150
    # Nothing folded since: the same version again is not a step forward.
    assert publish_partial(storage, ALL_DAYS, now(), bases=bases) == []
    catch_up(storage, now, chunk=100, max_events=100)
    assert publish_partial(storage, ALL_DAYS, now(), bases=bases) == [TaskType.TESTING.value]
    assert first < storage.stats_versions()[TaskType.TESTING.value][0] < 0
    assert storage.get_stats([testing_wide])[testing_wide].sample_size == 250


def test_a_request_during_a_drain_answers_from_the_published_statistics_and_says_so(
    storage: Storage,
) -> None:
    insert(storage, REQUEST_MAX_EVENTS + 1_000)
    catch_up(storage, now, chunk=500, max_events=500)
    publish_partial(storage, ALL_DAYS, now(), bases=GroupBases())
    service = PredictionService(
        storage, min_sample_size=1, stats_max_age_seconds=300, recency=ALL_DAYS
    )
    [answer] = service.predict_batch([query()])
    # The request leaves the backlog to the drain it starts and answers with numbers at once:
    # those published, saying a backlog is being summarized (or, if the drain thread was
    # quicker than this request, the whole ones).
    assert answer.prediction is not None
    whole = answer.metadata.sample_size == REQUEST_MAX_EVENTS + 1_000
    assert whole or "backlog" in (answer.metadata.fallback_note or "")
    assert answer.metadata.sample_size >= 500

    def drained() -> bool:
        [later] = service.predict_batch([query()])
        return "backlog" not in (later.metadata.fallback_note or "")

    wait_until(drained, 60.0, "the drain thread to fold the backlog")
    assert served_size(storage) == REQUEST_MAX_EVENTS + 1_000


def test_a_publisher_publishes_at_once_then_once_per_period(
    storage: Storage,
) -> None:
    insert(storage, 200)
    catch_up(storage, now, chunk=100, max_events=100)
    publisher = PartialPublisher(storage, ALL_DAYS, now, every=3_600.0)
    assert publisher.between_chunks() == [TASK.value]
    catch_up(storage, now, chunk=100, max_events=100)
    assert publisher.between_chunks() == []  # not due for an hour
    assert served_size(storage) == 100
    eager = PartialPublisher(storage, ALL_DAYS, now, every=0.0)
    assert eager.between_chunks() == [TASK.value]
    assert served_size(storage) == 200
    assert storage.stats_versions()[TASK.value][0] < 0


def test_a_failing_publication_is_logged_once_and_the_drain_goes_on(
    storage: Storage, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    insert(storage, 3_000)
    # Statistics cannot be stored (a broken database, say): folding still can.
    execute(database_url, "DROP TABLE prediction_stats")
    with caplog.at_level(logging.WARNING):
        assert drain(database_url, chunk=1_000, recency=ALL_DAYS, publish_every=0.0) == 3_000
    failures = [r for r in caplog.records if "publishing partial" in r.getMessage()]
    assert len(failures) == 1  # one traceback a drain, not one a chunk
    assert failures[0].exc_info is not None
    assert sum(size for _, size in storage.bucket_sizes(TASK.value)) == 3_000
