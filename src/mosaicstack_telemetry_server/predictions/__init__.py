"""Predictions: per-group statistics of stored events and the contract's fallback chain."""

from mosaicstack_telemetry_server.predictions.fallback import (
    build_response,
    chain_keys,
    confidence_for,
)
from mosaicstack_telemetry_server.predictions.statistics import compute_partition_stats

__all__ = [
    "build_response",
    "chain_keys",
    "compute_partition_stats",
    "confidence_for",
]
