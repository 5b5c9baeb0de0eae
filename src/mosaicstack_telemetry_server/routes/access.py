"""Who may call a `/v1` route: the dependency that checks the API key and its rate limits.

`auth.py` says whether a key is valid and `ratelimit.py` how long a bucket makes a caller
wait; this module is the glue between them and a request: it turns a missing or bad key into
401, an empty bucket into 429 with `Retry-After`, and keeps failed authentications from
costing a database lookup once their client address is over its rate.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials

from mosaicstack_telemetry_server.errors import ApiError
from mosaicstack_telemetry_server.openapi import BEARER
from mosaicstack_telemetry_server.ratelimit import retry_after_seconds
from mosaicstack_telemetry_server.runtime import Runtime
from mosaicstack_telemetry_server.storage.base import ApiKeyRecord

__all__ = ["authenticated", "runtime_of"]


def runtime_of(request: Request) -> Runtime:
    """The running app's `Runtime` (set by the lifespan)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def authenticated(
    request: Request,
    _credentials: HTTPAuthorizationCredentials | None = Depends(BEARER),  # noqa: B008
) -> ApiKeyRecord:
    """The caller's active key (401 otherwise), within its rate (429 otherwise).

    Failed authentications are limited per client address: once its bucket is empty, a key
    that would need a database lookup is refused with 429 before the lookup.
    """
    runtime = runtime_of(request)
    authorization = request.headers.get("authorization")
    # The client's address: the TCP peer, or what a trusted proxy says it is (proxies.py).
    address = request.client.host if request.client else "unknown"
    if not runtime.ready:  # only until the first successful migration: skip the thread hop
        await run_in_threadpool(runtime.ensure_ready)
    try:
        # Most requests come with a recently verified key: answer those without a thread hop.
        record = runtime.verifier.verify_cached(authorization)
        if record is None:
            _within_rate(runtime.auth_failures.peek(address), "failed authentications")
            record = await run_in_threadpool(runtime.verifier.verify, authorization)
    except ApiError as exc:
        if exc.status == 401:
            runtime.auth_failures.acquire(address)
        raise
    request.state.key_id = record.key_id
    _within_rate(runtime.limiter.acquire(record.key_id), "this API key")
    return record


def _within_rate(wait: float, what: str) -> None:
    if wait > 0:
        raise ApiError(
            429,
            f"rate limit exceeded for {what}",
            code="rate_limited",
            headers={"Retry-After": str(retry_after_seconds(wait))},
        )
