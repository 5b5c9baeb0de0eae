"""This process's answers by query, valid while their task type's statistics stamp holds.

A warm request of 100 queries spent most of its time building the same answers again:
validating each group's stored statistics into `PredictionData` and the metadata around
it. An answer depends only on the query, the statistics of its task type (their data
version and time: the stamp every request reads anyway), whether this request refreshed
them (`cache_hit`) and whether a backlog is being summarized. So answers are kept under that
key, and a query whose key has not moved is answered without building anything.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from datetime import datetime
from typing import Final

from mosaicstack_telemetry import PredictionQuery, PredictionResponse

__all__ = ["MAX_ANSWERS", "AnswerCache", "AnswerKey", "answer_key"]

# Most answers kept: about 8 KB each as Python objects, so at most about 35 MB; 40 batches of
# 100 distinct queries. Past it the cache is dropped and refilled.
MAX_ANSWERS: Final = 4_000

AnswerKey = tuple[Hashable, ...]


def answer_key(
    query: PredictionQuery,
    stamp: tuple[int, datetime] | None,
    *,
    cache_hit: bool,
    catching_up: bool,
) -> AnswerKey:
    """What an answer depends on, besides the server's fixed settings."""
    return (
        query.task_type,
        query.model,
        query.provider,
        query.complexity,
        stamp,
        cache_hit,
        catching_up,
    )


class AnswerCache:
    """Answers by `answer_key`, at most `max_answers` of them."""

    def __init__(self, max_answers: int = MAX_ANSWERS) -> None:
        self._max = max_answers
        self._answers: dict[AnswerKey, PredictionResponse] = {}
        self._lock = threading.Lock()

    def get(self, key: AnswerKey) -> PredictionResponse | None:
        """The answer kept under `key`, if any."""
        return self._answers.get(key)

    def put(self, key: AnswerKey, answer: PredictionResponse) -> None:
        """Keep an answer (dropping every other one first if the cache is full)."""
        with self._lock:
            if len(self._answers) >= self._max:
                self._answers.clear()
            self._answers[key] = answer
