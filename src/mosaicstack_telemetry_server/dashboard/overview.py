"""The overview page: totals, spend over time by model, spend by task type, by harness and by
project, token ranges per model, success and gate-pass rates, for one date range and scope,
and one project when the project filter picks one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mosaicstack_telemetry_server.dashboard import charts, data
from mosaicstack_telemetry_server.dashboard.formatting import (
    format_count,
    format_percent,
    format_spend,
)
from mosaicstack_telemetry_server.dashboard.pages import render
from mosaicstack_telemetry_server.dashboard.ranges import PRESETS, DateRange, parse_range
from mosaicstack_telemetry_server.storage.base import ApiKeyRecord, Storage

__all__ = ["page", "tiles", "unpriced_models"]


def tiles(totals: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The headline numbers: (id, label, text), ids as the totals' field names; the spend
    says the unpriced tasks it leaves out (`unpriced_tasks`, when the totals count them)."""
    unpriced = int(totals.get("unpriced_tasks", 0))
    return [
        ("cost_usd_micros", "Spend", format_spend(int(totals["cost_usd_micros"]), unpriced)),
        ("tasks", "Tasks", format_count(int(totals["tasks"]))),
        ("input_tokens", "Input tokens", format_count(int(totals["input_tokens"]))),
        ("output_tokens", "Output tokens", format_count(int(totals["output_tokens"]))),
        ("success_rate", "Success rate", format_percent(float(totals["success_rate"]))),
        ("gate_pass_rate", "Gate-pass rate", format_percent(float(totals["gate_pass_rate"]))),
    ]


def unpriced_models(by_model: dict[str, Any]) -> list[tuple[str, str]]:
    """For the page's note: each model with unpriced tasks, and how many, e.g. "3 tasks"."""
    return [
        (str(group["key"]["model"]), f"{format_count(n)} task{'s' if n != 1 else ''}")
        for group in by_model["groups"]
        if (n := int(group["unpriced_tasks"]))
    ]


def _charts(
    storage: Storage, instance: UUID | None, span: DateRange, admin: bool, project: str | None
) -> dict[str, Any]:
    """Every query of the page (one usage sum, the token percentiles), in one worker thread."""
    reports = data.breakdowns(storage, instance, span.start, span.end, project)
    by_model = reports[("model",)]
    percentiles = data.token_percentiles(storage, instance, span.start, span.end, project)
    return {
        "tiles": tiles(by_model["totals"]),
        "unpriced": unpriced_models(by_model),
        "spend_over_time": charts.spend_over_time_chart(reports[("day", "model")], span.days),
        "by_task_type": charts.spend_by_chart(reports[("task_type",)], "task_type", "task type"),
        "by_harness": charts.spend_by_chart(reports[("harness",)], "harness", "harness"),
        "by_project": charts.spend_by_chart(reports[("project",)], "project", "project"),
        "projects": data.projects(storage, instance, span.start, span.end),
        "tokens": charts.token_range_chart(percentiles),
        "project_token_events": format_count(data.PROJECT_TOKEN_EVENTS),
        "rates": charts.rates_chart(by_model),
        "instances": data.instances(storage) if admin else [],
    }


def range_links(
    span: DateRange, today: datetime, instance: UUID | None, project: str | None = None
) -> list[dict[str, Any]]:
    """The one-click presets, each a link that keeps the instance and project filters."""
    extra = {"instance": str(instance)} if instance else {}
    if project:
        extra["project"] = project
    current = span.preset(today.date())
    return [
        {"days": days, "href": "?" + urlencode({"days": days, **extra}), "current": days == current}
        for days in PRESETS
    ]


async def page(request: Request, key: ApiKeyRecord, csrf: str) -> Response:
    """The overview of the range and scope the query string asks for."""
    now = datetime.now(UTC)
    params = dict(request.query_params)
    span = parse_range(params, now.date())
    instance, scope_error = data.scope(key, params.get("instance"))
    storage = request.app.state.runtime.storage
    admin = key.instance_id is None
    project, project_error = data.project_filter(params.get("project"))
    context = await run_in_threadpool(_charts, storage, instance, span, admin, project)
    return render(
        "overview.html",
        key=key,
        csrf=csrf,
        span=span,
        presets=range_links(span, now, None if key.instance_id else instance, project),
        instance=instance,
        project=project,
        errors=[error for error in (span.error, scope_error, project_error) if error],
        **context,
    )
