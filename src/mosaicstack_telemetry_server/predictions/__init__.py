"""Predictions: per-group statistics of stored events and the contract's fallback chain.

`statistics` computes (pure numpy), `fallback` chooses and words the answer (pure),
`service` serves answers from statistics stored in the database and keeps them fresh.
"""

from mosaicstack_telemetry_server.predictions.fallback import (
    build_response,
    chain_keys,
    confidence_for,
)
from mosaicstack_telemetry_server.predictions.service import (
    MAX_QUERIES_PER_BATCH,
    Clock,
    PredictionService,
)
from mosaicstack_telemetry_server.predictions.statistics import compute_partition_stats

__all__ = [
    "MAX_QUERIES_PER_BATCH",
    "Clock",
    "PredictionService",
    "build_response",
    "chain_keys",
    "compute_partition_stats",
    "confidence_for",
]
