"""What the dashboard reads: usage sums from the daily rollups (never a scan), in the JSON
shape of `GET /v1/usage`, so a chart shows what the API answers for the same selection.

An overview page needs five breakdowns (by model, by day and model, by task type, by harness,
by project), all of one project when the page's project filter picks one (`project=`, as
`GET /v1/usage` takes it; every page carries it in its links), and the token ranges per model:
from the rollups' histograms, or for one project from a bounded sample of its events (the one
read of the events table, `token_percentiles`).
Those by model are folded from those by day, model and provider (sums are exact integers, so a
fold equals the API's own answer), whose (model, provider) rows tell the tasks of a model
nobody could price (`unpriced.py`): every group of a fold counts them in `unpriced_tasks`, so a
page writes "unpriced" rather than $0.00. The others are one `Storage.sum_usage` call each, by
their dimension, and by the model and the provider too when the range holds unpriced tasks.
(One call over all dimensions at once returns about as many rows as the rollups hold, and is
slower than the three.) Pages call these in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from mosaicstack_telemetry_server.storage.base import ApiKeyRecord, Storage, UsageRow
from mosaicstack_telemetry_server.unpriced import unpriced_tasks
from mosaicstack_telemetry_server.usage import MAX_FILTER_LENGTH, query_token_percentiles

__all__ = [
    "BREAKDOWNS",
    "PROJECT_TOKEN_EVENTS",
    "breakdowns",
    "fold",
    "instances",
    "models",
    "project_filter",
    "projects",
    "scope",
    "token_percentiles",
]

# The overview's breakdowns, each a `group_by` of `GET /v1/usage`.
BREAKDOWNS: tuple[tuple[str, ...], ...] = (
    ("model",),
    ("day", "model"),
    ("task_type",),
    ("harness",),
    ("project",),
)
# The first query's fold tells whether the range holds unpriced tasks at all. When it does, the
# others are asked with the model and the provider too, so each of their groups counts its own
# (a project whose tasks used only a model nobody could price reads "unpriced", not $0.00);
# when it does not (the common case), they are asked by their dimension alone, which is cheaper.
_BY_MODEL = (("day", "model", "provider"), (("day", "model"), ("model",)))
_BY_ONE = ("task_type", "harness", "project")
_WITH_MODEL = ("model", "provider")
# A project's token ranges: exact percentiles of each model's this many most recent events of
# the project in the range, read from the events (no rollup keeps tokens per project). It
# bounds the events a page reads per model; the p10 and p90 of 1,000 events fall within 2
# percentile points of the whole range's 19 times in 20 (standard error sqrt(0.09 / 1000)).
PROJECT_TOKEN_EVENTS = 1_000
# The contract's rates "may be rounded to 4 decimals": the API does, so the pages do.
_RATE_DIGITS = 4
_SUMS = ("tasks", "input_tokens", "output_tokens", "cost_usd_micros", "duration_ms")
# What a fold adds up from each row: the sums it shows, and those its rates come from; and
# with them the row's unpriced tasks (`_unpriced`).
_ROW_SUMS = (*_SUMS, "successes", "gate_passes")
_COUNTED = (*_ROW_SUMS, "unpriced_tasks")


def _fields(sums: dict[str, int]) -> dict[str, Any]:
    tasks = sums["tasks"]

    def share(count: int) -> float:
        return round(count / tasks, _RATE_DIGITS) if tasks else 0.0

    fields: dict[str, Any] = {name: sums[name] for name in _SUMS}
    fields["successes"] = sums["successes"]
    fields["success_rate"] = share(sums["successes"])
    fields["gate_pass_rate"] = share(sums["gate_passes"])
    fields["unpriced_tasks"] = sums["unpriced_tasks"]
    return fields


def _unpriced(row: UsageRow, dimensions: Sequence[str]) -> int:
    """The row's unpriced tasks, when its key holds the model and the provider (else 0)."""
    if "model" not in dimensions or "provider" not in dimensions:
        return 0
    return unpriced_tasks(
        provider=str(row.key[list(dimensions).index("provider")]),
        model=str(row.key[list(dimensions).index("model")]),
        tasks=row.tasks,
        tokens=row.input_tokens + row.output_tokens,
        cost_usd_micros=row.cost_usd_micros,
    )


def fold(
    rows: Iterable[UsageRow], dimensions: Sequence[str], group_by: Sequence[str]
) -> dict[str, Any]:
    """The `GET /v1/usage` JSON (groups and totals) of `group_by`, from rows summed over
    `dimensions` (which must include every name of `group_by`), with each group's
    `unpriced_tasks` (0 unless `dimensions` hold the model and the provider)."""
    empty = dict.fromkeys(_COUNTED, 0)
    positions = [list(dimensions).index(name) for name in group_by]
    groups: dict[tuple[str | None, ...], dict[str, int]] = {}
    totals = dict(empty)
    for row in rows:
        key = tuple(row.key[n] for n in positions)
        sums = groups.setdefault(key, dict(empty))
        counted = {name: getattr(row, name) for name in _ROW_SUMS}
        counted["unpriced_tasks"] = _unpriced(row, dimensions)
        for name, value in counted.items():
            sums[name] += value
            totals[name] += value
    return {
        "group_by": list(group_by),
        "groups": [
            {"key": dict(zip(group_by, key, strict=True)), **_fields(groups[key])}
            for key in sorted(groups, key=_null_first)
            if groups[key]["tasks"] > 0
        ],
        "totals": _fields(totals),
    }


def _null_first(key: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    """Groups in the API's order: by each value, None (no attribution) first."""
    return tuple((value is not None, value or "") for value in key)


def _filters(project: str | None) -> dict[str, str]:
    return {"project": project} if project else {}


def breakdowns(
    storage: Storage,
    instance_id: UUID | None,
    start: datetime,
    end: datetime,
    project: str | None = None,
) -> dict[tuple[str, ...], dict[str, Any]]:
    """Every breakdown of `BREAKDOWNS`, of one project's events when `project` is given."""
    reports: dict[tuple[str, ...], dict[str, Any]] = {}

    def sums(dimensions: tuple[str, ...]) -> list[UsageRow]:
        return storage.sum_usage(
            instance_id=instance_id,
            start=start,
            end=end,
            dimensions=list(dimensions),
            filters=_filters(project),
        )

    by_model, folds = _BY_MODEL
    rows = sums(by_model)
    for group_by in folds:
        reports[group_by] = fold(rows, by_model, group_by)
    unpriced = reports[("model",)]["totals"]["unpriced_tasks"] > 0
    for name in _BY_ONE:
        dimensions = (name, *_WITH_MODEL) if unpriced else (name,)
        reports[(name,)] = fold(sums(dimensions), dimensions, (name,))
    return reports


def models(
    storage: Storage,
    instance_id: UUID | None,
    start: datetime,
    end: datetime,
    project: str | None = None,
) -> list[str]:
    """The models with tasks in the range (of one project when given), by name."""
    rows = storage.sum_usage(
        instance_id=instance_id,
        start=start,
        end=end,
        dimensions=["model"],
        filters=_filters(project),
    )
    return sorted({str(row.key[0]) for row in rows if row.tasks > 0})


def projects(
    storage: Storage, instance_id: UUID | None, start: datetime, end: datetime
) -> list[str]:
    """For the project filter: the projects with tasks in the range, by name."""
    rows = storage.sum_usage(instance_id=instance_id, start=start, end=end, dimensions=["project"])
    return sorted({row.key[0] for row in rows if row.tasks > 0 and row.key[0] is not None})


def project_filter(asked: str | None) -> tuple[str | None, str | None]:
    """The project a page shows (None: every project), and an error when the one asked for
    cannot be one (the rule of `GET /v1/usage`'s `project=`)."""
    if not asked:
        return None, None
    if len(asked) > MAX_FILTER_LENGTH:
        return None, f"a project is at most {MAX_FILTER_LENGTH} characters"
    if any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in asked):
        return None, "a project holds no control characters"
    return asked, None


def token_percentiles(
    storage: Storage,
    instance_id: UUID | None,
    start: datetime,
    end: datetime,
    project: str | None = None,
) -> list[dict[str, Any]]:
    """Per model: `model`, and `input_tokens` / `output_tokens` with `p10`, `p50`, `p90`.

    Of every project from the token histograms (within 1%), or of one project, exact, from
    each model's `PROJECT_TOKEN_EVENTS` most recent events of it in the range.
    """
    if project is None:
        rows = query_token_percentiles(storage, instance_id=instance_id, start=start, end=end)
        return [row.model_dump(mode="json") for row in rows]
    sample = storage.project_token_percentiles(
        instance_id=instance_id,
        start=start,
        end=end,
        project=project,
        per_model=PROJECT_TOKEN_EVENTS,
    )
    return [
        {
            "model": row.model,
            "tasks": row.events,
            "input_tokens": _rounded(row.input_tokens),
            "output_tokens": _rounded(row.output_tokens),
        }
        for row in sorted(sample, key=lambda row: row.model)
    ]


def _rounded(percentiles: tuple[float, float, float]) -> dict[str, int]:
    """p10, p50 and p90 to the nearest token (ties to even, as the predictions round)."""
    return dict(zip(("p10", "p50", "p90"), map(round, percentiles), strict=True))


def instances(storage: Storage) -> list[UUID]:
    """For an admin's instance filter: every instance that has a key, revoked or not.

    Keys are revoked, never deleted, and every stored event came with its instance's key, so
    this lists every instance with events, without reading any event or rollup.
    """
    found = {key.instance_id for key in storage.list_api_keys() if key.instance_id is not None}
    return sorted(found, key=str)


def scope(key: ApiKeyRecord, asked: str | None) -> tuple[UUID | None, str | None]:
    """The instance a page shows, and an error when the one asked for cannot be shown.

    An instance key sees its own instance only, whatever it asks; an admin key sees every
    instance (None) or the one it picks.
    """
    if key.instance_id is not None:
        return key.instance_id, None
    if not asked:
        return None, None
    try:
        return UUID(asked), None
    except ValueError:
        return None, "the instance filter must be an instance id (a UUID)"
