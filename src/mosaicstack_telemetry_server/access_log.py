"""The access log: one JSON line per HTTP request, written after the response completes.

An access line carries method, path, status, duration_ms, bytes_in, bytes (response body) and
the `key_id` once a request is authenticated. Never headers: the `Authorization` header holds a
secret, and the key_id is the public name of a key, made for exactly this.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ACCESS_LOGGER", "AccessLogMiddleware"]

ACCESS_LOGGER = "mosaicstack_telemetry_server.access"
access_logger = logging.getLogger(ACCESS_LOGGER)


class AccessLogMiddleware:
    """Pure ASGI middleware that logs one line per HTTP request after it completes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through, counting the response, then log it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Routes record bytes_in and key_id here (Starlette's request.state is this dict).
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before responding
        sent = 0

        async def counting_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            fields = {
                # The TCP peer, or the client a trusted proxy named (proxies.py).
                "client": (scope.get("client") or ("unknown",))[0],
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "bytes_in": state.get("bytes_in", 0),
                "bytes": sent,
            }
            if "key_id" in state:
                fields["key_id"] = state["key_id"]
            access_logger.info(
                "%s %s %s", fields["method"], fields["path"], status, extra={"fields": fields}
            )
