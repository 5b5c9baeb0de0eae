"""The HTTP app: Telemetry API v1 wired together, and nothing else.

Routes live in `routes/` (one module each; keys and rate limits checked by `routes/access.py`)
and, for the OTLP receiver, in `otlp/routes.py`;
the OpenAPI pieces in `openapi.py`, startup and shutdown in `lifespan.py`, errors shaped by
`errors.py`; this module only puts them in order.
"""

from __future__ import annotations

from fastapi import FastAPI

from mosaicstack_telemetry_server import __version__
from mosaicstack_telemetry_server.access_log import AccessLogMiddleware
from mosaicstack_telemetry_server.budgets.routes import router as budgets_router
from mosaicstack_telemetry_server.dashboard import install_dashboard
from mosaicstack_telemetry_server.errors import install_error_handlers
from mosaicstack_telemetry_server.lifespan import lifespan_for
from mosaicstack_telemetry_server.metrics import MetricsMiddleware
from mosaicstack_telemetry_server.openapi import install_openapi
from mosaicstack_telemetry_server.otlp.routes import router as otlp_router
from mosaicstack_telemetry_server.probes import router as probes_router
from mosaicstack_telemetry_server.proxies import TrustedProxies, parse_trusted_proxies
from mosaicstack_telemetry_server.routes import api_router
from mosaicstack_telemetry_server.settings import ServerSettings
from mosaicstack_telemetry_server.storage import Storage

__all__ = ["create_app"]


def create_app(settings: ServerSettings, storage: Storage | None = None) -> FastAPI:
    """The Telemetry API v1 app; opens storage from `settings.database_url` unless given one.

    Startup migrates the schema and starts the prediction refresher; shutdown stops it and
    closes storage this app opened (storage passed in stays open: the caller owns it).
    """
    app = FastAPI(
        title="Mosaic Stack Telemetry API",
        version=__version__,
        summary="Telemetry API v1: task-completion events in, cost predictions out.",
        lifespan=lifespan_for(settings, storage),
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(MetricsMiddleware)
    # Outermost: every layer below sees the client address it establishes.
    app.add_middleware(TrustedProxies, networks=parse_trusted_proxies(settings.trusted_proxies))
    app.include_router(probes_router)
    app.include_router(api_router)
    app.include_router(budgets_router)
    # OTLP/HTTP on its standard paths (otlp/): a capability of its own, beside the contract's.
    app.include_router(otlp_router)
    install_dashboard(app)
    install_openapi(app)
    return app
