"""The budget routes: `PUT`, `GET` and `DELETE /v1/budgets` (admin keys) and
`GET /v1/budgets/status` (any key: an instance key sees the budgets covering its instance).

Bodies are read by `body.py` like every other body (415, 413, 400 as elsewhere), then judged
by `BudgetIn` (422). The webhook secret is stored and never returned.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from mosaicstack_telemetry_server.body import decode_json, read_body
from mosaicstack_telemetry_server.budgets.model import (
    MAX_BUDGETS,
    NAME_PATTERN,
    Budget,
    BudgetIn,
    BudgetList,
)
from mosaicstack_telemetry_server.budgets.spend import budget_status
from mosaicstack_telemetry_server.errors import ApiError, invalid_request
from mosaicstack_telemetry_server.openapi import error_responses
from mosaicstack_telemetry_server.routes.access import authenticated, runtime_of
from mosaicstack_telemetry_server.storage._budgets import BudgetRecord, budgets_of
from mosaicstack_telemetry_server.storage.base import ApiKeyRecord

__all__ = ["router"]

router = APIRouter()

Name = Annotated[str, Path(pattern=NAME_PATTERN, description="`[A-Za-z0-9_.-]{1,64}`")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No budget of that name (`not_found`)."}
}
_ADMIN_ERRORS = error_responses(401, 403, 422, 429, 500, 503)
_PUT_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/json": {"schema": BudgetIn.model_json_schema()}},
}


def _admin(key: ApiKeyRecord) -> None:
    if not key.is_admin:
        raise ApiError(403, "budgets are managed with an admin key", code="forbidden")


def _dump(model: Budget | BudgetList) -> dict[str, Any]:
    return model.model_dump(mode="json")


@router.put(
    "/v1/budgets/{name}",
    summary="Create or replace a budget (admin key)",
    response_model=Budget,
    responses={**_ADMIN_ERRORS, **error_responses(400, 413, 415)},
    openapi_extra={"requestBody": _PUT_BODY},
)
async def put_budget(
    request: Request,
    name: Name,
    key: ApiKeyRecord = Depends(authenticated),  # noqa: B008
) -> JSONResponse:
    """Create or replace the budget `name`; the answer is the budget as `GET` shows it."""
    _admin(key)
    runtime = runtime_of(request)
    raw = await read_body(request, runtime.settings.max_body_bytes)
    try:
        body = BudgetIn.model_validate(decode_json(raw))
    except ValidationError as exc:
        raise invalid_request(exc.errors()) from None
    now = datetime.now(UTC)
    record = BudgetRecord(
        name=name,
        amount_usd_micros=body.amount_usd_micros,
        period=body.period,
        instance_id=body.instance_id,
        project=body.project,
        thresholds=tuple(body.thresholds),
        webhook_url=body.webhook_url,
        webhook_secret=body.webhook_secret,
        updated_at=now,
    )

    def store() -> Budget:
        budgets = budgets_of(runtime.storage)
        names = {budget.name for budget in budgets.list_budgets()}
        if name not in names and len(names) >= MAX_BUDGETS:
            raise ApiError(422, f"at most {MAX_BUDGETS} budgets", code="invalid_request")
        budgets.put_budget(record)
        return budget_status(runtime.storage, record, now)

    budget = await run_in_threadpool(store)
    runtime.budget_alerts.wake()  # a lower amount may be crossed already
    return JSONResponse(_dump(budget))


@router.get(
    "/v1/budgets",
    summary="Every budget with its status (admin key)",
    response_model=BudgetList,
    responses=_ADMIN_ERRORS,
)
async def list_budgets(
    request: Request,
    key: ApiKeyRecord = Depends(authenticated),  # noqa: B008
) -> JSONResponse:
    """Every budget, sorted by name, with its current period's status."""
    _admin(key)
    return JSONResponse(_dump(await _statuses(request, None)))


@router.get(
    "/v1/budgets/status",
    summary="The status of the budgets covering the key's instance",
    response_model=BudgetList,
    responses=error_responses(401, 429, 500, 503),
)
async def budgets_status(
    request: Request,
    key: ApiKeyRecord = Depends(authenticated),  # noqa: B008
) -> JSONResponse:
    """For an instance key, the budgets of its instance and of all instances; for an admin
    key, every budget."""
    return JSONResponse(_dump(await _statuses(request, key)))


@router.delete(
    "/v1/budgets/{name}",
    summary="Delete a budget (admin key)",
    status_code=204,
    response_class=Response,
    responses={**_ADMIN_ERRORS, **_NOT_FOUND},
)
async def delete_budget(
    request: Request,
    name: Name,
    key: ApiKeyRecord = Depends(authenticated),  # noqa: B008
) -> Response:
    """Delete the budget `name` (its alerts already sent stay in the outbox's history)."""
    _admin(key)
    runtime = runtime_of(request)
    if not await run_in_threadpool(budgets_of(runtime.storage).delete_budget, name):
        raise ApiError(404, f"no budget named {name}", code="not_found")
    return Response(status_code=204)


async def _statuses(request: Request, key: ApiKeyRecord | None) -> BudgetList:
    runtime = runtime_of(request)
    now = datetime.now(UTC)
    instance = None if key is None or key.is_admin else key.instance_id

    def read() -> BudgetList:
        budgets = [
            budget_status(runtime.storage, budget, now)
            for budget in budgets_of(runtime.storage).list_budgets()
            if instance is None or budget.instance_id in (None, instance)
        ]
        return BudgetList(budgets=budgets)

    return await run_in_threadpool(read)
