"""What the dashboard reads: the usage queries (rollups, never a scan) as the API's JSON.

Pages call these in a worker thread. Reports are the JSON of `GET /v1/usage` for the same
arguments, so what a chart shows is what the API answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from mosaicstack_telemetry_server.storage.base import ApiKeyRecord, Storage
from mosaicstack_telemetry_server.usage import query_token_percentiles, query_usage

__all__ = ["instances", "scope", "token_percentiles", "usage"]


def usage(
    storage: Storage,
    instance_id: UUID | None,
    start: datetime,
    end: datetime,
    group_by: Sequence[str],
) -> dict[str, Any]:
    """The `GET /v1/usage` answer for this selection, as JSON."""
    report = query_usage(
        storage, instance_id=instance_id, start=start, end=end, group_by=list(group_by)
    )
    body: dict[str, Any] = report.model_dump(mode="json", by_alias=True)
    return body


def token_percentiles(
    storage: Storage, instance_id: UUID | None, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Per model: `model`, `input_tokens` and `output_tokens` with `p10`, `p50`, `p90`."""
    rows = query_token_percentiles(storage, instance_id=instance_id, start=start, end=end)
    return [row.model_dump(mode="json") for row in rows]


def instances(storage: Storage, start: datetime, end: datetime) -> list[UUID]:
    """For an admin's instance filter: every instance with a key or with tasks in the range
    (keys may be gone while their events stay)."""
    found = {key.instance_id for key in storage.list_api_keys() if key.instance_id is not None}
    report = usage(storage, None, start, end, ["instance_id"])
    found.update(UUID(group["key"]["instance_id"]) for group in report["groups"])
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
