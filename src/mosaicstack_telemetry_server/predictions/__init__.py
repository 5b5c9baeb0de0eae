"""Predictions: per-group statistics of stored events and the contract's fallback chain.

`levels` names the fallback levels once; `buckets` and `sketch` summarize events per group
and day (exact while few, mergeable sketches always), `incremental` folds new events into
them, `recency` picks the days an answer stands on, `served` merges them into every group's
statistics and `widening` calibrates levels 1-3; `fallback` chooses and words the answer
(pure), `service` serves answers and keeps them fresh. `statistics` is the full reference
computation from every event.
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
