"""Token percentiles from mergeable logarithmic histograms (DDSketch's mapping).

A token count `x > 0` falls in bucket `ceil(ln(x) / ln(gamma))` with `gamma = (1 + a) / (1 - a)`
and `a = 1%`; zero falls in bucket -1. Every value of bucket `i` is within 1% of the bucket's
representative `2 * gamma**i / (gamma + 1)`, so a quantile read from the counts is within 1% of
an event's real value. Histograms merge by adding counts: the database keeps a row per day,
instance, model and bucket (migration 0006) and sums the days of a range in SQL, never
rescanning events.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["LN_GAMMA", "RELATIVE_ACCURACY", "bucket_of", "bucket_value", "quantile"]

RELATIVE_ACCURACY = 0.01
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
# PostgreSQL buckets in SQL with this very number (storage/postgres.py); SQLite calls bucket_of.
LN_GAMMA = 0.020000666706669435
_ZERO = -1


def bucket_of(tokens: int) -> int:
    """The bucket of a token count (what the database computes on insert)."""
    if tokens <= 0:
        return _ZERO
    return math.ceil(math.log(tokens) / LN_GAMMA)


def bucket_value(bucket: int) -> int:
    """The representative token count of a bucket, rounded (exact below 50 tokens)."""
    if bucket <= _ZERO:
        return 0
    return round(2 * _GAMMA**bucket / (_GAMMA + 1))


def quantile(counts: Mapping[int, int], q: float) -> int:
    """The `q` quantile (0..1) of a histogram: the value at rank `q * (n - 1)`, lower rank.

    0 for an empty histogram.
    """
    total = sum(counts.values())
    if total <= 0:
        return 0
    rank = q * (total - 1)
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen > rank:
            return bucket_value(bucket)
    return bucket_value(max(counts))  # unreachable but for float rounding of the rank
