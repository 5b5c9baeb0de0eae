"""The app's life: open storage and start the runtime on startup, stop both on shutdown.

Storage calls block, so they run in Starlette's thread pool, never on the event loop. Storage
the app opened from `settings.database_url` is closed on shutdown; storage passed in stays
open (the caller owns it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from mosaicstack_telemetry_server.metrics import Metrics
from mosaicstack_telemetry_server.runtime import Runtime
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import Storage, open_storage

__all__ = ["lifespan_for"]


def lifespan_for(
    settings: ServerSettings, storage: Storage | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The lifespan that sets `app.state.runtime` and `app.state.metrics` while the app runs."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = storage is None
        store = (
            storage
            if storage is not None
            else await run_in_threadpool(open_storage, settings.database_url)
        )
        runtime = Runtime(settings=settings, storage=store, owns_storage=opened)
        await run_in_threadpool(runtime.start)
        app.state.runtime = runtime
        app.state.metrics = Metrics(store)
        runtime.otlp_closer.on_closed = app.state.metrics.otlp_tasks_closed.inc
        runtime.budget_alerts.observer = app.state.metrics.count_budget_alert
        try:
            yield
        finally:
            app.state.metrics.process_exiting()
            await run_in_threadpool(runtime.stop)

    return lifespan
