"""One project's token percentiles per model, exact, from a bounded sample of its events.

The token histograms of the rollups (`_rollups.py`) are kept per model, not per project, so a
project's token ranges are read from the events: for each model, the project's `per_model`
most recent events in the range (by timestamp, then id), and the p10, p50 and p90 of their
input and of their output tokens, by linear interpolation between the closest ranks
(PostgreSQL's `percentile_cont`, numpy's default). What is read is bounded by `per_model`
events per model; finding them reads the project's events of the range through the time index
(no index holds the project).

PostgreSQL computes the percentiles in SQL (`Dialect.percentile_cont`); SQLite has no such
aggregate, so the sample itself is fetched and interpolated here. Every value is a bound
parameter; the SQL holds only fixed names and the quantiles below.
"""

# Identifiers come only from fixed names and the Dialect constants; values are bound.
# ruff: noqa: S608

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import groupby
from typing import Any
from uuid import UUID

from mosaicstack_telemetry_server.storage._usage_sql import Dialect, time_range
from mosaicstack_telemetry_server.storage.base import TokenPercentileRow

__all__ = ["QUANTILES", "interpolated", "project_token_percentiles"]

# p10, p50 and p90: the dashboard's token ranges and their median.
QUANTILES = (0.1, 0.5, 0.9)


def _sample_sql(
    dialect: Dialect,
    convert: Callable[[Any], Any],
    instance_id: UUID | None,
    span: tuple[datetime, datetime],
    project: str,
    per_model: int,
) -> tuple[str, list[Any]]:
    """The sample: model and tokens of each model's `per_model` most recent events of the
    project in the range `span`."""
    p = dialect.placeholder
    where, params = time_range(dialect, *span, convert)
    where += f" AND project = {p}"
    params.append(project)
    if instance_id is not None:
        where += f" AND {dialect.instance_filter} = {p}"
        params.append(convert(instance_id))
    ranked = (
        "SELECT model, actual_input_tokens AS input_tokens, "  # nosec B608
        "actual_output_tokens AS output_tokens, "
        "row_number() OVER (PARTITION BY model ORDER BY timestamp DESC, id DESC) AS recency "
        f"FROM events WHERE {where}"
    )
    sample = "SELECT model, input_tokens, output_tokens "  # nosec B608
    sample += f"FROM ({ranked}) AS ranked WHERE recency <= {p}"
    return sample, [*params, per_model]


def interpolated(ordered: Sequence[int], quantile: float) -> float:
    """The `quantile` of sorted values, between the closest ranks (as `percentile_cont`)."""
    position = (len(ordered) - 1) * quantile
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    low, high = ordered[below], ordered[above]
    return low + (high - low) * (position - below)


def _percentiles(values: Sequence[int]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p10, p50, p90 = (interpolated(ordered, q) for q in QUANTILES)
    return p10, p50, p90


def _in_python(rows: Sequence[Sequence[Any]]) -> list[TokenPercentileRow]:
    """The percentiles of a fetched sample, its rows grouped by model."""
    found = []
    for model, group in groupby(rows, key=lambda row: str(row[0])):
        sample = list(group)
        found.append(
            TokenPercentileRow(
                model=model,
                events=len(sample),
                input_tokens=_percentiles([int(row[1]) for row in sample]),
                output_tokens=_percentiles([int(row[2]) for row in sample]),
            )
        )
    return found


def project_token_percentiles(
    dialect: Dialect,
    convert: Callable[[Any], Any],
    read: Callable[[str, Sequence[Any]], list[Any]],
    *,
    instance_id: UUID | None,
    start: datetime,
    end: datetime,
    project: str,
    per_model: int,
) -> list[TokenPercentileRow]:
    """Per model (by name), the percentiles of the project's sample (`read` runs a query)."""
    if per_model < 1:
        raise ValueError("per_model must be at least 1")
    sample, params = _sample_sql(dialect, convert, instance_id, (start, end), project, per_model)
    if dialect.percentile_cont is None:
        return _in_python(read(f"{sample} ORDER BY model", params))
    aggregates = ", ".join(
        dialect.percentile_cont.format(quantiles=", ".join(map(str, QUANTILES)), column=column)
        for column in ("input_tokens", "output_tokens")
    )
    rows = read(
        f"SELECT model, count(*), {aggregates} FROM ({sample}) AS sample "  # nosec B608
        "GROUP BY model ORDER BY model",
        params,
    )
    return [
        TokenPercentileRow(str(model), int(events), _three(inputs), _three(outputs))
        for model, events, inputs, outputs in rows
    ]


def _three(values: Sequence[float]) -> tuple[float, float, float]:
    p10, p50, p90 = (float(value) for value in values)
    return p10, p50, p90
