"""What was spent: the answer of `GET /v1/usage`, its query parameters, and token percentiles.

Sums come from the daily rollups (`storage/_rollups.py`, migration 0006) plus the events
that arrived since the background fold last ran (`usage_fold.py`), so an answer costs the same
at a thousand events as at a million. `query_usage` and
`query_token_percentiles` are what the route, the dashboard and `mosaic-telemetry report`
call; `parse_usage_query` turns the route's query string into their arguments or a contract
error (422, or 403 for what only an admin key may ask).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from mosaicstack_telemetry_server.errors import ApiError
from mosaicstack_telemetry_server.storage.base import ApiKeyRecord, Storage, UsageRow
from mosaicstack_telemetry_server.token_sketch import quantile

__all__ = [
    "ATTRIBUTION",
    "DEFAULT_SPAN",
    "GROUP_BY",
    "MAX_FILTER_LENGTH",
    "MAX_GROUP_BY",
    "MAX_SPAN",
    "ModelTokenPercentiles",
    "TokenPercentiles",
    "UsageGroup",
    "UsageQuery",
    "UsageReport",
    "UsageTotals",
    "check_group_by",
    "format_utc",
    "parse_time",
    "parse_usage_query",
    "query_token_percentiles",
    "query_usage",
]

# The contract's `group_by` names, in the contract's order.
GROUP_BY = (
    "day",
    "week",
    "month",
    "task_type",
    "complexity",
    "harness",
    "model",
    "provider",
    "outcome",
    "instance_id",
    "project",
    "branch",
    "user",
)
# Schema 1.1's attribution: `group_by` names and filters (`project=`...), each with its column
# (`user` is reserved in SQL). Events without the field group under None (JSON null).
ATTRIBUTION = {"project": "project", "branch": "branch", "user": "user_name"}
# A filter's value is an attribution's value: 1 to 200 characters, no control characters.
MAX_FILTER_LENGTH = 200
MAX_GROUP_BY = 3
DEFAULT_SPAN = timedelta(days=30)
# The longest range one request may sum: a year, leap day included.
MAX_SPAN = timedelta(days=366)
_RATE_DIGITS = 4


class UsageTotals(BaseModel):
    """Sums over a selection of events; the rates are shares of `tasks` (0.0 without tasks).
    The cache and reasoning counts are schema 1.1's, 0 for events without them."""

    tasks: int
    input_tokens: int
    output_tokens: int
    cost_usd_micros: int
    duration_ms: int
    successes: int
    success_rate: float
    gate_pass_rate: float
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int


class UsageGroup(UsageTotals):
    """The sums of one group; `key` maps each `group_by` name to the group's value (None,
    JSON null, for events without that attribution)."""

    key: dict[str, str | None]


class UsageReport(BaseModel):
    """Body of `GET /v1/usage` (dump with `by_alias=True`: the wire name of `start` is `from`)."""

    model_config = ConfigDict(populate_by_name=True)

    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    group_by: list[str]
    groups: list[UsageGroup]
    totals: UsageTotals

    @field_serializer("start", "end")
    def _utc_z(self, value: datetime) -> str:
        return format_utc(value)


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """The arguments of `query_usage`, as parsed from a request."""

    instance_id: UUID | None
    start: datetime
    end: datetime
    group_by: tuple[str, ...]
    # Attribution filters by `group_by` name (`project`, `branch`, `user`): exact values.
    filters: dict[str, str] = field(default_factory=dict)


def format_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as the contract writes instants."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Sums:
    tasks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd_micros: int = 0
    duration_ms: int = 0
    successes: int = 0
    gate_passes: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def add(self, row: UsageRow) -> None:
        self.tasks += row.tasks
        self.input_tokens += row.input_tokens
        self.output_tokens += row.output_tokens
        self.cost_usd_micros += row.cost_usd_micros
        self.duration_ms += row.duration_ms
        self.successes += row.successes
        self.gate_passes += row.gate_passes
        self.cache_read_tokens += row.cache_read_tokens
        self.cache_write_tokens += row.cache_write_tokens
        self.reasoning_tokens += row.reasoning_tokens

    def fields(self) -> dict[str, Any]:
        def share(count: int) -> float:
            return round(count / self.tasks, _RATE_DIGITS) if self.tasks else 0.0

        return {
            "tasks": self.tasks,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd_micros": self.cost_usd_micros,
            "duration_ms": self.duration_ms,
            "successes": self.successes,
            "success_rate": share(self.successes),
            "gate_pass_rate": share(self.gate_passes),
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


def _storage_dimension(name: str) -> str:
    # Weeks and months are made of days: storage sums by day, we fold the days here.
    if name in ("week", "month"):
        return "day"
    return ATTRIBUTION.get(name, name)


def _key_value(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if name == "week":
        year, week, _ = date.fromisoformat(value).isocalendar()
        return f"{year}-W{week:02d}"
    if name == "month":
        return value[:7]
    return value


def check_group_by(group_by: Sequence[str]) -> None:
    """ValueError unless `group_by` is at most 3 distinct names of `GROUP_BY`."""
    unknown = [name for name in group_by if name not in GROUP_BY]
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise ValueError(f"unknown group_by {names}; use {', '.join(GROUP_BY)}")
    if len(set(group_by)) != len(group_by):
        raise ValueError("group_by names each dimension at most once")
    if len(group_by) > MAX_GROUP_BY:
        raise ValueError(f"group_by takes at most {MAX_GROUP_BY} dimensions")


def query_usage(
    storage: Storage,
    *,
    instance_id: UUID | None,
    start: datetime,
    end: datetime,
    group_by: Sequence[str],
    filters: Mapping[str, str] | None = None,
) -> UsageReport:
    """Usage of one instance (or of all, when `instance_id` is None) over `[start, end)`, of
    the events whose attribution equals each of `filters` (`project`, `branch`, `user`).

    Groups hold only groups with tasks, sorted by their key values in `group_by` order, a
    missing attribution (None) first. ValueError for an invalid `group_by` or filter name
    (what `parse_usage_query` lets through is valid).
    """
    check_group_by(group_by)
    unknown = [name for name in filters or {} if name not in ATTRIBUTION]
    if unknown:
        raise ValueError(f"usage filters are {', '.join(ATTRIBUTION)}, not {unknown}")
    dimensions = list(dict.fromkeys(_storage_dimension(name) for name in group_by))
    rows = storage.sum_usage(
        instance_id=instance_id,
        start=start,
        end=end,
        dimensions=dimensions,
        filters={ATTRIBUTION[name]: value for name, value in (filters or {}).items()},
    )
    groups: dict[tuple[str | None, ...], _Sums] = {}
    totals = _Sums()
    for row in rows:
        values = dict(zip(dimensions, row.key, strict=True))
        key = tuple(_key_value(name, values[_storage_dimension(name)]) for name in group_by)
        groups.setdefault(key, _Sums()).add(row)
        totals.add(row)
    return UsageReport(
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
        group_by=list(group_by),
        groups=[
            UsageGroup(key=dict(zip(group_by, key, strict=True)), **groups[key].fields())
            for key in sorted(groups, key=_null_first)
        ],
        totals=UsageTotals(**totals.fields()),
    )


def _null_first(key: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    """A group's sort key: by each value, None (JSON null) before any text."""
    return tuple((value is not None, value or "") for value in key)


class TokenPercentiles(BaseModel):
    """p10, median and p90 of a token count, each within 1% of an event's real value."""

    p10: int
    p50: int
    p90: int


class ModelTokenPercentiles(BaseModel):
    """The token spread of one model's tasks over a range."""

    model: str
    tasks: int
    input_tokens: TokenPercentiles
    output_tokens: TokenPercentiles


def query_token_percentiles(
    storage: Storage, *, instance_id: UUID | None, start: datetime, end: datetime
) -> list[ModelTokenPercentiles]:
    """Per model (sorted by name), input and output token p10/p50/p90 over `[start, end)`.

    Read from the daily logarithmic histograms (`token_sketch.py`): within 1% of the event at
    each rank, whatever the number of events, and never a scan of the events table.
    """
    histograms: dict[tuple[str, str], dict[int, int]] = {}
    for row in storage.token_buckets(instance_id=instance_id, start=start, end=end):
        histograms.setdefault((row.model, row.kind), {})[row.bucket] = row.count
    models = sorted({model for model, _ in histograms})
    return [
        ModelTokenPercentiles(
            model=model,
            tasks=sum(histograms.get((model, "input"), {}).values()),
            input_tokens=_percentiles(histograms.get((model, "input"), {})),
            output_tokens=_percentiles(histograms.get((model, "output"), {})),
        )
        for model in models
    ]


def _percentiles(counts: dict[int, int]) -> TokenPercentiles:
    return TokenPercentiles(
        p10=quantile(counts, 0.1), p50=quantile(counts, 0.5), p90=quantile(counts, 0.9)
    )


def parse_time(text: str) -> datetime:
    """A `from`/`to` value: an ISO 8601 date-time with an offset, or a date (00:00 UTC).

    ValueError otherwise (a date-time without an offset is ambiguous, so refused).
    """
    text = text.strip()
    # An unencoded "+02:00" in a URL arrives as " 02:00" (form encoding): take it back.
    text = re.sub(r"(T[\d:.]+) (\d\d:?\d\d)$", r"\1+\2", text)
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time(0), UTC)
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("a date-time needs an offset (e.g. Z or +02:00)")
    return value.astimezone(UTC)


def _invalid(field: str, message: str) -> ApiError:
    detail = {"field": field, "rule": "invalid", "message": message}
    return ApiError(422, f"{field}: {message}", code="invalid_request", details=[detail])


def _single(params: Iterable[tuple[str, str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in params:
        if name in ("from", "to", "group_by", "instance_id", *ATTRIBUTION):
            if name in found:
                raise _invalid(name, "given more than once")
            found[name] = value
    return found


# Times a range may name: wide enough for any real question, narrow enough that the default
# span and the day arithmetic around a range never leave datetime's years 1 to 9999.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _time_param(found: dict[str, str], name: str) -> datetime | None:
    if name not in found:
        return None
    try:
        value = parse_time(found[name])
    except ValueError as exc:
        raise _invalid(name, f"not an ISO 8601 date or date-time with an offset ({exc})") from None
    if not _EARLIEST <= value <= _LATEST:
        raise _invalid(name, f"must be between {_EARLIEST.date()} and {_LATEST.date()}")
    return value


def _filters(found: dict[str, str]) -> dict[str, str]:
    """The attribution filters of a query: exact values of 1 to 200 characters, none of them
    a control character (what an event's attribution may hold)."""
    filters = {}
    for name in ATTRIBUTION:
        if name not in found:
            continue
        value = found[name]
        if not 1 <= len(value) <= MAX_FILTER_LENGTH:
            raise _invalid(name, f"must be 1 to {MAX_FILTER_LENGTH} characters")
        if any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in value):
            raise _invalid(name, "must not contain control characters")
        filters[name] = value
    return filters


def parse_usage_query(
    params: Iterable[tuple[str, str]], *, key: ApiKeyRecord, now: datetime
) -> UsageQuery:
    """The arguments of `query_usage` from a query string's pairs, for the caller's key.

    422 `invalid_request` for an unparseable or repeated value, `from >= to`, a span over 366
    days, a bad `group_by`, or a `project`/`branch`/`user` filter that is empty, over 200
    characters or holds a control character; 403 `forbidden` when an instance key asks for
    `instance_id` (as a filter or a dimension). An instance key is always held to its own instance.
    """
    found = _single(params)
    end = _time_param(found, "to") or now.astimezone(UTC)
    start = _time_param(found, "from") or end - DEFAULT_SPAN
    if start >= end:
        raise _invalid("from", "must be before `to`")
    if end - start > MAX_SPAN:
        raise _invalid("from", "the range may span at most 366 days")
    raw = found.get("group_by", "")
    group_by = tuple(part.strip() for part in raw.split(",")) if raw.strip() else ()
    try:
        check_group_by(group_by)
    except ValueError as exc:
        raise _invalid("group_by", str(exc)) from None
    filters = _filters(found)
    if key.instance_id is not None:
        if "instance_id" in found or "instance_id" in group_by:
            raise ApiError(403, "instance_id is for admin keys only", code="forbidden")
        return UsageQuery(key.instance_id, start, end, group_by, filters)
    instance_id = None
    if "instance_id" in found:
        try:
            instance_id = UUID(found["instance_id"])
        except ValueError:
            raise _invalid("instance_id", "not a UUID") from None
    return UsageQuery(instance_id, start, end, group_by, filters)
