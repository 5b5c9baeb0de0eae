"""Fetching predictions into the cache: one plan, run by `refresh_predictions[_sync]`."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from mosaicstack_telemetry._logs import logger
from mosaicstack_telemetry._plans import PREDICTIONS_PATH, Plan, send
from mosaicstack_telemetry._reply import log_reply_failure
from mosaicstack_telemetry._settings import Settings
from mosaicstack_telemetry.cache import PredictionCache
from mosaicstack_telemetry.models.batch import (
    MAX_BATCH_SIZE,
    BatchPredictionRequest,
    BatchPredictionResponse,
)
from mosaicstack_telemetry.models.predictions import PredictionQuery

__all__ = ["MAX_QUERIES_PER_REFRESH", "refresh"]

# A refresh is a foreground call: keep one call to at most this many requests' worth of queries.
MAX_QUERIES_PER_REFRESH = 10 * MAX_BATCH_SIZE


def refresh(
    queries: Sequence[PredictionQuery], cache: PredictionCache, settings: Settings
) -> Plan[None]:
    """Plan: ask for `queries` in chunks of at most 100 and cache every answer.

    The first failure ends the refresh with one WARNING: the server is unlikely to do better for
    the next chunk, and the caller is waiting.
    """
    if len(queries) > MAX_QUERIES_PER_REFRESH:
        logger.warning(
            "refresh asked for %d predictions; only the first %d are fetched",
            len(queries),
            MAX_QUERIES_PER_REFRESH,
        )
        queries = queries[:MAX_QUERIES_PER_REFRESH]
    for start in range(0, len(queries), MAX_BATCH_SIZE):
        chunk = list(queries[start : start + MAX_BATCH_SIZE])
        body = BatchPredictionRequest(queries=chunk).model_dump_json().encode()
        reply = yield from send(PREDICTIONS_PATH, body)
        if reply.status != 200:
            log_reply_failure("could not refresh predictions", reply, settings.api_key)
            return
        try:
            answer = BatchPredictionResponse.model_validate_json(reply.body)
        except ValidationError:
            logger.warning("could not refresh predictions (unreadable response)")
            return
        if len(answer.results) != len(chunk):
            logger.warning(
                "could not refresh predictions (%d answers to %d queries)",
                len(answer.results),
                len(chunk),
            )
            return
        for query, response in zip(chunk, answer.results, strict=True):
            cache.put(query, response)
    logger.debug("refreshed %d predictions", len(queries))
