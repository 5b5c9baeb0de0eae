"""The prediction explorer: pick task type, model, provider and complexity, and see the
prediction exactly as `POST /v1/predictions/batch` answers it (fallback level, note,
confidence), over every instance's events as the API's predictions are."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from mosaicstack_telemetry import Complexity, Provider, TaskType
from mosaicstack_telemetry.models import PredictionQuery, PredictionResponse
from mosaicstack_telemetry_server.dashboard import data
from mosaicstack_telemetry_server.dashboard.pages import render
from mosaicstack_telemetry_server.runtime import Runtime
from mosaicstack_telemetry_server.storage.base import ApiKeyRecord

__all__ = ["FIELDS", "page"]

FIELDS = ("task_type", "model", "provider", "complexity")
# Models offered in the picker: those with tasks in this many recent days (any may be typed).
# A week keeps the page cheap: the list reads a week of rollups, not a quarter's.
_MODEL_DAYS = 7


def _query(params: dict[str, str]) -> tuple[PredictionQuery | None, list[str]]:
    """The query the form asks for (None until it asks), and what is wrong with it."""
    if not any(params.get(name) for name in FIELDS):
        return None, []
    try:
        return PredictionQuery.model_validate({name: params.get(name, "") for name in FIELDS}), []
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        return None, [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors]


def _answer(
    runtime: Runtime, key: ApiKeyRecord, query: PredictionQuery | None, project: str | None
) -> dict[str, Any]:
    now = datetime.now(UTC)
    instance, _ = data.scope(key, None)
    since = now - timedelta(days=_MODEL_DAYS)
    # The project filter narrows the models offered; predictions are over every project.
    models = data.models(runtime.storage, instance, since, now, project)
    if query is None:
        return {"models": models, "result": None, "raw": None}
    result: PredictionResponse = runtime.predictions.predict_batch([query])[0]
    body = result.model_dump(mode="json")
    return {"models": models, "result": body, "raw": json.dumps(body, indent=2)}


async def page(request: Request, key: ApiKeyRecord, csrf: str) -> Response:
    """The explorer form, and the prediction when it was submitted."""
    params = {name: request.query_params.get(name, "").strip() for name in FIELDS}
    query, errors = _query(params)
    project, project_error = data.project_filter(request.query_params.get("project"))
    runtime: Runtime = request.app.state.runtime
    context = await run_in_threadpool(_answer, runtime, key, query, project)
    return render(
        "explorer.html",
        status_code=422 if errors else 200,
        key=key,
        csrf=csrf,
        params=params,
        project=project,
        errors=[*errors, *([project_error] if project_error else [])],
        task_types=[item.value for item in TaskType],
        providers=[item.value for item in Provider],
        complexities=[item.value for item in Complexity],
        **context,
    )
