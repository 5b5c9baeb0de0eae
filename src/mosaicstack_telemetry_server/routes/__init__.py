"""The routes of Telemetry API v1, one module each, gathered in the contract's order.

`access.py` holds the dependency every authenticated route shares (API key and rate limits);
the OpenAPI pieces the routes cannot infer live in `openapi.py`.
"""

from __future__ import annotations

from fastapi import APIRouter

from mosaicstack_telemetry_server.routes import events, health, predictions, usage

__all__ = ["api_router"]

# The order routes are matched in, and listed in the OpenAPI document.
api_router = APIRouter()
for _module in (events, predictions, usage, health):
    api_router.include_router(_module.router)
