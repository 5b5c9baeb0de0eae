"""Structured logs: every line on stderr is JSON, one per request on the access logger.

An access line carries method, path, status, duration_ms, bytes_in, bytes (response body) and
the `key_id` once a request is authenticated. Never headers: the `Authorization` header holds a
secret, and the key_id is the public name of a key, made for exactly this.

The libraries that may log while the server runs (uvicorn, the PostgreSQL driver and its pool,
asyncio) go through the same JSON formatter, which also blanks any password a URL or a
`password=` setting in a line might carry.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mosaicstack_telemetry_server.storage import redact_url

__all__ = ["ACCESS_LOGGER", "AccessLogMiddleware", "JsonFormatter", "configure_logging"]

ACCESS_LOGGER = "mosaicstack_telemetry_server.access"
access_logger = logging.getLogger(ACCESS_LOGGER)

# Loggers logging at the level asked for.
_OWN_LOGGERS = ("mosaicstack_telemetry_server", "uvicorn")
# Libraries that may log while serving: at WARNING at least, since psycopg's pool logs every
# connection checkout at INFO (three lines per request).
_LIBRARY_LOGGERS = ("psycopg", "asyncio")

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_PASSWORD_SETTING = re.compile(r"(?i)\b(password\s*=\s*)('[^']*'|\S+)")


def redact_secrets(text: str) -> str:
    """`text` with the password of every URL in it, and every `password=...`, blanked."""
    text = _URL.sub(lambda match: redact_url(match[0]), text)
    return _PASSWORD_SETTING.sub(r"\1***", text)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            # Libraries format their own messages (a driver's error may quote a DSN).
            "message": redact_secrets(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = redact_secrets(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


def configure_logging(level: str = "info") -> None:
    """Send the server's logs, uvicorn's and its libraries' to stderr as JSON lines.

    Ours and uvicorn's at `level`; psycopg's and asyncio's at `level` but never below WARNING.
    Anything else that logs reaches the root logger, which gets the same handler unless the
    host application configured it already (then its setup is kept).
    """
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    for name in (*_OWN_LOGGERS, *_LIBRARY_LOGGERS):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(numeric if name in _OWN_LOGGERS else max(numeric, logging.WARNING))
        logger.propagate = False
    # Their children log through them (an earlier setup may have given them handlers).
    for name in ("uvicorn.error", "uvicorn.access", "psycopg.pool"):
        child = logging.getLogger(name)
        child.handlers.clear()
        child.propagate = True
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(handler)


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
