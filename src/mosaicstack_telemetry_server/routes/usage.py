"""`GET /v1/usage`: what was spent, summed over stored events, by group and in total.

`usage.py` parses the query and sums the daily rollups; this module ties them to the request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from mosaicstack_telemetry_server.openapi import (
    USAGE_ATTRIBUTION_FILTER,
    USAGE_FROM,
    USAGE_GROUP_BY,
    USAGE_INSTANCE_ID,
    USAGE_RESPONSES,
    USAGE_TO,
)
from mosaicstack_telemetry_server.routes.access import authenticated, runtime_of
from mosaicstack_telemetry_server.storage.base import ApiKeyRecord
from mosaicstack_telemetry_server.usage import UsageReport, parse_usage_query, query_usage

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/v1/usage",
    summary="What was spent, summed over stored events",
    response_model=None,
    responses=USAGE_RESPONSES,
)
async def get_usage(
    request: Request,
    key: ApiKeyRecord = Depends(authenticated),  # noqa: B008
    # Declared for the OpenAPI document; parse_usage_query reads the raw pairs (it refuses
    # a repeated parameter rather than silently picking one).
    _from: Annotated[str | None, Query(alias="from", description=USAGE_FROM)] = None,
    _to: Annotated[str | None, Query(alias="to", description=USAGE_TO)] = None,
    _group_by: Annotated[str | None, Query(alias="group_by", description=USAGE_GROUP_BY)] = None,
    _instance_id: Annotated[
        str | None, Query(alias="instance_id", description=USAGE_INSTANCE_ID)
    ] = None,
    _project: Annotated[
        str | None, Query(alias="project", description=USAGE_ATTRIBUTION_FILTER.format("project"))
    ] = None,
    _branch: Annotated[
        str | None, Query(alias="branch", description=USAGE_ATTRIBUTION_FILTER.format("branch"))
    ] = None,
    _user: Annotated[
        str | None, Query(alias="user", description=USAGE_ATTRIBUTION_FILTER.format("user"))
    ] = None,
) -> JSONResponse:
    """Sums of tokens, cost, duration and outcomes over `from <= timestamp < to`."""
    runtime = runtime_of(request)
    query = parse_usage_query(request.query_params.multi_items(), key=key, now=datetime.now(UTC))

    def report() -> UsageReport:
        return query_usage(
            runtime.storage,
            instance_id=query.instance_id,
            start=query.start,
            end=query.end,
            group_by=query.group_by,
            filters=query.filters,
        )

    response = await run_in_threadpool(report)
    return JSONResponse(response.model_dump(mode="json", by_alias=True))
