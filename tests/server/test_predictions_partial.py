"""Statistics published while a backlog is drained, on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from _api_helpers import wait_until
from _prediction_events import TASK, TASK_WIDE, event, query

from mosaicstack_telemetry import TaskType
from mosaicstack_telemetry_server.predictions.drain_process import drain
from mosaicstack_telemetry_server.predictions.group_bases import GroupBases
from mosaicstack_telemetry_server.predictions.incremental import catch_up
from mosaicstack_telemetry_server.predictions.partial import PartialPublisher, publish_partial
from mosaicstack_telemetry_server.predictions.recency import Recency
from mosaicstack_telemetry_server.predictions.service import REQUEST_MAX_EVENTS, PredictionService
from mosaicstack_telemetry_server.storage import Storage

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
    # Published after the first two chunks; the last one is the server's to rebuild.
    version, _ = storage.stats_versions()[TASK.value]
    assert version == -1_000  # minus the events still to fold at the last publication
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
    assert publish_partial(storage, ALL_DAYS, now(), bases=bases) == [TaskType.TESTING.value]
    assert storage.stats_versions()[TASK.value] == complete  # whole, if older: kept
    testing = storage.stats_versions()[TaskType.TESTING.value][0]
    assert testing == -150
    # Nothing folded since: the same version again is not a step forward.
    assert publish_partial(storage, ALL_DAYS, now(), bases=bases) == []
    catch_up(storage, now, chunk=100, max_events=100)
    assert publish_partial(storage, ALL_DAYS, now(), bases=bases) == [TaskType.TESTING.value]
    assert storage.stats_versions()[TaskType.TESTING.value][0] == -50


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
    # The request leaves the backlog to the drain it starts: it answers with numbers at once
    # (those published, or the drain's own if it finished first), saying a backlog is summarized.
    assert answer.prediction is not None
    assert answer.metadata.sample_size >= 500
    assert "backlog" in (answer.metadata.fallback_note or "")

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
    assert storage.stats_versions()[TASK.value][0] == -1  # nothing left: at most -1
